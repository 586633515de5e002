"""The analytical store on a REAL in-process ClickHouse (chdb): replays never double-count, late rows never
win, alerts count once, and the views give exact counts.

One chdb engine for the module (chdb hosts one directory per process), a fresh database per test."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from connectors.clickhouse import migrate
from projections.rows import alert_row, event_row, status_row
from projections.schema import ALERT_COLUMNS, EVENT_COLUMNS, STATUS_COLUMNS
from projections.writer import BatchWriter
from tests.projections.support import FREE_TEXTS, History, fresh_database, open_engine

JUNE_3 = datetime(2026, 6, 3, 3, 0, tzinfo=UTC)
DAY = date(2026, 4, 24)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from open_engine(tmp_path_factory.mktemp("olap"))


@pytest.fixture
def store(engine: Any) -> Iterator[Any]:
    for client in fresh_database(engine):
        migrate(client)
        yield client


def scalar(client: Any, sql: str) -> Any:
    return client.query(sql).result_rows[0][0]


def write(client: Any, table: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    with BatchWriter(client, table, columns, max_rows=10_000, max_seconds=1.0) as writer:
        writer.add(rows)


def write_events(client: Any, history: History) -> list[dict[str, Any]]:
    rows = [event_row(e) for e in history.envelopes]
    write(client, "task_events", EVENT_COLUMNS, rows)
    return rows


# -- task_events ----------------------------------------------------------------------------------------------------
def test_a_replayed_history_counts_once(store: Any, history: History) -> None:
    rows = write_events(store, history)
    write_events(store, history)  # the whole log replayed
    write(store, "task_events", EVENT_COLUMNS, list(reversed(rows[5:20])))  # a re-delivery, out of order
    distinct = len({(r["aggregate_id"], r["version"]) for r in rows})

    assert distinct == len(history.envelopes) == 34
    assert scalar(store, "SELECT count() FROM task_events FINAL") == distinct
    assert scalar(store, "SELECT count() FROM task_events_final") == distinct
    assert scalar(store, "SELECT uniqExact(event_id) FROM task_events") == distinct
    store.command("OPTIMIZE TABLE task_events FINAL")
    assert scalar(store, "SELECT count() FROM task_events") == distinct  # the engine itself collapsed them


def test_an_event_row_round_trips_with_its_types(store: Any, history: History) -> None:
    expected = event_row(history.one("DirectiveRegistered", "d1"))
    write(store, "task_events", EVENT_COLUMNS, [expected])

    result = store.query(f"SELECT {', '.join(EVENT_COLUMNS)} FROM task_events FINAL")
    got = dict(zip(EVENT_COLUMNS, result.result_rows[0], strict=True))

    got = {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in got.items()}
    assert got == expected
    assert got["occurred_at"].tzinfo is not None


# -- task_status ----------------------------------------------------------------------------------------------------
def current(store: Any, task_id: str, *columns: str) -> list[tuple[Any, ...]]:
    return store.query(
        f"SELECT {', '.join(columns)} FROM task_status_current WHERE task_id = %(t)s", parameters={"t": task_id}
    ).result_rows


def test_a_late_lower_version_never_wins(store: Any, history: History) -> None:
    app, t1 = history.app, history.ids["t1"]
    newest = status_row(app.task_view(t1, as_of=JUNE_3))  # version 19, completed
    early = status_row(app.task_view(t1, as_of=datetime(2026, 4, 24, 8, 10, 30, tzinfo=UTC)))  # version 6
    assert (early["version"], early["status"]) == (6, "not_started_on_time")

    write(store, "task_status", STATUS_COLUMNS, [newest])
    write(store, "task_status", STATUS_COLUMNS, [early])  # arrives late (a replay, a slow partition)
    write(store, "task_status", STATUS_COLUMNS, [newest])  # and a repeat

    assert current(store, str(t1), "version", "status", "percent") == [(19, "completed_on_time", 100)]
    assert scalar(store, "SELECT count() FROM task_status_current") == 1
    store.command("OPTIMIZE TABLE task_status FINAL")
    assert store.query("SELECT version FROM task_status").result_rows == [(19,)]


def test_within_a_version_the_latest_evaluation_wins(store: Any, history: History) -> None:
    """Time-driven re-evaluation: same version, later as_of (the checkpoint became overdue)."""
    app, t3 = history.app, history.ids["t3"]
    may = status_row(app.task_view(t3, as_of=datetime(2026, 5, 4, 3, 0, tzinfo=UTC)))
    june = status_row(app.task_view(t3, as_of=JUNE_3))
    july = status_row(app.task_view(t3, as_of=datetime(2026, 7, 1, 3, 0, tzinfo=UTC)))
    assert may["version"] == june["version"] == july["version"] == 4

    write(store, "task_status", STATUS_COLUMNS, [june])
    write(store, "task_status", STATUS_COLUMNS, [may])  # an older evaluation delivered late
    assert current(store, str(t3), "overdue_clocks", "status") == [(1, "in_progress_on_time")]

    write(store, "task_status", STATUS_COLUMNS, [july])
    assert current(store, str(t3), "status", "as_of") == [
        ("in_progress_overdue", datetime(2026, 7, 1, 3, 0, tzinfo=UTC))
    ]


def test_a_status_row_round_trips_with_its_clocks(store: Any, history: History) -> None:
    expected = status_row(history.app.task_view(history.ids["t3"], as_of=JUNE_3))
    write(store, "task_status", STATUS_COLUMNS, [expected])

    got = dict(
        zip(
            STATUS_COLUMNS,
            store.query(f"SELECT {', '.join(STATUS_COLUMNS)} FROM task_status").result_rows[0],
            strict=True,
        )
    )

    got = {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in got.items()}
    assert got == expected


# -- task_alerts ----------------------------------------------------------------------------------------------------
def test_an_alert_counts_once_and_keeps_its_first_raise(store: Any, history: History) -> None:
    view = history.app.task_view(history.ids["t3"], as_of=JUNE_3)
    clocks = {c["clock"]: c for c in view["clocks"]["all"]}
    first = alert_row(view, clocks["checkpoint_0.5"], "overdue", JUNE_3)
    replayed = alert_row(view, clocks["checkpoint_0.5"], "overdue", JUNE_3 + timedelta(days=2))
    warning = alert_row(view, clocks["deadline"], "warning", JUNE_3)

    write(store, "task_alerts", ALERT_COLUMNS, [replayed, warning])  # the replay happens to land first
    write(store, "task_alerts", ALERT_COLUMNS, [first, warning])
    write(store, "task_alerts", ALERT_COLUMNS, [replayed])

    assert scalar(store, "SELECT count() FROM task_alerts FINAL") == 2
    assert store.query("SELECT clock, kind, raised_at FROM task_alerts_once ORDER BY clock").result_rows == [
        ("checkpoint_0.5", "overdue", JUNE_3),
        ("deadline", "warning", JUNE_3),
    ]


def test_a_new_instance_of_a_clock_is_a_new_alert(store: Any, history: History) -> None:
    """After an extension the deadline clock is due at another instant: its warning is raised again."""
    view = history.app.task_view(history.ids["t3"], as_of=JUNE_3)
    deadline = next(c for c in view["clocks"]["all"] if c["clock"] == "deadline")
    extended = dict(deadline, due_at="2026-08-31T17:00:00+07:00")

    write(store, "task_alerts", ALERT_COLUMNS, [alert_row(view, deadline, "warning", JUNE_3)] * 2)
    write(store, "task_alerts", ALERT_COLUMNS, [alert_row(view, extended, "warning", JUNE_3)] * 2)

    assert scalar(store, "SELECT count() FROM task_alerts_once WHERE clock = 'deadline'") == 2


def test_agency_daily_alerts(store: Any, history: History) -> None:
    t3 = history.app.task_view(history.ids["t3"], as_of=JUNE_3)
    t1 = history.app.task_view(history.ids["t1"], as_of=JUNE_3)
    c3 = {c["clock"]: c for c in t3["clocks"]["all"]}
    c1 = {c["clock"]: c for c in t1["clocks"]["all"]}
    late_evening = datetime(2026, 6, 3, 18, 0, tzinfo=UTC)  # 01:00 local on 4 June
    alerts = [
        alert_row(t3, c3["checkpoint_0.5"], "warning", datetime(2026, 5, 30, 3, 0, tzinfo=UTC)),
        alert_row(t3, c3["checkpoint_0.5"], "due_soon", JUNE_3),
        alert_row(t3, c3["checkpoint_0.5"], "overdue", JUNE_3),
        alert_row(t3, c3["deadline"], "warning", late_evening),
        alert_row(t1, c1["receipt"], "met", JUNE_3),
    ]
    write(store, "task_alerts", ALERT_COLUMNS, alerts + alerts)

    got = store.query(
        "SELECT day, agency, alerts, warning, due_soon, due_now, overdue, met, met_late "
        "FROM agency_daily_alerts ORDER BY day, agency"
    ).result_rows
    assert got == [
        (date(2026, 5, 30), "QN", 1, 1, 0, 0, 0, 0, 0),
        (date(2026, 6, 3), "HN", 1, 0, 0, 0, 0, 1, 0),
        (date(2026, 6, 3), "QN", 2, 0, 1, 0, 1, 0, 0),
        (date(2026, 6, 4), "QN", 1, 1, 0, 0, 0, 0, 0),
    ]


# -- per agency, per day --------------------------------------------------------------------------------------------
def test_agency_daily_activity_attributes_events_to_the_assignee_of_the_moment(store: Any, history: History) -> None:
    write_events(store, history)
    write_events(store, history)  # replayed: still counted once

    result = store.query("SELECT * FROM agency_daily_activity ORDER BY agency")
    got = {row[1]: dict(zip(result.column_names, row, strict=True)) for row in result.result_rows}

    assert sorted(got) == ["DN", "HCM", "HN", "HNQ1", "QN"]
    assert {a: r["day"] for a, r in got.items()} == dict.fromkeys(got, DAY)

    def nonzero(agency: str) -> dict[str, int]:
        return {k: v for k, v in got[agency].items() if k not in ("day", "agency") and v}

    assert nonzero("HN") == {
        "events": 19,
        "assigned": 1,
        "subtasks_assigned": 1,
        "received": 1,
        "objected": 1,
        "objections_resolved": 1,
        "adjusted": 1,
        "progress_reported": 3,
        "progress_approved": 2,
        "progress_returned": 1,
        "urged": 1,
        "difficulties": 1,
        "extensions": 1,
        "delay_explanations": 1,
        "completed": 1,
        "completed_on_time": 1,
        "evaluated": 1,
        "findings": 1,
    }
    assert nonzero("DN") == {"events": 1, "assigned": 1}  # before the transfer
    assert nonzero("HCM") == {"events": 2, "transferred_in": 1, "cancelled": 1}  # after it
    assert nonzero("HNQ1") == {"events": 1, "assigned": 1, "assigned_as_subtask": 1}
    assert nonzero("QN") == {"events": 4, "assigned": 1, "received": 1, "progress_reported": 1, "progress_approved": 1}


# -- the SPEC 4 slices ----------------------------------------------------------------------------------------------
def hand_built_statuses(base: dict[str, Any]) -> list[dict[str, Any]]:
    """Ten top-level tasks, one subtask (never in the slices), one stale version (never counted)."""
    kinds = {"P": "provincial_committee", "M": "municipal_committee", "C": "central_body", "O": "other"}
    levels = {"R": "regular", "C": "confidential", "T": "top_secret"}
    # fmt: off
    specs = [
        # agency, kind, scope, scope name, priority, level, ad hoc, with deadline, status, percent, overdue clocks
        ("HN", "P", "national", None, "key", "R", False, True, "completed_on_time", 100, 0),
        ("HN", "P", "sector", "Science", "key", "R", False, True, "completed_late", 100, 0),
        ("HN", "P", "national", None, "regular", "C", False, True, "in_progress_overdue", 40, 2),
        ("HCM", "M", "regional", "Mekong", "urgent", "R", False, True, "in_progress_on_time", 60, 0),
        ("HCM", "M", "regional", "Mekong", "regular", "T", False, False, "not_started_on_time", 0, 0),
        ("BTG", "C", "national", None, "regular", "R", True, False, "awaiting_receipt", 0, 1),
        ("BTG", "C", "sector", "Science", "urgent", "R", True, True, "not_started_overdue", 0, 3),
        ("QN", "P", "sector", "Energy", "key", "C", False, True, "objected", 0, 0),
        ("QN", "P", "regional", "Northeast", "regular", "R", False, False, "cancelled", 20, 0),
        ("DN", "O", "national", None, "regular", "R", True, True, "in_progress_on_time", 80, 0),
    ]
    # fmt: on
    rows = []
    for n, (agency, kind, scope, name, priority, level, ad_hoc, dated, status, percent, overdue) in enumerate(specs):
        row = copy.deepcopy(base)
        row.update(
            task_id=str(uuid.UUID(int=n + 1)),
            version=5,
            assignee=agency,
            assignee_kind=kinds[kind],
            monitor="BKT" if n % 2 else "VPTW",
            scope=scope,
            scope_name=name,
            priority=priority,
            confidentiality=levels[level],
            ad_hoc=ad_hoc,
            with_deadline=dated,
            deadline=date(2026, 6, 30) if dated else None,
            status=status,
            percent=percent,
            overdue_clocks=overdue,
        )
        rows.append(row)
    subtask = dict(copy.deepcopy(rows[0]), task_id=str(uuid.UUID(int=99)), parent_id=rows[0]["task_id"])
    stale = dict(copy.deepcopy(rows[0]), version=4, status="not_started_overdue", assignee="XX")
    return [*rows, subtask, stale]


STATUS_COLUMNS_COUNTED = (
    "tasks",
    "completed_on_time",
    "completed_late",
    "in_progress_on_time",
    "in_progress_overdue",
    "not_started_on_time",
    "not_started_overdue",
    "awaiting_receipt",
    "objected",
    "cancelled",
    "overdue",
    "with_overdue_clocks",
    "avg_percent",
)


def sliced(store: Any, view: str, keys: tuple[str, ...]) -> dict[Any, tuple[Any, ...]]:
    result = store.query(f"SELECT {', '.join(keys + STATUS_COLUMNS_COUNTED)} FROM {view}")
    return {(r[0] if len(keys) == 1 else tuple(r[: len(keys)])): tuple(r[len(keys) :]) for r in result.result_rows}


@pytest.fixture
def statuses(store: Any, history: History) -> Any:
    base = status_row(history.app.task_view(history.ids["t3"], as_of=JUNE_3))
    rows = hand_built_statuses(base)
    write(store, "task_status", STATUS_COLUMNS, rows)
    write(store, "task_status", STATUS_COLUMNS, rows[:10])  # replayed
    return store


#                 tasks cot  cl ipot ipo nsot nso aw  obj can overdue w/clocks avg%
def test_slice_by_deadline(statuses: Any) -> None:
    assert sliced(statuses, "status_by_deadline", ("time_class",)) == {
        "with_deadline": (7, 1, 1, 2, 1, 0, 1, 0, 1, 0, 2, 2, 54.3),
        "without_deadline": (3, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 6.7),
    }


def test_slice_by_assignee_and_kind(statuses: Any) -> None:
    assert sliced(statuses, "status_by_assignee", ("assignee", "assignee_kind")) == {
        ("HN", "provincial_committee"): (3, 1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 80.0),
        ("HCM", "municipal_committee"): (2, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 30.0),
        ("BTG", "central_body"): (2, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 2, 0.0),
        ("QN", "provincial_committee"): (2, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 10.0),
        ("DN", "other"): (1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 80.0),
    }
    assert sliced(statuses, "status_by_assignee_kind", ("assignee_kind",)) == {
        "provincial_committee": (5, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 52.0),
        "municipal_committee": (2, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 30.0),
        "central_body": (2, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 2, 0.0),
        "other": (1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 80.0),
    }


def test_slice_by_scope(statuses: Any) -> None:
    assert sliced(statuses, "status_by_scope", ("scope", "scope_name")) == {
        ("national", None): (4, 1, 0, 1, 1, 0, 0, 1, 0, 0, 1, 2, 55.0),
        ("sector", "Science"): (2, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 50.0),
        ("sector", "Energy"): (1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0.0),
        ("regional", "Mekong"): (2, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 30.0),
        ("regional", "Northeast"): (1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 20.0),
    }


def test_slice_by_priority(statuses: Any) -> None:
    assert sliced(statuses, "status_by_priority", ("priority",)) == {
        "key": (3, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 66.7),
        "regular": (5, 0, 0, 1, 1, 1, 0, 1, 0, 1, 1, 2, 28.0),
        "urgent": (2, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 1, 30.0),
    }


def test_slice_by_confidentiality(statuses: Any) -> None:
    assert sliced(statuses, "status_by_confidentiality", ("confidentiality",)) == {
        "regular": (7, 1, 1, 2, 0, 0, 1, 1, 0, 1, 1, 2, 51.4),
        "confidential": (2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1, 20.0),
        "top_secret": (1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0.0),
    }


def test_slice_by_group_puts_ad_hoc_tasks_in_other(statuses: Any) -> None:
    assert sliced(statuses, "status_by_group", ("task_group",)) == {
        "standard": (7, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 45.7),
        "other": (3, 0, 0, 1, 0, 0, 1, 1, 0, 0, 1, 2, 26.7),
    }


def test_slice_by_monitor(statuses: Any) -> None:
    got = sliced(statuses, "status_by_monitor", ("monitor",))
    assert {k: v[0] for k, v in got.items()} == {"VPTW": 5, "BKT": 5}


def test_slice_by_result(statuses: Any) -> None:
    got = statuses.query("SELECT status, tasks, avg_percent FROM status_by_result ORDER BY status").result_rows

    assert got == [
        ("awaiting_receipt", 1, 0.0),
        ("cancelled", 1, 20.0),
        ("completed_late", 1, 100.0),
        ("completed_on_time", 1, 100.0),
        ("in_progress_on_time", 2, 70.0),
        ("in_progress_overdue", 1, 40.0),
        ("not_started_on_time", 1, 0.0),
        ("not_started_overdue", 1, 0.0),
        ("objected", 1, 0.0),
    ]


def test_the_stale_version_and_the_subtask_stay_in_the_status_table(statuses: Any) -> None:
    assert scalar(statuses, "SELECT count() FROM task_status_current") == 11
    assert scalar(statuses, "SELECT count() FROM task_status_current WHERE assignee = 'XX'") == 0
    assert scalar(statuses, "SELECT count() FROM task_status_current WHERE parent_id IS NOT NULL") == 1


# -- confidentiality ------------------------------------------------------------------------------------------------
def test_no_free_text_reaches_the_store(store: Any, history: History) -> None:
    write_events(store, history)
    views = [history.app.task_view(history.ids[k], as_of=JUNE_3) for k in ("t1", "t2", "t3", "sub")]
    write(store, "task_status", STATUS_COLUMNS, [status_row(v) for v in views])
    write(
        store,
        "task_alerts",
        ALERT_COLUMNS,
        [alert_row(v, c, "overdue", JUNE_3) for v in views for c in v["clocks"]["all"]],
    )

    dump = b"".join(
        store.raw_query(f"SELECT * FROM {table} FORMAT JSONEachRow")
        for table in ("task_events", "task_status", "task_alerts")
    ).decode("utf-8")

    assert dump.count("\n") > 40
    assert [t for t in FREE_TEXTS if t in dump] == []


# -- throughput -----------------------------------------------------------------------------------------------------
def synthetic_events(history: History, n: int) -> list[dict[str, Any]]:
    template = event_row(history.of_type("ProgressReported", "t1")[0])
    out = []
    for i in range(n):
        row = dict(template)
        row["aggregate_id"] = str(uuid.UUID(int=i // 20 + 1))
        row["version"] = i % 20 + 1
        row["event_id"] = str(uuid.UUID(int=i + 1))
        row["position"] = i + 1
        out.append(row)
    return out


def test_throughput_batch_writer_vs_raw_insert(
    store: Any, history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 100_000
    rows = synthetic_events(history, n)
    store.command("CREATE TABLE raw_events AS task_events")

    started = time.perf_counter()
    with BatchWriter(store, "task_events", EVENT_COLUMNS, max_rows=10_000, max_seconds=60) as writer:
        writer.add(rows)
    writer_seconds = time.perf_counter() - started

    started = time.perf_counter()
    data = [[r[c] for c in EVENT_COLUMNS] for r in rows]
    for i in range(0, n, 10_000):
        store.insert("raw_events", data[i : i + 10_000], column_names=EVENT_COLUMNS)
    raw_seconds = time.perf_counter() - started

    assert writer.batches_written == 10
    assert scalar(store, "SELECT count() FROM task_events FINAL") == n
    assert scalar(store, "SELECT count() FROM raw_events FINAL") == n
    with capsys.disabled():
        print(
            f"\n[throughput] {n} event rows in 10k batches: BatchWriter {n / writer_seconds:,.0f} rows/s "
            f"({writer_seconds:.2f} s), raw client.insert {n / raw_seconds:,.0f} rows/s ({raw_seconds:.2f} s)"
        )
