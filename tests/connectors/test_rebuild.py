"""connectors.rebuild and connectors.sql on a REAL chdb and a real (SQLite, encrypted) event store.

History, built through TaskLedger commands from Friday 2026-04-24 15:00 local (08:00 UTC), one minute apart:
one directive, five tasks to HN (deadline 2026-05-15):

* t1: received, 50 % reported and approved, 100 % reported and approved, completed;
* t2: received, 30 % reported (not yet approved);
* t3: received, 40 % reported and approved;
* t4: received, then transferred to HCM (which never receives it);
* t5: never received.

Rebuilt at Thursday 2026-04-30 10:00 local: after the receipt clocks (4 working hours), before the deadline.
One chdb engine for the module (chdb hosts one directory per process), a fresh database per test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from connectors.clickhouse import REBUILD_SUFFIX, migrate
from connectors.rebuild import rebuild, table_checksums
from connectors.settings import Settings
from connectors.sql import as_objects, run_sql
from domain import commands as c
from domain.application import TaskLedger
from domain.errors import ValidationError
from projections.writer import BatchWriter
from tests.conftest import APPROVER, ASSIGNEE, OFFICE, Clock, event_count, new_cipher_key
from tests.projections.support import fresh_database, open_engine, stored_envelopes

AS_OF = datetime(2026, 4, 30, 3, 0, tzinfo=UTC)  # Thu 2026-04-30 10:00 local
TABLES = ("task_events", "task_status", "task_alerts")


@dataclass
class Ledger:
    app: TaskLedger
    tasks: dict[str, UUID]
    directive: UUID


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from open_engine(tmp_path_factory.mktemp("olap"))


@pytest.fixture
def store(engine: Any) -> Iterator[Any]:
    for client in fresh_database(engine):
        migrate(client)
        yield client


@pytest.fixture
def ledger(
    make_ledger: Callable[..., TaskLedger],
    clock: Clock,
    register: Callable[..., UUID],
    assign: Callable[..., UUID],
) -> Ledger:
    app = make_ledger(cipher_key=new_cipher_key())

    def run(actor: Any, command: c.Command) -> None:
        clock.advance(minutes=1)
        app.execute(actor, command)

    directive = register(app)
    tasks: dict[str, UUID] = {}
    for name in ("t1", "t2", "t3", "t4", "t5"):
        clock.advance(minutes=1)
        tasks[name] = assign(app, directive)
    t1, t2, t3, t4 = (tasks[n] for n in ("t1", "t2", "t3", "t4"))
    for task in (t1, t2, t3, t4):
        run(ASSIGNEE, c.ReceiveTask(task_id=task))
    run(ASSIGNEE, c.ReportProgress(task_id=t1, percent=50, note="half way"))
    run(APPROVER, c.ApproveProgress(task_id=t1))
    run(ASSIGNEE, c.ReportProgress(task_id=t1, percent=100, products="the plan"))
    run(APPROVER, c.ApproveProgress(task_id=t1))
    run(ASSIGNEE, c.CompleteTask(task_id=t1, result="done"))
    run(ASSIGNEE, c.ReportProgress(task_id=t2, percent=30))
    run(ASSIGNEE, c.ReportProgress(task_id=t3, percent=40))
    run(APPROVER, c.ApproveProgress(task_id=t3))
    run(OFFICE, c.TransferTask(task_id=t4, to="HCM", reason="competence"))
    clock.set(AS_OF)
    return Ledger(app, tasks, directive)


def rows(client: Any, sql: str) -> list[tuple]:
    return [tuple(r) for r in client.query(sql).result_rows]


def scalar(client: Any, sql: str) -> Any:
    return client.query(sql).result_rows[0][0]


def live_tables(client: Any) -> list[str]:
    return [
        r[0] for r in rows(client, "SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name")
    ]


def names_of(ledger: Ledger) -> dict[str, str]:
    return {str(v): k for k, v in ledger.tasks.items()}


def fresh_tables(client: Any) -> list[str]:
    return [t for t in live_tables(client) if t.endswith(REBUILD_SUFFIX)]


# -- rebuild ----------------------------------------------------------------------------------------------------------
def test_a_rebuild_fills_every_table_from_the_event_store(store: Any, ledger: Ledger) -> None:
    store.command(
        "INSERT INTO task_status (task_id, version, as_of, directive_id, confidentiality, status) "
        "VALUES (generateUUIDv4(), 1, now64(), generateUUIDv4(), 'regular', 'stale')"
    )  # a stale row
    calls: list[tuple[int, int]] = []

    result = rebuild(ledger.app, store, as_of=AS_OF, progress=lambda done, total: calls.append((done, total)))

    published = stored_envelopes(ledger.app)  # what the relay publishes: every public stored event
    assert len(published) == event_count(ledger.app) == 20
    assert result["tables"] == {"task_events": 20, "task_status": 5, "task_alerts": 18}
    assert (result["notifications"], result["tasks"], result["rows"]) == (20, 5, 43)
    assert result["as_of"] == "2026-04-30T03:00:00Z"
    assert calls[0] == (0, 25) and calls[-1] == (25, 25)
    assert {table: scalar(store, f"SELECT count() FROM {table} FINAL") for table in TABLES} == result["tables"]

    # task_events: exactly the relay's envelopes, levels and all
    assert {str(r[0]) for r in rows(store, "SELECT event_id FROM task_events FINAL")} == {
        e["event_id"] for e in published
    }
    assert rows(store, "SELECT type, count() FROM task_events FINAL GROUP BY type ORDER BY type") == [
        ("CalendarEstablished", 1),
        ("DirectiveRegistered", 1),
        ("ProgressApproved", 3),
        ("ProgressReported", 4),
        ("TaskAssigned", 5),
        ("TaskCompleted", 1),
        ("TaskReceived", 4),
        ("TaskTransferred", 1),
    ]
    assert rows(store, "SELECT confidentiality, count() FROM task_events FINAL GROUP BY 1 ORDER BY 1") == [
        ("regular", 19),
        (None, 1),
    ]

    # task_status: one row per task, the stale row gone
    names = names_of(ledger)
    status = {
        names[str(r[0])]: tuple(r[1:])
        for r in rows(
            store, "SELECT task_id, status, lifecycle, percent, assignee, as_of, updated_at FROM task_status FINAL"
        )
    }
    assert status == {
        "t1": ("completed_on_time", "completed", 100, "HN", AS_OF, AS_OF),
        "t2": ("not_started_on_time", "received", 0, "HN", AS_OF, AS_OF),
        "t3": ("in_progress_on_time", "received", 40, "HN", AS_OF, AS_OF),
        "t4": ("awaiting_receipt", "awaiting_receipt", 0, "HCM", AS_OF, AS_OF),
        "t5": ("awaiting_receipt", "awaiting_receipt", 0, "HN", AS_OF, AS_OF),
    }

    # task_alerts: the receipt t5 never got (and HCM's receipt of t4) ran through every kind up to overdue
    kinds: dict[tuple[str, str], list[str]] = {}
    for task, clock, kind in rows(store, "SELECT task_id, clock, kind FROM task_alerts FINAL ORDER BY raised_at, kind"):
        kinds.setdefault((names[str(task)], clock), []).append(kind)
    assert kinds == {
        ("t1", "receipt"): ["met"],
        ("t2", "receipt"): ["met"],
        ("t3", "receipt"): ["met"],
        ("t4", "receipt"): ["met", "warning", "due_soon", "due_now", "overdue"],
        ("t1", "deadline"): ["met"],
        ("t1", "result_report"): ["met"],
        ("t5", "receipt"): ["warning", "due_soon", "due_now", "overdue"],
        ("t2", "objection"): ["warning", "due_soon"],
        ("t3", "objection"): ["warning", "due_soon"],
    }
    t5 = str(ledger.tasks["t5"])
    assert rows(
        store,
        f"SELECT kind, due_at, raised_at, agency FROM task_alerts FINAL WHERE task_id = '{t5}' "
        "ORDER BY raised_at, kind",
    ) == [
        ("warning", datetime(2026, 4, 28, 3, 5, tzinfo=UTC), datetime(2026, 4, 28, 1, 5, tzinfo=UTC), "HN"),
        ("due_soon", datetime(2026, 4, 28, 3, 5, tzinfo=UTC), datetime(2026, 4, 28, 2, 41, tzinfo=UTC), "HN"),
        ("due_now", datetime(2026, 4, 28, 3, 5, tzinfo=UTC), datetime(2026, 4, 28, 3, 5, tzinfo=UTC), "HN"),
        ("overdue", datetime(2026, 4, 28, 3, 5, tzinfo=UTC), datetime(2026, 4, 28, 3, 5, tzinfo=UTC), "HN"),
    ]
    assert fresh_tables(store) == []


def receipt_alerts_of(client: Any, task: UUID) -> dict[str, datetime]:
    found = rows(
        client,
        f"SELECT kind, raised_at FROM task_alerts FINAL WHERE task_id = '{task}' AND clock = 'receipt' ORDER BY kind",
    )
    return {kind: raised.astimezone(UTC) for kind, raised in found}


def test_the_alert_thresholds_are_the_configured_shares_of_working_time(store: Any, ledger: Ledger) -> None:
    """t5 is assigned Friday 24 April 2026 15:05 local and never received: its receipt clock (4 working
    hours) runs 15:05-17:00 Friday (1 h 55), skips Monday 27 (Hung Kings' day, observed) and falls due
    Tuesday 28 at 10:05 local. 50 % (2 h) is Tuesday 08:05, 90 % (3 h 36) Tuesday 09:41; with the shares
    25 % / 75 %: 1 h -> Friday 16:05, 3 h -> Tuesday 09:05."""
    t5 = ledger.tasks["t5"]
    rebuild(ledger.app, store, as_of=AS_OF)
    assert receipt_alerts_of(store, t5) == {
        "due_now": datetime(2026, 4, 28, 3, 5, tzinfo=UTC),
        "due_soon": datetime(2026, 4, 28, 2, 41, tzinfo=UTC),
        "overdue": datetime(2026, 4, 28, 3, 5, tzinfo=UTC),  # raised_at = the due instant it passed
        "warning": datetime(2026, 4, 28, 1, 5, tzinfo=UTC),
    }
    rebuild(
        ledger.app,
        store,
        as_of=AS_OF,
        policy=Settings(alert_warning_share=0.25, alert_due_soon_share=0.75).alert_policy(),
    )
    assert receipt_alerts_of(store, t5) == {
        "due_now": datetime(2026, 4, 28, 3, 5, tzinfo=UTC),
        "due_soon": datetime(2026, 4, 28, 2, 5, tzinfo=UTC),
        "overdue": datetime(2026, 4, 28, 3, 5, tzinfo=UTC),  # raised_at = the due instant it passed
        "warning": datetime(2026, 4, 24, 9, 5, tzinfo=UTC),
    }


def test_alert_shares_out_of_order_are_refused_naming_the_setting() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(alert_warning_share=0.95, alert_due_soon_share=0.9).alert_policy()
    assert refused.value.field == "TASKLEDGER_ALERT_DUE_SOON_SHARE"
    assert "must be greater than warning_share (0.95)" in refused.value.rule
    with pytest.raises(ValidationError) as refused:
        Settings(alert_warning_share=0, alert_due_soon_share=0.9).alert_policy()
    assert refused.value.field == "TASKLEDGER_ALERT_WARNING_SHARE"


def test_rebuilding_twice_gives_identical_checksums(store: Any, ledger: Ledger) -> None:
    rebuild(ledger.app, store, as_of=AS_OF)
    first = table_checksums(store)
    rebuild(ledger.app, store)  # as_of = app.clock() = AS_OF
    second = table_checksums(store)

    assert first == second
    assert {t: n for t, (n, _) in first.items()} == {"task_events": 20, "task_status": 5, "task_alerts": 18}

    rebuild(ledger.app, store, as_of=datetime(2026, 5, 20, 3, 0, tzinfo=UTC))  # after the deadline
    later = table_checksums(store)
    assert later["task_events"] == first["task_events"]  # the same facts
    assert later["task_status"] != first["task_status"]  # evaluated at another instant
    assert later["task_alerts"][0] > first["task_alerts"][0]  # deadline alerts of the open tasks


class FailingWriter(BatchWriter):
    """Fails on the first insert into one table's fresh copy."""

    target = ""

    def _insert(self, limit: int) -> int:
        if self.table == self.target + REBUILD_SUFFIX:
            raise RuntimeError(f"injected failure writing {self.table}")
        return super()._insert(limit)


@pytest.mark.parametrize("failing", ["task_events", "task_status", "task_alerts", "progress"])
def test_a_failed_rebuild_leaves_the_live_tables_untouched(store: Any, ledger: Ledger, failing: str) -> None:
    rebuild(ledger.app, store, as_of=AS_OF)
    before = table_checksums(store)
    clock_later = datetime(2026, 5, 20, 3, 0, tzinfo=UTC)  # would change task_status and task_alerts

    writer = type("Failing", (FailingWriter,), {"target": failing})

    def progress(done: int, total: int) -> None:
        if failing == "progress" and done >= 20:  # after the log pass, before the tasks
            raise KeyboardInterrupt

    expected: type[BaseException] = KeyboardInterrupt if failing == "progress" else RuntimeError
    with pytest.raises(expected):
        rebuild(ledger.app, store, as_of=clock_later, progress=progress, writer=writer, batch_rows=3)

    assert table_checksums(store) == before
    assert fresh_tables(store) == []
    assert rebuild(ledger.app, store, as_of=AS_OF)["tables"]["task_events"] == 20  # and a new rebuild works
    assert table_checksums(store) == before


class BrokenStatusRows(BatchWriter):
    """The rebuild's writer (its ``writer`` parameter) with a value ClickHouse refuses in every status row."""

    def add(self, rows: Any) -> int:
        if self.table.startswith("task_status"):
            rows = [{**row, "percent": "not a number"} for row in rows]
        return super().add(rows)


def test_a_broken_row_fails_the_rebuild_before_the_swap(store: Any, ledger: Ledger) -> None:
    rebuild(ledger.app, store, as_of=AS_OF)
    before = table_checksums(store)

    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises for a bad value
        rebuild(ledger.app, store, as_of=AS_OF, writer=BrokenStatusRows)

    assert table_checksums(store) == before
    assert fresh_tables(store) == []


# -- sql --------------------------------------------------------------------------------------------------------
def test_run_sql_returns_the_rows_of_a_slice_view(store: Any, ledger: Ledger) -> None:
    rebuild(ledger.app, store, as_of=AS_OF)

    columns, result = run_sql(
        store,
        "-- tasks per agency\nSELECT assignee, tasks, awaiting_receipt, completed_on_time, avg_percent "
        "FROM status_by_assignee ORDER BY assignee;",
    )

    assert columns == ["assignee", "tasks", "awaiting_receipt", "completed_on_time", "avg_percent"]
    assert result == [("HCM", 1, 1, 0, 0.0), ("HN", 4, 1, 1, 35.0)]
    assert as_objects(columns, result)[0] == {
        "assignee": "HCM",
        "tasks": 1,
        "awaiting_receipt": 1,
        "completed_on_time": 0,
        "avg_percent": 0.0,
    }
    assert run_sql(store, "WITH 2 AS n SELECT n * 21 AS answer") == (["answer"], [(42,)])
    assert run_sql(store, "SHOW TABLES LIKE 'task_status'") == (["name"], [("task_status",)])


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO task_status (task_id) VALUES (generateUUIDv4())",
        "  /* sneaky */ insert into task_events SELECT * FROM task_events",
        "SELECT 1; DROP TABLE task_status",
        "DROP TABLE task_status",
        "ALTER TABLE task_status DELETE WHERE 1",
        "",
    ],
)
def test_run_sql_refuses_anything_but_a_read(store: Any, ledger: Ledger, statement: str) -> None:
    rebuild(ledger.app, store, as_of=AS_OF)
    before = table_checksums(store)

    with pytest.raises(ValidationError) as refused:
        run_sql(store, statement)

    assert refused.value.field == "statement"
    assert table_checksums(store) == before


def test_a_semicolon_inside_a_literal_is_not_a_second_statement(store: Any) -> None:
    assert run_sql(store, "SELECT ';' AS semicolon;") == (["semicolon"], [(";",)])


def test_a_statement_on_a_missing_table_fails_in_one_clear_line(store: Any) -> None:
    from connectors.clickhouse import ClickHouseError

    with pytest.raises(ClickHouseError, match="run 'taskledger projections migrate'"):
        run_sql(store, "SELECT count() FROM no_such_table_here")
