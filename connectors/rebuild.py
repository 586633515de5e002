"""Rebuild every projection table of the analytical store from the event store.

``rebuild(app, client)`` makes, for each of ``task_events``, ``task_status`` and ``task_alerts``, an empty
copy of the live table (``connectors.clickhouse.fresh_copy``), fills the three copies, and only once all
three are full swaps each in (``swap_in``: ``EXCHANGE TABLES``, atomic per table; views follow the names).
If anything fails before the swap, the copies are dropped and the live tables are left untouched.

* ``task_events``: every public stored event (``domain.contract.STORED_TOPICS``), from ONE pass over the
  notification log, decrypted/decompressed and given its aggregate's level exactly as the relay does
  (``StoredEvents`` below), through ``envelope_from_stored`` -> ``projections.rows.event_row``.
* The same pass folds every aggregate (as ``TaskLedger.all_aggregates``). Then per Task:
  ``task_status``: ``domain.views.task_view`` at ``as_of`` (default ``app.clock()``) -> ``status_row`` with
  ``updated_at = as_of``;
  ``task_alerts``: ``domain.alerts.alerts_for`` over ``domain.clocks.task_clocks`` at ``as_of`` (closed at
  the task's completion or cancellation) -> ``alert_row`` with ``raised_at = alert.at`` (the instant the alert
  became true, not "now"), so a rebuild at a given ``as_of`` is deterministic.

``as_of`` is the evaluation instant of clocks and statuses; the aggregates are folded from every stored
event (a rebuild is never a time travel).

``table_checksums(client)`` fingerprints the deduplicated content (``FINAL``) of each table, to compare two
rebuilds. Excluded: the columns with a default expression (``DEFAULT`` / ``MATERIALIZED`` / ``ALIAS``):
``task_events.ingested_at`` (``now64()`` at insert: differs between runs by design) and the materialized
engine versions ``task_status.row_version`` / ``task_alerts.first_raised`` (pure functions of columns that
are included). Everything the row builders write is included, so two rebuilds at the same ``as_of`` agree;
at a different ``as_of``, ``task_status.as_of`` / ``updated_at`` (and clock states) differ on purpose.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson

from connectors.clickhouse import fresh_copy, insert_columns, swap_in
from connectors.eventstore import events_table, query
from domain import views
from domain.alerts import DEFAULT_POLICY, AlertPolicy, alerts_and_wakeup
from domain.clocks import task_clocks
from domain.contract import CREATION_TOPICS, STORED_TOPICS, confidentiality_of, envelope_from_stored
from domain.directive import Directive
from domain.task import Task
from projections.rows import alert_row, event_row, status_row
from projections.schema import ALERT_COLUMNS, EVENT_COLUMNS, STATUS_COLUMNS, TABLES
from projections.writer import BatchWriter

if TYPE_CHECKING:
    from eventsourcing.domain import Aggregate
    from eventsourcing.persistence import Notification

    from domain.application import TaskLedger

PUBLIC_TOPICS = frozenset(STORED_TOPICS)
TASK_CREATED = next(t for t in CREATION_TOPICS if t.endswith(":Task.Assigned"))
LOG_BATCH = 2000
WRITE_BATCH = 10_000

Progress = Callable[[int, int], None]


# -- the stored events, as the relay reads them ----------------------------------------------------------------
class StoredEvents:
    """Plain state and confidentiality of stored events, as ``connectors.relay.Relay`` computes them
    (``Relay._plain`` / ``Relay._level``; factored here without the Kafka side so a rebuild does not need a
    broker client): state decrypted with the app's cipher then decompressed; the level of an aggregate taken
    from its creation event (looked up in the store if the creation event was not seen); calendars: None."""

    def __init__(self, app: TaskLedger) -> None:
        self.app = app
        self.cipher = getattr(app.mapper, "cipher", None)
        self.compressor = getattr(app.mapper, "compressor", None)
        self.levels: dict[UUID, str | None] = {}

    def plain(self, state: bytes) -> bytes:
        if self.cipher is not None:
            state = self.cipher.decrypt(state)
        if self.compressor is not None:
            state = self.compressor.decompress(state)
        return state

    def level(self, n: Notification, state: bytes) -> str | None:
        if n.topic in CREATION_TOPICS:
            level = confidentiality_of(n.topic, orjson.loads(state))
            self.levels[n.originator_id] = level
            return level
        if "WorkingCalendar" in n.topic:
            return None
        if n.originator_id not in self.levels:
            first = self.app.recorder.select_events(n.originator_id, lte=1)[0]
            self.levels[n.originator_id] = confidentiality_of(first.topic, orjson.loads(self.plain(first.state)))
        return self.levels[n.originator_id]

    def envelope(self, n: Notification) -> dict[str, Any]:
        """The v1 envelope of a public stored event (what the relay publishes for it)."""
        state = self.plain(n.state)
        return envelope_from_stored(n.topic, state, n.originator_id, n.originator_version, n.id, self.level(n, state))

    def notifications(self, batch: int = LOG_BATCH) -> Iterator[Notification]:
        """The whole notification log, in order."""
        start = 1
        while True:
            page = self.app.recorder.select_notifications(start=start, limit=batch)
            if not page:
                return
            yield from page
            start = page[-1].id + 1


# -- per task -------------------------------------------------------------------------------------------------
def task_rows(
    task: Task, folded: dict[UUID, Aggregate], calendars: Any, as_of: datetime, policy: AlertPolicy = DEFAULT_POLICY
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``task_status`` row and the ``task_alerts`` rows of one folded task at ``as_of``."""
    status, alerts, _ = task_rows_and_wakeup(task, folded, calendars, as_of, policy)
    return status, alerts


def task_rows_and_wakeup(
    task: Task, folded: dict[UUID, Aggregate], calendars: Any, as_of: datetime, policy: AlertPolicy = DEFAULT_POLICY
) -> tuple[dict[str, Any], list[dict[str, Any]], datetime | None]:
    """``task_rows`` and the task's next wakeup (``domain.alerts.next_wakeup``), from one evaluation."""
    directive = folded.get(task.directive_id)
    subtasks = [s for s in (folded.get(i) for i in task.subtasks) if isinstance(s, Task)]
    clocks = task_clocks(task, calendars, as_of)
    owner = directive if isinstance(directive, Directive) else None
    view = views.task_view(task, owner, calendars, as_of, subtasks, all_clocks=clocks)
    status = status_row(view, updated_at=as_of)
    shown = view["clocks"]["all"]  # clocks_view lists these clocks in this same order
    if len(shown) != len(clocks):
        raise RuntimeError(f"task {task.id}: the view lists {len(shown)} clocks, task_clocks {len(clocks)}")
    by_instance = {(c.name, c.due_at): d for c, d in zip(clocks, shown, strict=True)}
    closed = task.completed_at or task.cancelled_at
    alerts: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    now, wakeup = alerts_and_wakeup(task.id, clocks, calendars, as_of, policy, closed_at=closed)
    for alert in now:
        if alert.key not in alerts:
            alerts[alert.key] = alert_row(view, by_instance[(alert.clock, alert.due_at)], alert.kind.value, alert.at)
    return status, list(alerts.values()), wakeup


def _task_count(app: TaskLedger) -> int:
    table, _ = events_table(app)
    row = query(app, f"SELECT COUNT(*) AS n FROM {table} WHERE topic = '{TASK_CREATED}'")[0]
    return int(row["n"] if isinstance(row, dict) else row[0])


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("as_of must be a timezone-aware instant")
    return moment.astimezone(UTC)


# -- rebuild --------------------------------------------------------------------------------------------------
def rebuild(
    app: TaskLedger,
    client: Any,
    *,
    as_of: datetime | None = None,
    progress: Progress | None = None,
    writer: type[BatchWriter] = BatchWriter,
    batch_rows: int = WRITE_BATCH,
    policy: AlertPolicy = DEFAULT_POLICY,
) -> dict[str, Any]:
    """Rebuild ``task_events``, ``task_status`` and ``task_alerts`` from the event store (see the module doc).

    ``progress(done, total)`` is called as work advances: ``total`` = the head notification id + the number
    of tasks; ``done`` reaches ``total`` at the end. ``writer`` (a ``BatchWriter`` class) and ``batch_rows``
    are for tuning and tests; ``policy`` gives the alert thresholds (``Settings.alert_policy()``, the
    worker's). The tables must exist (``migrate`` first).

    Returns ``{"as_of": ISO, "tables": {table: rows}, "notifications": n, "tasks": n, "rows": n,
    "seconds": s, "rows_per_s": r}``. On any error before the swap the copies are dropped, the live tables
    are untouched, and the error propagates."""
    started = time.perf_counter()
    moment = _aware(as_of if as_of is not None else app.clock())
    head = app.recorder.max_notification_id() or 0
    total = head + _task_count(app)
    report = progress or (lambda done, total: None)
    report(0, total)

    fresh: dict[str, str] = {}
    try:
        for table in TABLES:
            fresh[table] = fresh_copy(client, table)
        writers = {
            "task_events": writer(client, fresh["task_events"], EVENT_COLUMNS, batch_rows, float("inf")),
            "task_status": writer(client, fresh["task_status"], STATUS_COLUMNS, batch_rows, float("inf")),
            "task_alerts": writer(client, fresh["task_alerts"], ALERT_COLUMNS, batch_rows, float("inf")),
        }

        # one pass over the log: public events -> task_events; every event folds its aggregate
        source = StoredEvents(app)
        folded: dict[UUID, Aggregate] = {}
        seen = 0
        events = writers["task_events"]
        for n in source.notifications():
            if n.topic in PUBLIC_TOPICS:
                events.append(event_row(source.envelope(n)))
            folded[n.originator_id] = app.mapper.to_domain_event(n).mutate(folded.get(n.originator_id))
            seen += 1
            if seen % LOG_BATCH == 0:
                report(n.id, total)
        events.flush()
        report(head, total)

        calendars = app.calendars
        tasks = [a for a in folded.values() if isinstance(a, Task)]
        total = head + len(tasks)  # the log may have grown since it was counted
        for index, task in enumerate(tasks, 1):
            status, alerts = task_rows(task, folded, calendars, moment, policy)
            writers["task_status"].append(status)
            writers["task_alerts"].add(alerts)
            if index % 500 == 0:
                report(head + index, total)
        for w in writers.values():
            w.close()

        for table in TABLES:
            swap_in(client, fresh[table], table)
    except BaseException:
        for name in fresh.values():
            with contextlib.suppress(Exception):  # the original error matters more than a failed cleanup
                client.command(f"DROP TABLE IF EXISTS {name}")
        raise
    report(total, total)

    counts = {table: writers[table].rows_written for table in TABLES}
    seconds = time.perf_counter() - started
    rows = sum(counts.values())
    return {
        "as_of": moment.isoformat().replace("+00:00", "Z"),
        "tables": counts,
        "notifications": seen,
        "tasks": len(tasks),
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds, 1) if seconds > 0 else None,
    }


# -- comparing rebuilds ---------------------------------------------------------------------------------------
def table_checksums(client: Any) -> dict[str, tuple[int, int]]:
    """Per projection table, ``(rows, checksum)`` over its deduplicated content (``FINAL``): the XOR of
    ``cityHash64`` of every row's insert columns (columns with a DEFAULT / MATERIALIZED / ALIAS expression
    are excluded: ``task_events.ingested_at`` differs between runs; see the module doc)."""
    sums: dict[str, tuple[int, int]] = {}
    for table in TABLES:
        columns = ", ".join(f"`{c}`" for c in insert_columns(client, table))
        result = client.query(f"SELECT count(), groupBitXor(cityHash64(tuple({columns}))) FROM {table} FINAL")
        rows, checksum = result.result_rows[0]
        sums[table] = (int(rows), int(checksum))
    return sums
