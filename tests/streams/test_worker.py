"""The stream worker end to end: real tansu broker, real SQLite event store, real chdb, real subprocess.

History (fixed clock, from Friday 2026-04-24 15:00 local, one minute apart): one signed directive and 50
tasks to HN; every task but each tenth is received and has a 40 % report approved; tasks 0, 10, 20, ... are
never received. The relay publishes the store; the worker (``python -m streams.run``) consumes it with its
clock fixed at Thursday 2026-04-30 10:00 local (after every receipt clock fell due). chdb is owned by the
worker process, so the test stops it (SIGTERM) before reading the tables.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from connectors.broker import DevBroker
from connectors.clickhouse import connect
from connectors.kafka import read_all
from connectors.pki import read_trusted_roots
from domain import commands as c
from domain.application import TaskLedger
from domain.contract import ALERTS_TOPIC, STATUS_TOPIC
from projections.rows import status_row
from tests.conftest import APPROVER, ASSIGNEE, OFFICE, Backend, Clock
from tests.kafka_fixtures import fresh_broker  # noqa: F401  (fixture)
from tests.streams.support import (
    processed,
    public_events,
    reap,
    relay_all,
    start_worker,
    stop_worker,
    wait_for,
    worker_env,
)

AS_OF = datetime(2026, 4, 30, 3, 0, tzinfo=UTC)  # Thu 2026-04-30 10:00 local
TASKS = 50
COMPARED = (
    "version", "status", "coarse_result", "lifecycle", "percent", "reports", "overdue_clocks",
    "clock_name", "clock_state", "next_due_clock",
)  # fmt: skip


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def test_the_worker_projects_status_and_raises_each_alert_once(
    fresh_broker: DevBroker,  # noqa: F811
    backend: Backend,
    home: Path,
    tmp_path: Path,
    signed: Callable[[bytes], tuple[str, dict[str, Any]]],
    pki: Any,
) -> None:
    """On each event store of TASKLEDGER_TEST_BACKENDS (SQLite and PostgreSQL in CI): the worker, its
    projector and its evaluator processes read the store through eventsourcing's own variables."""
    clock = Clock()
    app = TaskLedger(env=backend.env, clock=clock, trusted_roots=read_trusted_roots([pki.trusted_roots]))
    from tests.conftest import directive_command

    directive = app.execute(OFFICE, directive_command(signed)).aggregate_id
    tasks: list[UUID] = []
    for i in range(TASKS):
        clock.advance(minutes=1)
        tasks.append(
            app.execute(
                OFFICE, c.AssignTask(directive_id=directive, content=f"task {i}", assignee="HN", monitor="BKT")
            ).aggregate_id
        )
    for i, task in enumerate(tasks):
        if i % 10 == 0:
            continue  # never received
        clock.advance(minutes=1)
        app.execute(ASSIGNEE, c.ReceiveTask(task_id=task))
        app.execute(ASSIGNEE, c.ReportProgress(task_id=task, percent=40, note="half way"))
        app.execute(APPROVER, c.ApproveProgress(task_id=task))
    clock.set(AS_OF)
    expected_events = public_events(app)

    relay_all(app, fresh_broker.bootstrap)

    olap = tmp_path / "olap"
    log = tmp_path / "worker.log"
    started = time.monotonic()
    worker = start_worker(
        fresh_broker.bootstrap, home, olap, AS_OF.isoformat() + "@0", log, pki.trusted_roots, extra_env=backend.env
    )
    try:
        wait_for(lambda: processed(log) >= expected_events, 120, f"{expected_events} events processed", log)
        caught_up = time.monotonic() - started
        time.sleep(3)  # a few timer ticks: re-evaluations must not raise an alert twice
        stop_worker(worker, log)
    finally:
        reap(worker)
    print(f"worker caught up with {expected_events} events in {caught_up:.1f}s (incl. start-up and group join)")

    client = connect(f"chdb://{olap}")
    try:
        assert client.query("SELECT count() FROM task_events FINAL").result_rows[0][0] == expected_events
        names = list(client.query("SELECT * FROM task_status FINAL LIMIT 0").column_names)
        stored = {
            str(row[names.index("task_id")]): dict(zip(names, row, strict=True))
            for row in client.query("SELECT * FROM task_status FINAL").result_rows
        }
        assert len(stored) == TASKS
        for task in tasks:
            expected = status_row(app.task_view(task), updated_at=AS_OF)
            got = stored[str(task)]
            assert {k: got[k] for k in COMPARED} == {k: expected[k] for k in COMPARED}, task
        never_received = tasks[0]
        assert stored[str(never_received)]["status"] == expected_status(app, never_received)
        receipt_alerts = client.query(
            "SELECT kind, count() FROM task_alerts WHERE task_id = %(t)s AND clock = 'receipt' GROUP BY kind",
            parameters={"t": str(never_received)},
        ).result_rows
        assert dict(receipt_alerts).get("overdue") == 1, receipt_alerts  # no FINAL: inserted once
        duplicated = client.query(
            "SELECT count() FROM (SELECT alert_id FROM task_alerts GROUP BY alert_id HAVING count() > 1)"
        ).result_rows[0][0]
        assert duplicated == 0
    finally:
        client.close()

    alerts = [json.loads(r.value) for r in read_all(fresh_broker.bootstrap, ALERTS_TOPIC, timeout_s=30)]
    published = Counter((a["task_id"], a["clock"], a["kind"], a["due_at"]) for a in alerts)
    assert published and max(published.values()) == 1, published.most_common(3)
    overdue = [a for a in alerts if a["task_id"] == str(never_received) and a["clock"] == "receipt"]
    assert [a["kind"] for a in overdue].count("overdue") == 1
    statuses = {r.key.decode() for r in read_all(fresh_broker.bootstrap, STATUS_TOPIC, timeout_s=30)}
    assert statuses == {str(t) for t in tasks}
    app.close()


def expected_status(app: TaskLedger, task: UUID) -> str:
    return str(app.task_view(task)["status"])


def test_a_projector_that_cannot_open_its_store_makes_the_worker_exit_70_without_committing(
    fresh_broker: DevBroker,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The analytical store is a ClickHouse server that does not answer: the projector cannot open it, the
    first request (the ``open`` sent once the tables are recovered, with no event at all) fails, and the
    worker exits at once with code 70 instead of hanging in faust's clean stop (``taskledger up`` restarts
    it). Its projector child goes with it."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # nothing listens there once the socket is closed
    home, log = tmp_path / "home", tmp_path / "worker.log"
    home.mkdir()
    env = worker_env(fresh_broker.bootstrap, home, tmp_path / "olap", "2026-04-30T10:00:00+07:00@0")
    env["TASKLEDGER_CLICKHOUSE_URL"] = f"http://127.0.0.1:{closed_port}"
    with log.open("ab") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams.run"], cwd=str(tmp_path), env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        try:
            code = worker.wait(90)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker did not exit; log:\n{log.read_text()[-4000:]}")

        def group() -> list[str]:  # processes left in the worker's process group (its projector)
            return subprocess.run(["pgrep", "-g", str(worker.pid)], capture_output=True, text=True).stdout.split()

        deadline = time.monotonic() + 10
        while group() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert group() == []  # the projector died with it
    finally:
        reap(worker)
    text = log.read_text()
    assert code == 70, text[-4000:]
    assert "exiting (nothing unfinished is acked" in text
    assert f"cannot reach the ClickHouse server at TASKLEDGER_CLICKHOUSE_URL='http://127.0.0.1:{closed_port}" in text
