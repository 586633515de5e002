"""Evaluator processes (``streams.evaluators``): the sharded evaluation equals the projector's own
(``streams.evaluate.evaluate_tasks``) row for row, on a real demo store read by real spawned processes."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from connectors.eventstore import open_ledger
from connectors.settings import Settings
from domain.task import Task
from streams.evaluate import Folds, evaluate_tasks
from streams.evaluators import EvaluatorError, Evaluators
from tests.streams.support import cli

DEMO_AT = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
AS_OF = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # later: clocks overdue, alerts to raise


def fixed(moment: datetime) -> str:
    return f"{moment.isoformat()}@0"


def test_sharded_evaluation_equals_the_projectors_own_and_leaves_raised_alerts_out(tmp_path: Path) -> None:
    home = tmp_path / "home"
    summary = json.loads(cli(home, "demo", "--tasks", "40", "--json", clock=fixed(DEMO_AT)).stdout)
    assert summary["appended"] > 0
    settings = Settings(home=home, clock=fixed(AS_OF))
    ledger = open_ledger(settings)
    try:
        folded = {a.id: a for a in ledger.all_aggregates() if isinstance(a, Task)}
        tasks = set(folded)
        relatives: dict[int, set[UUID]] = {}
        for i in range(3):
            wanted = {t for t in tasks if t.int % 3 == i}
            wanted |= {folded[t].parent_id for t in wanted if folded[t].parent_id is not None}
            relatives[i] = wanted | {folded[t].directive_id for t in wanted}
            relatives[i] |= {sub for t in wanted for sub in folded[t].subtasks}
        some = sorted(tasks, key=str)[:5]
        raised = {str(t): frozenset({"not-an-alert-id"}) for t in tasks}
        # alerts "already raised" for five tasks: the first two of each, which must then be left out
        local_all = evaluate_tasks(ledger, tasks, AS_OF, lambda t: frozenset(), Folds(), settings.alert_policy())
        for t in some:
            raised[str(t)] = frozenset(a["alert_id"] for a in local_all.new_alerts[str(t)][:2])
        policy = settings.alert_policy()
        local = evaluate_tasks(ledger, tasks, AS_OF, lambda t: raised.get(t, frozenset()), Folds(), policy)
    finally:
        ledger.close()
    assert len(local.statuses) == len(tasks) == 40
    assert sum(len(rows) for rows in local.new_alerts.values()) > 0

    evaluators = Evaluators(settings, time.time(), 3)
    evaluators.start()
    try:
        for _ in range(2):  # twice: the second time from the evaluators' warm fold caches
            asked = evaluators.submit(tasks, AS_OF)
            assert sorted(asked) == [0, 1, 2]  # 40 task ids spread over three shards
            sharded = evaluators.collect(asked, lambda t: raised.get(t, frozenset()))
            assert sharded.statuses == local.statuses
            assert sharded.new_alerts == local.new_alerts
            assert sharded.wakeups == local.wakeups
        for t in some:
            assert len(sharded.new_alerts[str(t)]) == len(local_all.new_alerts[str(t)]) - 2
        assert evaluators.submit(set(), AS_OF) == []  # nothing to evaluate: nobody is asked
        # each evaluator caches what it folded: its tasks, their parents, and the directives and subtasks of those
        assert evaluators.cached == {i: len(relatives[i]) for i in range(3)}
    finally:
        evaluators.close()
    assert all(not p.is_alive() for p in evaluators.processes)


def test_an_evaluator_that_cannot_read_the_store_fails_the_request_naming_it(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "home"
    not_a_directory.write_text("a file where the store's directory should be")
    settings = Settings(home=not_a_directory)
    evaluators = Evaluators(settings, time.time(), 1)
    evaluators.start()
    try:
        asked = evaluators.submit({UUID(int=1)}, AS_OF)
        with pytest.raises(EvaluatorError, match="evaluator 0 cannot open the ledger"):
            evaluators.collect(asked, lambda t: frozenset())
    finally:
        evaluators.close()


def test_an_evaluator_that_dies_fails_the_next_request_naming_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cli(home, "demo", "--tasks", "10", "--json", clock=fixed(DEMO_AT))
    settings = Settings(home=home, clock=fixed(AS_OF))
    evaluators = Evaluators(settings, time.time(), 2)
    evaluators.start()
    try:
        ids = {UUID(int=2), UUID(int=3)}  # one per shard (id mod 2); unknown tasks evaluate to nothing
        assert evaluators.collect(evaluators.submit(ids, AS_OF), lambda t: frozenset()).statuses == {}
        evaluators.processes[1].kill()
        evaluators.processes[1].join(10)
        with pytest.raises(EvaluatorError, match="evaluator 1"):
            evaluators.collect(evaluators.submit(ids, AS_OF), lambda t: frozenset())
    finally:
        evaluators.close()
    assert all(not p.is_alive() for p in evaluators.processes)
