"""The stream worker end to end: real tansu broker, real SQLite event store, real chdb, real subprocess.

History (fixed clock, from Friday 2026-04-24 15:00 local, one minute apart): one signed directive and 50
tasks to HN; every task but each tenth is received and has a 40 % report approved; tasks 0, 10, 20, ... are
never received. The relay publishes the store; the worker (``python -m streams.run``) consumes it with its
clock fixed at Thursday 2026-04-30 10:00 local (after every receipt clock fell due). chdb is owned by the
worker process, so the test stops it (SIGTERM) before reading the tables.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from connectors.broker import DevBroker
from connectors.clickhouse import connect
from connectors.eventstore import persistence_env
from connectors.kafka import read_all
from connectors.pki import read_trusted_roots
from connectors.relay import Relay
from connectors.settings import Settings
from domain import commands as c
from domain.application import TaskLedger
from domain.contract import ALERTS_TOPIC, STATUS_TOPIC, STORED_TOPICS
from projections.rows import status_row
from tests.conftest import APPROVER, ASSIGNEE, OFFICE, Clock
from tests.kafka_fixtures import fresh_broker  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
AS_OF = datetime(2026, 4, 30, 3, 0, tzinfo=UTC)  # Thu 2026-04-30 10:00 local
TASKS = 50
COMPARED = (
    "version", "status", "coarse_result", "lifecycle", "percent", "reports", "overdue_clocks",
    "clock_name", "clock_state", "next_due_clock",
)  # fmt: skip


def public_events(app: TaskLedger) -> int:
    notes = app.recorder.select_notifications(start=1, limit=10**7)
    return sum(1 for n in notes if n.topic in STORED_TOPICS)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{log.read_text()[-6000:]}")


def processed(log: Path) -> int:
    best = 0
    for line in log.read_text(errors="replace").splitlines():
        if "worker: batch of" in line and "(total " in line:
            best = max(best, int(line.split("(total ")[1].split()[0]))
    return best


def start_worker(broker: DevBroker, home: Path, olap: Path, pki: Any, clock: str, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TASKLEDGER_HOME": str(home),
        "TASKLEDGER_KAFKA_BOOTSTRAP": broker.bootstrap,
        "TASKLEDGER_CLICKHOUSE_URL": f"chdb://{olap}",
        "TASKLEDGER_CLOCK": clock,
        "TASKLEDGER_TRUSTED_ROOTS": str(pki.trusted_roots),
    }
    env.pop("PERSISTENCE_MODULE", None)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.run"], cwd=str(log.parent), env=env, stdout=out, stderr=subprocess.STDOUT
        )


def stop_worker(worker: subprocess.Popen, log: Path) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        code = worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
        pytest.fail(f"the worker ignored SIGTERM; log:\n{log.read_text()[-4000:]}")
    assert code == 0, log.read_text()[-4000:]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def test_the_worker_projects_status_and_raises_each_alert_once(
    fresh_broker: DevBroker,  # noqa: F811
    home: Path,
    tmp_path: Path,
    signed: Callable[[bytes], tuple[str, dict[str, Any]]],
    pki: Any,
) -> None:
    clock = Clock()
    settings = Settings(home=home)
    app = TaskLedger(env=persistence_env(settings), clock=clock, trusted_roots=read_trusted_roots([pki.trusted_roots]))
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

    relay = Relay(app, fresh_broker.bootstrap)
    try:
        relay.run(until_caught_up=True, max_seconds=60)
    finally:
        relay.close()

    olap = tmp_path / "olap"
    log = tmp_path / "worker.log"
    started = time.monotonic()
    worker = start_worker(fresh_broker, home, olap, pki, AS_OF.isoformat() + "@0", log)  # fixed clock
    try:
        wait_for(lambda: processed(log) >= expected_events, 120, f"{expected_events} events processed", log)
        caught_up = time.monotonic() - started
        time.sleep(3)  # a few timer ticks: re-evaluations must not raise an alert twice
    finally:
        stop_worker(worker, log)
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


def receipt_alerts(bootstrap: str, task: UUID) -> list[dict[str, Any]]:
    alerts = [json.loads(r.value) for r in read_all(bootstrap, ALERTS_TOPIC, timeout_s=30)]
    return [a for a in alerts if a["task_id"] == str(task) and a["clock"] == "receipt"]


def test_alerts_are_time_driven_and_raised_once_across_restarts(
    fresh_broker: DevBroker,  # noqa: F811
    home: Path,
    tmp_path: Path,
    signed: Callable[[bytes], tuple[str, dict[str, Any]]],
    pki: Any,
) -> None:
    """No event arrives when a receipt clock falls due: the timer raises ``overdue``. A restarted worker
    (tables recovered from their changelogs) re-evaluates the task on a new event without raising it again."""
    from tests.conftest import directive_command

    clock = Clock()
    settings = Settings(home=home)
    app = TaskLedger(env=persistence_env(settings), clock=clock, trusted_roots=read_trusted_roots([pki.trusted_roots]))
    directive = app.execute(OFFICE, directive_command(signed)).aggregate_id
    clock.advance(minutes=1)
    task = app.execute(
        OFFICE, c.AssignTask(directive_id=directive, content="never received", assignee="HN", monitor="BKT")
    ).aggregate_id
    due = datetime.fromisoformat(app.task_view(task)["clocks"]["receipt_due_at"]).astimezone(UTC)
    relay = Relay(app, fresh_broker.bootstrap)
    try:
        relay.run(until_caught_up=True, max_seconds=60)
    finally:
        relay.close()

    olap = tmp_path / "olap"
    log = tmp_path / "worker.log"
    # the worker's clock starts 12 s before the receipt falls due and runs at wall speed
    worker = start_worker(fresh_broker, home, olap, pki, (due - timedelta(seconds=12)).isoformat() + "@1", log)
    try:
        wait_for(lambda: processed(log) >= 3, 60, "the first batch", log)
        assert "overdue" not in [a["kind"] for a in receipt_alerts(fresh_broker.bootstrap, task)]
        wait_for(
            lambda: "overdue" in [a["kind"] for a in receipt_alerts(fresh_broker.bootstrap, task)],
            60,
            "the timer to raise the receipt overdue alert",
            log,
        )
    finally:
        stop_worker(worker, log)

    # a new fact about the task while the worker is down; the restarted worker is a minute past the due instant
    clock.set(due + timedelta(minutes=1))
    app.execute(OFFICE, c.UrgeTask(task_id=task, message="please acknowledge"))
    relay = Relay(app, fresh_broker.bootstrap)
    try:
        relay.run(until_caught_up=True, max_seconds=60)
    finally:
        relay.close()
    log2 = tmp_path / "worker2.log"
    worker = start_worker(fresh_broker, home, olap, pki, (due + timedelta(minutes=1)).isoformat() + "@1", log2)
    try:
        wait_for(lambda: processed(log2) >= 1, 60, "the new event", log2)
        time.sleep(3)  # timer ticks
    finally:
        stop_worker(worker, log2)

    kinds = Counter(a["kind"] for a in receipt_alerts(fresh_broker.bootstrap, task))
    assert kinds["overdue"] == 1, kinds
    assert max(kinds.values()) == 1, kinds
    client = connect(f"chdb://{olap}")
    try:
        rows = client.query(
            "SELECT kind, count() FROM task_alerts WHERE task_id = %(t)s AND clock = 'receipt' GROUP BY kind",
            parameters={"t": str(task)},
        ).result_rows
        assert dict(rows).get("overdue") == 1, rows
        versions = client.query(
            "SELECT version FROM task_status FINAL WHERE task_id = %(t)s", parameters={"t": str(task)}
        ).result_rows
        assert versions == [(app.get_task(task).version,)]
    finally:
        client.close()
    app.close()
