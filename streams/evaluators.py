"""Evaluator processes: the projector's task evaluation, sharded over ``TASKLEDGER_WORKER_EVALUATORS`` spawned
children so that it uses more than one core.

Why: the evaluation (fold, status, clocks, alerts: the domain code ``task show`` uses) is most of the
projector's CPU (bench/README.md, "Where the time goes"), and the projector is one process. Each evaluator
holds its own read-only ledger and fold cache (``streams.evaluate.Folds``); a task always goes to the same
evaluator (``task id % N``), so its cache stays warm. The projector sends every evaluator its share of a
batch's tasks *before* it builds the batch's event rows, so the two overlap, then merges the answers.

An evaluator evaluates its tasks and their parents (a subtask changes its parent's rollup): a parent whose
children fall in two shards is evaluated twice, at the same instant; the merge keeps the row of the higher
version (equal versions give equal rows). Evaluators return every alert true at the instant: which ones
are new (not raised before) is the projector's to decide, since it alone knows what was published.

An evaluator that fails answers with the error; one that dies ends its pipe: either way the projector's
request fails and the worker stops without acking (``streams.agents``). Evaluators die with the projector
(``PR_SET_PDEATHSIG``) and ignore SIGINT / SIGTERM (the worker decides)."""

from __future__ import annotations

import logging
import os
import signal
import traceback
from datetime import datetime
from typing import Any
from uuid import UUID

from connectors.settings import Settings
from streams.evaluate import Evaluation

log = logging.getLogger(__name__)


class EvaluatorError(RuntimeError):
    """An evaluator failed a request or is gone."""


def evaluator_main(conn: Any, settings: Settings, clock_origin: float, parent_pid: int, index: int) -> None:
    """One evaluator: ``("evaluate", ([task ids], as_of ISO))`` -> ``("ok", (statuses, alerts, wakeups,
    aggregates in its fold cache))``
    or ``("error", text)``; ``("close", None)`` or the pipe's end stops it."""
    from streams.projector import _die_with_parent, shared_clock

    _die_with_parent()
    if os.getppid() != parent_pid:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from connectors.eventstore import open_ledger
    from connectors.logs import configure
    from streams.evaluate import Folds, evaluate_tasks

    configure()
    try:
        ledger = open_ledger(settings, clock=shared_clock(settings.clock, clock_origin))
        policy = settings.alert_policy()
    except Exception as error:  # noqa: BLE001 - every request is answered with the reason
        failed: str | None = f"evaluator {index} cannot open the ledger: {type(error).__name__}: {error}"
        ledger = policy = None
    else:
        failed = None
    folds = Folds()

    def nothing_raised(task: str) -> frozenset[str]:
        return frozenset()

    try:
        while True:
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                return
            if kind == "close":
                conn.send(("ok", None))
                return
            if failed is not None:
                conn.send(("error", failed))
                continue
            try:
                ids, as_of = payload
                task_ids = {UUID(t) for t in ids}
                result = evaluate_tasks(ledger, task_ids, datetime.fromisoformat(as_of), nothing_raised, folds, policy)
                conn.send(("ok", (result.statuses, result.new_alerts, result.wakeups, len(folds))))
            except Exception as error:  # noqa: BLE001 - reported to the projector, which fails the request
                conn.send(("error", f"evaluator {index}: {type(error).__name__}: {error}\n{traceback.format_exc()}"))
    finally:
        if ledger is not None:
            ledger.close()


class Evaluators:
    """The projector's handle on its evaluator processes."""

    def __init__(self, settings: Settings, clock_origin: float, count: int) -> None:
        if count < 1:
            raise ValueError("count: at least one evaluator")
        self.settings = settings
        self.clock_origin = clock_origin
        self.count = count
        self.processes: list[Any] = []
        self.conns: list[Any] = []
        self.cached: dict[int, int] = {}  # evaluator -> aggregates in its fold cache (as of its last answer)

    def start(self) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        for index in range(self.count):
            parent_conn, child_conn = context.Pipe(duplex=True)
            process = context.Process(
                target=evaluator_main,
                args=(child_conn, self.settings, self.clock_origin, os.getpid(), index),
                name=f"taskledger-evaluator-{index}",
                daemon=False,
            )
            process.start()
            child_conn.close()
            self.processes.append(process)
            self.conns.append(parent_conn)
        log.info("projector: %d evaluator processes started", self.count)

    def submit(self, task_ids: set[UUID], as_of: datetime) -> list[int]:
        """Send each evaluator its share of ``task_ids``; returns which evaluators were asked (for
        ``collect``)."""
        shards: list[list[str]] = [[] for _ in range(self.count)]
        for task_id in task_ids:
            shards[task_id.int % self.count].append(str(task_id))
        asked = []
        stamp = as_of.isoformat()
        for index, shard in enumerate(shards):
            if shard:
                try:
                    self.conns[index].send(("evaluate", (shard, stamp)))
                except (OSError, ValueError) as error:
                    raise EvaluatorError(f"evaluator {index} is gone: {error}") from None
                asked.append(index)
        return asked

    def collect(self, asked: list[int], raised: Any) -> Evaluation:
        """The merged answers of the evaluators ``asked``; ``new_alerts`` are the alerts whose id is not in
        ``raised(task)``."""
        merged = Evaluation()
        failures = []
        for index in asked:  # read every answer, even after a failure: the pipes stay in step
            try:
                status, payload = self.conns[index].recv()
            except (EOFError, OSError):
                failures.append(f"evaluator {index} exited")
                continue
            if status != "ok":
                failures.append(str(payload))
                continue
            statuses, alerts, wakeups, self.cached[index] = payload
            for task, row in statuses.items():
                known = merged.statuses.get(task)
                if known is None or row["version"] > known["version"]:
                    merged.statuses[task] = row
                    merged.wakeups[task] = wakeups.get(task)
                    seen = raised(task)
                    merged.new_alerts[task] = [a for a in alerts.get(task, ()) if a["alert_id"] not in seen]
        if failures:
            raise EvaluatorError("; ".join(failures))
        return merged

    def close(self, timeout: float = 10.0) -> None:
        for conn in self.conns:
            try:
                conn.send(("close", None))
            except (OSError, ValueError):
                pass
        for process in self.processes:
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(5)
        for conn in self.conns:
            try:
                conn.close()
            except OSError:
                pass
