"""Pure domain of taskledger: aggregates, events, value objects, working-time calendar, clocks, rules. No I/O."""
