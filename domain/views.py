"""Read views of aggregates: plain dicts for CLI, API and (later) projections. Pure."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate

from domain import clocks
from domain.calendar import CalendarHistory
from domain.directive import Directive
from domain.events import public_payload
from domain.task import Task


def _iso(t: datetime | None, tz: ZoneInfo) -> str | None:
    return clocks.local_iso(t, tz)


def task_view(
    task: Task,
    directive: Directive | None,
    calendars: CalendarHistory,
    as_of: datetime,
    subtasks: list[Task] | None = None,
    all_clocks: list[clocks.Clock] | None = None,
) -> dict[str, Any]:
    tz = ZoneInfo(calendars.current.hours.tz)
    status = clocks.derive_status(task, calendars, as_of)
    approved = [r for r in task.reports if r["state"] == "approved"]
    view: dict[str, Any] = {
        "task_id": str(task.id),
        "directive_id": str(task.directive_id),
        "directive_symbol": directive.symbol if directive else None,
        "parent_id": str(task.parent_id) if task.parent_id else None,
        "as_of": _iso(as_of, tz),
        "status": status.value,
        "coarse_result": clocks.coarse_result(status),
        "lifecycle": task.lifecycle.value,
        "confidentiality": task.confidentiality,
        "content": task.content,
        "assigning_body": task.assigning_body,
        "assignee": task.assignee,
        "assignee_kind": task.assignee_kind,
        "monitor": task.monitor,
        "scope": task.scope,
        "scope_name": task.scope_name,
        "priority": task.priority,
        "update_every": task.update_every,
        "ad_hoc": task.ad_hoc,
        "with_deadline": task.deadline is not None,
        "deadline": task.deadline,
        "original_deadline": task.original_deadline,
        "assigned_at": _iso(task.assigned_at, tz),
        "received_at": _iso(task.received_at, tz),
        "completed_at": _iso(task.completed_at, tz),
        "completed_late_against_original": task.completed_late_against_original,
        "cancelled_at": _iso(task.cancelled_at, tz),
        "percent": task.percent,
        "reports": len(task.reports),
        "last_approved_report_at": _iso(approved[-1]["reported_at"], tz) if approved else None,
        "pending_report": task.pending_draft["no"] if task.pending_draft else None,
        "objections": len(task.objections),
        "late_objections": sum(1 for o in task.objections if o["late"]),
        "transfers": len(task.receipts) - 1,
        "extensions": len(task.extensions),
        "urges": len(task.urges),
        "difficulties": task.difficulties,
        "explanations": task.explanations,
        "findings": len(task.findings),
        "evaluation": task.evaluations[-1]["grade"] if task.evaluations else None,
        "version": task.version,
        "clocks": clocks.clocks_view(task, directive, calendars, as_of, all_clocks),
    }
    if task.level.is_classified:
        view["content"] = None
    if subtasks is not None:
        view["subtasks"] = [
            {
                "task_id": str(s.id),
                "assignee": s.assignee,
                "status": clocks.derive_status(s, calendars, as_of).value,
                "percent": s.percent,
            }
            for s in subtasks
        ]
        if subtasks:
            view["rollup_percent"] = round(sum(s.percent for s in subtasks) / len(subtasks))
    return view


def directive_view(d: Directive, calendars: CalendarHistory, task_count: int | None = None) -> dict[str, Any]:
    tz = ZoneInfo(calendars.current.hours.tz)
    signer = (d.signature or {}).get("signer")
    return {
        "directive_id": str(d.id),
        "symbol": d.symbol,
        "number": d.number,
        "title": d.title,
        "summary": None if d.level.is_classified else d.summary,
        "issued_on": d.issued_on,
        "signer": d.signer,
        "issuing_body": d.issuing_body,
        "presenting_body": d.presenting_body,
        "confidentiality": d.confidentiality,
        "document_sha256": d.document_sha256,
        "signature_verified_by": signer,
        "registered_at": _iso(d.registered_at, tz),
        "registration_due_at": _iso(d.registration_due_at, tz),
        "registered_late": d.registered_late,
        "withdrawn_at": _iso(d.withdrawn_at, tz),
        "task_count": task_count,
        "version": d.version,
    }


def event_view(event: Aggregate.Event, tz: ZoneInfo) -> dict[str, Any]:
    """One fact of a history: envelope, actor, business and recorded time, payload."""
    payload = {
        k: (v.isoformat() if isinstance(v, datetime) else str(v) if k.endswith("_id") and v else v)
        for k, v in public_payload(event).items()
    }
    return {
        "aggregate_id": str(event.originator_id),
        "version": event.originator_version,
        "type": type(event).__qualname__.split(".")[-1],
        "actor": getattr(event, "actor", None),
        "occurred_at": _iso(getattr(event, "occurred_at", None), tz),
        "recorded_at": _iso(event.timestamp, tz),
        "command_id": getattr(event, "command_id", None),
        "calendar_version": getattr(event, "calendar_version", None),
        "payload": payload,
    }
