"""The ClickHouse schema of the analytical store, as an ordered list of named, frozen migrations.

``connectors.clickhouse.migrate(client)`` applies the missing ones in order and records each name with
its checksum in ``schema_migrations``. Rules for this file:

* Never edit a migration once it has been released: add a new one (``0006_...``). ``migrate`` refuses to
  run when the checksum of an applied migration differs from the one here. (Whitespace is normalised
  before hashing, so re-indenting is harmless.)
* Every statement is idempotent (``CREATE TABLE IF NOT EXISTS``, ``CREATE OR REPLACE VIEW``,
  ``ALTER ... ADD COLUMN IF NOT EXISTS``): a migration interrupted half-way is simply applied again.
* Names are unqualified: they land in the client's current database (chdb: ``default``; a server: the
  database named in ``TASKLEDGER_CLICKHOUSE_URL``). ClickHouse qualifies the tables inside a view at
  creation time, so views keep pointing at the table *name* after ``EXCHANGE TABLES`` (rebuild).

Design (SPEC 4, 6, 8; the streams issue):

* Idempotency comes from the engines, never from the writer: every table is a ReplacingMergeTree whose
  sorting key is the identity of a row, so a replayed or re-delivered event, status or alert collapses
  into one row. Merges are eventual, so *readers* deduplicate with ``FINAL``: every view below reads
  ``<table> FINAL`` (exact, and parallel since ClickHouse 23). ``argMax`` is not used anywhere.
* No materialized views: a MV fires once per *inserted block*, before any deduplication, so a replay would
  double-count its SummingMergeTree/AggregatingMergeTree target. Aggregates are plain views over the
  deduplicated (``FINAL``) tables: correct by construction, recomputed at query time; at the expected
  volume (10^5 tasks, 10^7 events) that is milliseconds to seconds. If they ever get too slow, the rebuild
  path (a fresh table filled from ``... FINAL`` then ``EXCHANGE TABLES``) can snapshot them.
* Confidentiality (SPEC 6): the store holds **no free text at all** - none of
  ``domain.values.CONTENT_FIELDS`` (content, summary, note, products, result, ...) and no reasons,
  messages, titles or raw payload JSON either, for any level. It is for slicing and counting; the text
  stays in the event store and on the topic, which enforce the level per reader. What remains (codes,
  dimensions, dates, clocks, coarse and derived results, counts) is what SPEC 6 allows for Confidential
  and Top Secret tasks. Absolute Secret never exists (the domain refuses it; the row builders raise).
* Instants are ``DateTime64(6, 'UTC')`` (chdb keeps the zone of DateTime64 in Native output, not of
  DateTime); days of per-day aggregates are local days in ``Asia/Ho_Chi_Minh`` (SPEC 3).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

TZ = "Asia/Ho_Chi_Minh"
MIGRATIONS_TABLE = "schema_migrations"


@dataclass(frozen=True, slots=True)
class Migration:
    """One named schema step: DDL statements applied in order, each idempotent."""

    name: str
    statements: tuple[str, ...]

    @property
    def checksum(self) -> str:
        """SHA-256 of the statements with whitespace normalised (formatting changes are not changes)."""
        text = "\n;\n".join(" ".join(s.split()) for s in self.statements)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


MIGRATIONS_TABLE_DDL = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree ORDER BY name
"""

# -- 0001: one row per event -------------------------------------------------------------------------------
TASK_EVENTS = """
CREATE TABLE IF NOT EXISTS task_events (
    event_id UUID,
    aggregate_type LowCardinality(String),
    aggregate_id UUID,
    version UInt32,
    position UInt64,
    type LowCardinality(String),
    occurred_at DateTime64(6, 'UTC'),
    recorded_at DateTime64(6, 'UTC'),
    actor_role LowCardinality(String),
    actor_agency LowCardinality(String),
    actor_user String,
    confidentiality LowCardinality(Nullable(String)),
    calendar_version Nullable(UInt32),
    command_id Nullable(String),
    hash Nullable(String),
    prev_hash Nullable(String),
    contract_version UInt8,
    directive_id Nullable(UUID),
    parent_id Nullable(UUID),
    subtask_id Nullable(UUID),
    assignee LowCardinality(Nullable(String)),
    previous_assignee LowCardinality(Nullable(String)),
    subtask_assignee LowCardinality(Nullable(String)),
    assignee_kind LowCardinality(Nullable(String)),
    assigning_body LowCardinality(Nullable(String)),
    monitor LowCardinality(Nullable(String)),
    deadline Nullable(Date),
    previous_deadline Nullable(Date),
    priority LowCardinality(Nullable(String)),
    scope LowCardinality(Nullable(String)),
    scope_name LowCardinality(Nullable(String)),
    update_every LowCardinality(Nullable(String)),
    ad_hoc Nullable(Bool),
    percent Nullable(UInt8),
    report_no Nullable(UInt32),
    late Nullable(Bool),
    late_against_original Nullable(Bool),
    outcome LowCardinality(Nullable(String)),
    grade LowCardinality(Nullable(String)),
    finding_kind LowCardinality(Nullable(String)),
    symbol Nullable(String),
    directive_number Nullable(String),
    issued_on Nullable(Date),
    registration_due_at Nullable(DateTime64(6, 'UTC')),
    changed_fields Array(LowCardinality(String)),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(recorded_at)
ORDER BY (aggregate_id, version)
"""

TASK_EVENTS_FINAL = """
CREATE OR REPLACE VIEW task_events_final AS
SELECT * FROM task_events FINAL
"""

# -- 0002: latest state per task -----------------------------------------------------------------------------
# row_version = aggregate version in the high bits, the evaluation instant (ms) in the low 42 bits: a row of
# a lower version never wins; among rows of one version (time-driven re-evaluations) the latest as_of wins;
# an exact repeat is the same row. 2^42 ms reaches year 2109; versions up to 2^22 per task.
TASK_STATUS = """
CREATE TABLE IF NOT EXISTS task_status (
    task_id UUID,
    version UInt32,
    as_of DateTime64(6, 'UTC'),
    updated_at Nullable(DateTime64(6, 'UTC')),
    directive_id UUID,
    directive_symbol Nullable(String),
    parent_id Nullable(UUID),
    confidentiality LowCardinality(String),
    assigning_body LowCardinality(String),
    assignee LowCardinality(String),
    assignee_kind LowCardinality(String),
    monitor LowCardinality(String),
    with_deadline Bool,
    deadline Nullable(Date),
    original_deadline Nullable(Date),
    scope LowCardinality(String),
    scope_name LowCardinality(Nullable(String)),
    priority LowCardinality(String),
    ad_hoc Bool,
    update_every LowCardinality(String),
    status LowCardinality(String),
    coarse_result LowCardinality(String),
    lifecycle LowCardinality(String),
    percent UInt8,
    rollup_percent Nullable(UInt8),
    evaluation LowCardinality(Nullable(String)),
    assigned_at DateTime64(6, 'UTC'),
    received_at Nullable(DateTime64(6, 'UTC')),
    completed_at Nullable(DateTime64(6, 'UTC')),
    cancelled_at Nullable(DateTime64(6, 'UTC')),
    last_approved_report_at Nullable(DateTime64(6, 'UTC')),
    completed_late_against_original Nullable(Bool),
    reports UInt32,
    pending_report Nullable(UInt32),
    objections UInt32,
    late_objections UInt32,
    transfers UInt32,
    extensions UInt32,
    urges UInt32,
    difficulties UInt32,
    explanations UInt32,
    findings UInt32,
    cadence LowCardinality(String),
    registration_due_at Nullable(DateTime64(6, 'UTC')),
    receipt_due_at Nullable(DateTime64(6, 'UTC')),
    objection_due_at Nullable(DateTime64(6, 'UTC')),
    objection_handling_due_at Nullable(DateTime64(6, 'UTC')),
    next_periodic_update_due_at Nullable(DateTime64(6, 'UTC')),
    result_report_due_at Nullable(DateTime64(6, 'UTC')),
    deadline_at Nullable(DateTime64(6, 'UTC')),
    original_deadline_at Nullable(DateTime64(6, 'UTC')),
    checkpoint_at Array(DateTime64(6, 'UTC')),
    checkpoint_due_at Array(DateTime64(6, 'UTC')),
    checkpoint_met_at Array(Nullable(DateTime64(6, 'UTC'))),
    clock_name Array(String),
    clock_started_at Array(DateTime64(6, 'UTC')),
    clock_due_at Array(DateTime64(6, 'UTC')),
    clock_met_at Array(Nullable(DateTime64(6, 'UTC'))),
    clock_state Array(LowCardinality(String)),
    clock_calendar_version Array(UInt32),
    overdue_clocks UInt32,
    next_due_clock Nullable(String),
    next_due_at Nullable(DateTime64(6, 'UTC')),
    row_version UInt64 MATERIALIZED toUInt64(version) * 4398046511104 + toUInt64(toUnixTimestamp64Milli(as_of))
) ENGINE = ReplacingMergeTree(row_version)
ORDER BY task_id
"""

TASK_STATUS_CURRENT = """
CREATE OR REPLACE VIEW task_status_current AS
SELECT * FROM task_status FINAL
"""

# -- 0003: alerts, once per clock instance and kind -------------------------------------------------------------
# Identity = (task_id, clock, kind, due_at): a clock *instance* is its name and due instant (due instants are
# never recomputed, SPEC 5). A replayed alert collapses; a new instance of the same clock (the receipt clock
# of a transfer, a deadline after an extension) is a new alert. first_raised makes the EARLIEST raise win,
# so a replay never moves raised_at.
TASK_ALERTS = """
CREATE TABLE IF NOT EXISTS task_alerts (
    alert_id UUID,
    task_id UUID,
    clock LowCardinality(String),
    kind LowCardinality(String),
    due_at DateTime64(6, 'UTC'),
    raised_at DateTime64(6, 'UTC'),
    clock_started_at Nullable(DateTime64(6, 'UTC')),
    agency LowCardinality(String),
    monitor LowCardinality(String),
    confidentiality LowCardinality(String),
    priority LowCardinality(String),
    task_version UInt32,
    first_raised UInt64 MATERIALIZED toUInt64(4398046511103) - toUInt64(toUnixTimestamp64Milli(raised_at))
) ENGINE = ReplacingMergeTree(first_raised)
ORDER BY (task_id, clock, kind, due_at)
"""

TASK_ALERTS_ONCE = """
CREATE OR REPLACE VIEW task_alerts_once AS
SELECT * FROM task_alerts FINAL
"""

# -- 0004: per agency, per local day ---------------------------------------------------------------------------
# Each Task event is attributed to the task's assignee agency after the event (carried forward along the
# task's versions from TaskAssigned / TaskTransferred / ObjectionResolved.transfer_to).
TASK_EVENTS_ATTRIBUTED = f"""
CREATE OR REPLACE VIEW task_events_attributed AS
SELECT
    *,
    toDate(occurred_at, '{TZ}') AS day,
    anyLast(assignee) OVER per_task AS agency,
    anyLast(parent_id) OVER per_task AS task_parent_id
FROM task_events FINAL
WHERE aggregate_type = 'Task'
WINDOW per_task AS (PARTITION BY aggregate_id ORDER BY version ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
"""

AGENCY_DAILY_ACTIVITY = """
CREATE OR REPLACE VIEW agency_daily_activity AS
SELECT
    day,
    agency,
    count() AS events,
    countIf(type = 'TaskAssigned') AS assigned,
    countIf(type = 'TaskAssigned' AND task_parent_id IS NOT NULL) AS assigned_as_subtask,
    countIf(type = 'SubtaskAssigned') AS subtasks_assigned,
    countIf(type = 'TaskReceived') AS received,
    countIf(type = 'TaskReceived' AND late) AS received_late,
    countIf(type = 'TaskObjected') AS objected,
    countIf(type = 'ObjectionResolved') AS objections_resolved,
    countIf(type = 'TaskTransferred' OR (type = 'ObjectionResolved' AND assignee IS NOT NULL)) AS transferred_in,
    countIf(type = 'TaskAdjusted') AS adjusted,
    countIf(type = 'ProgressReported') AS progress_reported,
    countIf(type = 'ProgressApproved') AS progress_approved,
    countIf(type = 'ProgressReturned') AS progress_returned,
    countIf(type = 'TaskUrged') AS urged,
    countIf(type = 'DifficultyReported') AS difficulties,
    countIf(type = 'DeadlineExtended') AS extensions,
    countIf(type = 'DelayExplained') AS delay_explanations,
    countIf(type = 'TaskCompleted') AS completed,
    countIf(type = 'TaskCompleted' AND NOT late) AS completed_on_time,
    countIf(type = 'TaskCompleted' AND late) AS completed_late,
    countIf(type = 'TaskEvaluated') AS evaluated,
    countIf(type = 'TaskCancelled') AS cancelled,
    countIf(type = 'FindingRaised') AS findings
FROM task_events_attributed
GROUP BY day, agency
"""

AGENCY_DAILY_ALERTS = f"""
CREATE OR REPLACE VIEW agency_daily_alerts AS
SELECT
    toDate(raised_at, '{TZ}') AS day,
    agency,
    count() AS alerts,
    countIf(kind = 'warning') AS warning,
    countIf(kind = 'due_soon') AS due_soon,
    countIf(kind = 'due_now') AS due_now,
    countIf(kind = 'overdue') AS overdue,
    countIf(kind = 'met') AS met,
    countIf(kind = 'met_late') AS met_late
FROM task_alerts FINAL
GROUP BY day, agency
"""

# -- 0005: the SPEC 4 slices of the current status ------------------------------------------------------------
# Literal on purpose (a migration is frozen): tests check it equals domain.values.Status, so a new status
# forces a new migration rather than silently changing an applied one.
STATUS_NAMES = (
    "completed_on_time",
    "completed_late",
    "in_progress_on_time",
    "in_progress_overdue",
    "not_started_on_time",
    "not_started_overdue",
    "awaiting_receipt",
    "objected",
    "cancelled",
)

_COUNTS = ",\n    ".join(
    [
        "count() AS tasks",
        *(f"countIf(status = '{s}') AS {s}" for s in STATUS_NAMES),
        "countIf(status IN ('in_progress_overdue', 'not_started_overdue')) AS overdue",
        "countIf(overdue_clocks > 0) AS with_overdue_clocks",
        "round(avg(percent), 1) AS avg_percent",
    ]
)

# Slices count top-level tasks only (SPEC 4 classifies the tasks the centre assigns); subtasks are rows
# of task_status_current with a parent_id, and are counted in agency_daily_activity under their own agency.
SLICES: dict[str, tuple[str, str]] = {
    # view name: (dimension select list, group by)
    "status_by_deadline": (
        "if(with_deadline, 'with_deadline', 'without_deadline') AS time_class",
        "time_class",
    ),
    "status_by_assignee": ("assignee, assignee_kind", "assignee, assignee_kind"),
    "status_by_assignee_kind": ("assignee_kind", "assignee_kind"),
    "status_by_scope": ("scope, scope_name", "scope, scope_name"),
    "status_by_priority": ("priority", "priority"),
    "status_by_confidentiality": ("confidentiality", "confidentiality"),
    "status_by_group": ("if(ad_hoc, 'other', 'standard') AS task_group", "task_group"),
    "status_by_monitor": ("monitor", "monitor"),
}


def _slice(view: str, dimensions: str, group_by: str) -> str:
    return f"""
CREATE OR REPLACE VIEW {view} AS
SELECT
    {dimensions},
    {_COUNTS}
FROM task_status FINAL
WHERE parent_id IS NULL
GROUP BY {group_by}
"""


STATUS_BY_RESULT = """
CREATE OR REPLACE VIEW status_by_result AS
SELECT
    status,
    coarse_result,
    count() AS tasks,
    round(avg(percent), 1) AS avg_percent
FROM task_status FINAL
WHERE parent_id IS NULL
GROUP BY status, coarse_result
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_task_events", (TASK_EVENTS, TASK_EVENTS_FINAL)),
    Migration("0002_task_status", (TASK_STATUS, TASK_STATUS_CURRENT)),
    Migration("0003_task_alerts", (TASK_ALERTS, TASK_ALERTS_ONCE)),
    Migration("0004_agency_daily", (TASK_EVENTS_ATTRIBUTED, AGENCY_DAILY_ACTIVITY, AGENCY_DAILY_ALERTS)),
    Migration(
        "0005_status_slices",
        (*(_slice(name, dims, group) for name, (dims, group) in SLICES.items()), STATUS_BY_RESULT),
    ),
)
"""Applied in this order; names sort in the same order."""

TABLES = ("task_events", "task_status", "task_alerts")
VIEWS = (
    "task_events_final",
    "task_status_current",
    "task_alerts_once",
    "task_events_attributed",
    "agency_daily_activity",
    "agency_daily_alerts",
    *SLICES,
    "status_by_result",
)

# -- the columns the row builders produce and the writer inserts (every column without a default) --------------
EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "aggregate_type",
    "aggregate_id",
    "version",
    "position",
    "type",
    "occurred_at",
    "recorded_at",
    "actor_role",
    "actor_agency",
    "actor_user",
    "confidentiality",
    "calendar_version",
    "command_id",
    "hash",
    "prev_hash",
    "contract_version",
    "directive_id",
    "parent_id",
    "subtask_id",
    "assignee",
    "previous_assignee",
    "subtask_assignee",
    "assignee_kind",
    "assigning_body",
    "monitor",
    "deadline",
    "previous_deadline",
    "priority",
    "scope",
    "scope_name",
    "update_every",
    "ad_hoc",
    "percent",
    "report_no",
    "late",
    "late_against_original",
    "outcome",
    "grade",
    "finding_kind",
    "symbol",
    "directive_number",
    "issued_on",
    "registration_due_at",
    "changed_fields",
)

STATUS_COLUMNS: tuple[str, ...] = (
    "task_id",
    "version",
    "as_of",
    "updated_at",
    "directive_id",
    "directive_symbol",
    "parent_id",
    "confidentiality",
    "assigning_body",
    "assignee",
    "assignee_kind",
    "monitor",
    "with_deadline",
    "deadline",
    "original_deadline",
    "scope",
    "scope_name",
    "priority",
    "ad_hoc",
    "update_every",
    "status",
    "coarse_result",
    "lifecycle",
    "percent",
    "rollup_percent",
    "evaluation",
    "assigned_at",
    "received_at",
    "completed_at",
    "cancelled_at",
    "last_approved_report_at",
    "completed_late_against_original",
    "reports",
    "pending_report",
    "objections",
    "late_objections",
    "transfers",
    "extensions",
    "urges",
    "difficulties",
    "explanations",
    "findings",
    "cadence",
    "registration_due_at",
    "receipt_due_at",
    "objection_due_at",
    "objection_handling_due_at",
    "next_periodic_update_due_at",
    "result_report_due_at",
    "deadline_at",
    "original_deadline_at",
    "checkpoint_at",
    "checkpoint_due_at",
    "checkpoint_met_at",
    "clock_name",
    "clock_started_at",
    "clock_due_at",
    "clock_met_at",
    "clock_state",
    "clock_calendar_version",
    "overdue_clocks",
    "next_due_clock",
    "next_due_at",
)

ALERT_COLUMNS: tuple[str, ...] = (
    "alert_id",
    "task_id",
    "clock",
    "kind",
    "due_at",
    "raised_at",
    "clock_started_at",
    "agency",
    "monitor",
    "confidentiality",
    "priority",
    "task_version",
)

COLUMNS: dict[str, tuple[str, ...]] = {
    "task_events": EVENT_COLUMNS,
    "task_status": STATUS_COLUMNS,
    "task_alerts": ALERT_COLUMNS,
}
"""Per table, the columns a writer inserts, in order."""
