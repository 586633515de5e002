"""Pure row builders: a v1 envelope, a task view or a clock becomes one row of the analytical store.

No I/O, no ClickHouse: plain dicts whose keys are exactly the insert columns of ``projections.schema``
(``EVENT_COLUMNS``, ``STATUS_COLUMNS``, ``ALERT_COLUMNS``) and whose values are what clickhouse-connect
inserts directly: ``str`` (UUIDs as canonical text), ``int``, ``bool``, ``datetime`` (aware, UTC),
``date``, ``None``, lists.

Confidentiality (SPEC 6): no builder emits free text. None of ``domain.values.CONTENT_FIELDS``, no
reason, message, title or raw payload is ever copied, whatever the level; an ``absolute_secret`` input
(which the domain refuses to store) raises ``ValueError``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from projections.schema import ALERT_COLUMNS, EVENT_COLUMNS, STATUS_COLUMNS

ALERT_KINDS = ("warning", "due_soon", "due_now", "overdue", "met", "met_late")
"""warning = 50 % of the clock's span elapsed, due_soon = 90 %, due_now, overdue, met, met_late."""

ALERT_ID_NAMESPACE = uuid.UUID("6f1d7c2e-4b8a-5d3f-9e0c-1a2b3c4d5e6f")
"""alert_id = uuid5(ALERT_ID_NAMESPACE, "<task_id>:<clock>:<kind>:<due_at ISO UTC>"): fixed forever."""

_LEVELS = frozenset(("regular", "confidential", "top_secret"))


# -- value conversions ------------------------------------------------------------------------------------------
_PARSED: dict[str, datetime] = {}  # ISO text -> UTC instant: a status row repeats its instants (clock arrays)
_PARSED_MAX = 4_096  # one status row repeats its own instants; measured: 48 entries gain as much as 65,536


def instant(value: str | datetime | None) -> datetime | None:
    """An RFC 3339 / ISO 8601 instant (any offset, 'Z' accepted) or datetime -> aware UTC datetime.
    Naive input is taken as UTC (the event store's rule). Parsed text is memoised (bounded)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return _utc(value)
    found = _PARSED.get(value)
    if found is None:
        moment = _utc(datetime.fromisoformat(value))  # TypeError / ValueError for anything but ISO text
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        found = _PARSED[value] = moment
    return found


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is UTC:
        return moment
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def day(value: str | date | None) -> date | None:
    """'YYYY-MM-DD' or a date -> date."""
    if value is None:
        return None
    if isinstance(value, datetime):
        raise ValueError(f"expected a calendar date, got the instant {value!r}")
    return value if isinstance(value, date) else date.fromisoformat(value)


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid(value: Any) -> str | None:
    """A UUID as its canonical text (lower-case, hyphenated); anything else that is not a UUID raises."""
    if value is None:
        return None
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return value  # already canonical (every envelope field is): no parse and re-print
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def _level(value: Any, *, nullable: bool, what: str) -> str | None:
    if value is None and nullable:
        return None
    if value not in _LEVELS:
        raise ValueError(f"{what}: confidentiality {value!r} may not enter the analytical store (SPEC 6)")
    return str(value)


# -- task_events ------------------------------------------------------------------------------------------------
def event_row(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """One ``task_events`` row from one v1 envelope (``domain.contract``): the header, the actor split in
    three, and the common payload fields flattened (NULL when the event does not carry them):

    * ``assignee``: the agency the task is (re)assigned to *by this event* - TaskAssigned.assignee,
      TaskTransferred.to, ObjectionResolved.transfer_to; ``previous_assignee`` = TaskTransferred.previous;
      SubtaskAssigned gives ``subtask_id`` / ``subtask_assignee`` (the child's agency, not this task's).
    * ``monitor``, ``deadline``, ``priority``, ``scope``, ``scope_name``, ``update_every``: from the payload
      (TaskAssigned, DeadlineExtended) or from its ``changes`` (TaskAdjusted, ObjectionResolved);
      ``previous_deadline`` = DeadlineExtended.previous; ``changed_fields`` = the keys of ``changes``.
    * ``late``: TaskReceived / TaskObjected / ObjectionResolved / TaskCompleted ``late`` and
      DirectiveRegistered ``registered_late``.
    * ``outcome`` (ObjectionResolved), ``grade`` (TaskEvaluated), ``finding_kind`` (FindingRaised.kind),
      ``symbol``, ``directive_number``, ``issued_on``, ``registration_due_at`` (directive events).
    """
    kind = envelope["type"]
    payload: Mapping[str, Any] = envelope.get("payload") or {}
    raw_changes = payload.get("changes")
    changes: Mapping[str, Any] = raw_changes if isinstance(raw_changes, Mapping) else {}
    actor: Mapping[str, Any] = envelope.get("actor") or {}

    def carried(name: str) -> Any:
        return payload[name] if name in payload else changes.get(name)

    assignee = {
        "TaskAssigned": payload.get("assignee"),
        "TaskTransferred": payload.get("to"),
        "ObjectionResolved": payload.get("transfer_to"),
    }.get(kind)
    is_subtask_event = kind == "SubtaskAssigned"
    late = payload.get("late")
    if late is None and kind == "DirectiveRegistered":
        late = payload.get("registered_late")
    finding = payload.get("kind") if kind == "FindingRaised" else None

    row: dict[str, Any] = {
        "event_id": _uuid(envelope["event_id"]),
        "aggregate_type": envelope["aggregate_type"],
        "aggregate_id": _uuid(envelope["aggregate_id"]),
        "version": int(envelope["version"]),
        "position": int(envelope["position"]),
        "type": kind,
        "occurred_at": instant(envelope["occurred_at"]),
        "recorded_at": instant(envelope["recorded_at"]),
        "actor_role": actor.get("role") or "",
        "actor_agency": actor.get("agency") or "",
        "actor_user": actor.get("user") or "",
        "confidentiality": _level(envelope.get("confidentiality"), nullable=True, what=f"event {kind}"),
        "calendar_version": envelope.get("calendar_version"),
        "command_id": envelope.get("command_id"),
        "hash": envelope.get("hash"),
        "prev_hash": envelope.get("prev_hash"),
        "contract_version": int(envelope.get("contract_version") or 1),
        "directive_id": _uuid(payload.get("directive_id")),
        "parent_id": _uuid(payload.get("parent_id")),
        "subtask_id": _uuid(payload.get("subtask_id")),
        "assignee": assignee,
        "previous_assignee": payload.get("previous") if kind == "TaskTransferred" else None,
        "subtask_assignee": payload.get("assignee") if is_subtask_event else None,
        "assignee_kind": payload.get("assignee_kind"),
        "assigning_body": payload.get("assigning_body"),
        "monitor": carried("monitor"),
        "deadline": day(carried("deadline")),
        "previous_deadline": day(payload.get("previous")) if kind == "DeadlineExtended" else None,
        "priority": carried("priority"),
        "scope": carried("scope"),
        "scope_name": carried("scope_name"),
        "update_every": carried("update_every"),
        "ad_hoc": payload.get("ad_hoc"),
        "percent": payload.get("percent"),
        "report_no": payload.get("report_no"),
        "late": late,
        "late_against_original": payload.get("late_against_original"),
        "outcome": payload.get("outcome"),
        "grade": payload.get("grade"),
        "finding_kind": finding,
        "symbol": payload.get("symbol"),
        "directive_number": payload.get("number") if "number" in payload else changes.get("number"),
        "issued_on": day(payload.get("issued_on")),
        "registration_due_at": instant(payload.get("registration_due_at")),
        "changed_fields": sorted(changes),
    }
    return row


# -- task_status ------------------------------------------------------------------------------------------------
def status_row(view: Mapping[str, Any], *, updated_at: str | datetime | None = None) -> dict[str, Any]:
    """One ``task_status`` row from ``domain.views.task_view(...)``: every SPEC 4 dimension, status,
    lifecycle, percent, counters, every clock instant (UTC) and the full clock list as parallel arrays.

    ``version`` is the task's aggregate version and ``as_of`` the instant the view was evaluated at: the
    table keeps, per task, the row of the highest version and, within it, of the latest ``as_of``.
    ``updated_at`` is the recorded_at of the task's last event (the "last update"), when the caller
    knows it (the status agent does: the envelope it just applied). ``content`` is never copied."""
    task = view["task_id"]
    _level(view.get("confidentiality"), nullable=False, what=f"task {task}")
    clocks: Mapping[str, Any] = view.get("clocks") or {}
    every: list[Mapping[str, Any]] = list(clocks.get("all") or [])
    checkpoints: list[Mapping[str, Any]] = list(clocks.get("checkpoints") or [])
    pending = [c for c in every if c.get("state") == "pending"]
    upcoming = min(pending, key=lambda c: (instant(c["due_at"]), c["clock"])) if pending else None
    rollup = view.get("rollup_percent")
    return {
        "task_id": _uuid(task),
        "version": int(view["version"]),
        "as_of": instant(view["as_of"]),
        "updated_at": instant(updated_at),
        "directive_id": _uuid(view["directive_id"]),
        "directive_symbol": view.get("directive_symbol"),
        "parent_id": _uuid(view.get("parent_id")),
        "confidentiality": view["confidentiality"],
        "assigning_body": view.get("assigning_body") or "",
        "assignee": view["assignee"],
        "assignee_kind": view["assignee_kind"],
        "monitor": view["monitor"],
        "with_deadline": bool(view["with_deadline"]),
        "deadline": day(view.get("deadline")),
        "original_deadline": day(view.get("original_deadline")),
        "scope": view["scope"],
        "scope_name": view.get("scope_name"),
        "priority": view["priority"],
        "ad_hoc": bool(view.get("ad_hoc")),
        "update_every": view["update_every"],
        "status": view["status"],
        "coarse_result": view["coarse_result"],
        "lifecycle": view["lifecycle"],
        "percent": int(view.get("percent") or 0),
        "rollup_percent": None if rollup is None else int(rollup),
        "evaluation": view.get("evaluation"),
        "assigned_at": instant(view["assigned_at"]),
        "received_at": instant(view.get("received_at")),
        "completed_at": instant(view.get("completed_at")),
        "cancelled_at": instant(view.get("cancelled_at")),
        "last_approved_report_at": instant(view.get("last_approved_report_at")),
        "completed_late_against_original": view.get("completed_late_against_original"),
        "reports": int(view.get("reports") or 0),
        "pending_report": view.get("pending_report"),
        "objections": int(view.get("objections") or 0),
        "late_objections": int(view.get("late_objections") or 0),
        "transfers": int(view.get("transfers") or 0),
        "extensions": int(view.get("extensions") or 0),
        "urges": int(view.get("urges") or 0),
        "difficulties": int(view.get("difficulties") or 0),
        "explanations": int(view.get("explanations") or 0),
        "findings": int(view.get("findings") or 0),
        "cadence": clocks.get("cadence") or "",
        "registration_due_at": instant(clocks.get("registration_due_at")),
        "receipt_due_at": instant(clocks.get("receipt_due_at")),
        "objection_due_at": instant(clocks.get("objection_due_at")),
        "objection_handling_due_at": instant(clocks.get("objection_handling_due_at")),
        "next_periodic_update_due_at": instant(clocks.get("next_periodic_update_due_at")),
        "result_report_due_at": instant(clocks.get("result_report_due_at")),
        "deadline_at": instant(clocks.get("deadline_at")),
        "original_deadline_at": instant(clocks.get("original_deadline_at")),
        "checkpoint_at": [instant(c["at"]) for c in checkpoints],
        "checkpoint_due_at": [instant(c["due_at"]) for c in checkpoints],
        "checkpoint_met_at": [instant(c.get("met_at")) for c in checkpoints],
        "clock_name": [c["clock"] for c in every],
        "clock_started_at": [instant(c["started_at"]) for c in every],
        "clock_due_at": [instant(c["due_at"]) for c in every],
        "clock_met_at": [instant(c.get("met_at")) for c in every],
        "clock_state": [c["state"] for c in every],
        "clock_calendar_version": [int(c.get("calendar_version") or 0) for c in every],
        "overdue_clocks": sum(1 for c in every if c.get("state") == "overdue"),
        "next_due_clock": upcoming["clock"] if upcoming else None,
        "next_due_at": instant(upcoming["due_at"]) if upcoming else None,
    }


# -- task_alerts ------------------------------------------------------------------------------------------------
def alert_id(task_id: str, clock: str, kind: str, due_at: datetime) -> str:
    """The stable id of an alert: one per (task, clock instance, kind)."""
    utc = instant(due_at)
    assert utc is not None
    return str(uuid.uuid5(ALERT_ID_NAMESPACE, f"{_uuid(task_id)}:{clock}:{kind}:{utc.isoformat()}"))


def alert_row(
    view: Mapping[str, Any],
    clock: Mapping[str, Any],
    kind: str,
    raised_at: str | datetime,
) -> dict[str, Any]:
    """One ``task_alerts`` row: ``kind`` raised at ``raised_at`` for ``clock`` (an entry of
    ``view["clocks"]["all"]``) of the task ``view`` (``domain.views.task_view``). The accountable agency is
    the task's assignee in that view; the alert is identified by (task, clock name, due instant, kind)."""
    if kind not in ALERT_KINDS:
        raise ValueError(f"alert kind {kind!r}: expected one of {', '.join(ALERT_KINDS)}")
    level = _level(view.get("confidentiality"), nullable=False, what=f"task {view['task_id']}")
    due = instant(clock["due_at"])
    raised = instant(raised_at)
    if due is None or raised is None:
        raise ValueError("an alert needs the clock's due_at and the raised_at instant")
    task = _uuid(view["task_id"])
    assert task is not None
    return {
        "alert_id": alert_id(task, clock["clock"], kind, due),
        "task_id": task,
        "clock": clock["clock"],
        "kind": kind,
        "due_at": due,
        "raised_at": raised,
        "clock_started_at": instant(clock.get("started_at")),
        "agency": view["assignee"],
        "monitor": view["monitor"],
        "confidentiality": level,
        "priority": view["priority"],
        "task_version": int(view["version"]),
    }


def as_values(row: Mapping[str, Any], columns: tuple[str, ...]) -> list[Any]:
    """A row dict as a value list in ``columns`` order (what ``client.insert`` takes)."""
    try:
        return [row[c] for c in columns]
    except KeyError as missing:
        raise ValueError(f"row lacks column {missing.args[0]!r} (expected {', '.join(columns)})") from None


BUILDER_COLUMNS = {"event_row": EVENT_COLUMNS, "status_row": STATUS_COLUMNS, "alert_row": ALERT_COLUMNS}
