"""The ClickHouse analytical store: ``schema`` (frozen, ordered migrations: tables and views), ``rows``
(pure row builders from v1 envelopes, task views and clocks) and ``writer`` (size- and time-bounded
batched inserts through a clickhouse-connect client). ``connectors.clickhouse`` opens the client and
applies the migrations."""
