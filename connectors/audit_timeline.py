"""`taskledger audit history | as-of | grant | revoke | clearances`: full-history replay, time travel
and the clearances that limit what an auditor or inspector may read (SPEC 6, 8)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import typer
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError
from rich.table import Table

from connectors.audit_cli import audit_app
from domain import timeline as tl
from domain import views
from domain.actors import Actor
from domain.application import CommandResult, TaskLedger
from domain.calendar import WorkingCalendar
from domain.clearance import CLEARANCES_ID, Clearances, clearance_of, require_clearance, require_reader
from domain.directive import Directive
from domain.errors import Conflict, NotFound
from domain.events import Context
from domain.task import Task
from domain.values import Confidentiality

Event = Aggregate.Event


# -- use cases ------------------------------------------------------------------------------
def fold(app: TaskLedger, aggregate_id: UUID) -> Any:
    """An aggregate folded fresh from the store (no cache: another process may have written)."""
    aggregate = None
    for event in app.events.get(aggregate_id):
        aggregate = event.mutate(aggregate)  # type: ignore[attr-defined]
    return aggregate


def load_clearances(app: TaskLedger) -> Clearances | None:
    found = fold(app, CLEARANCES_ID)
    return found if isinstance(found, Clearances) else None


def reader_level(app: TaskLedger, actor: Actor) -> Confidentiality:
    return clearance_of(actor, load_clearances(app))


def _change_clearances(
    app: TaskLedger, actor: Actor, command_id: str | None, expected: str, change: Callable[[Clearances, Context], None]
) -> CommandResult:
    """Load the register fresh, apply one grant or revocation, save atomically; on a concurrent
    write, redo it on the fresh register. A reused command id returns the first result."""
    for _ in range(3):
        ctx = Context.create(actor, app.clock(), app.calendars, None, command_id)
        clearances = load_clearances(app) or Clearances.open(ctx)
        if command_id and command_id in clearances.commands:
            recorded, version = clearances.commands[command_id]
            if recorded != expected:
                raise Conflict("command_id", f"{command_id} was already used for {recorded}; a retry must repeat it")
            return CommandResult(clearances.id, version, recorded, duplicate=True)
        change(clearances, ctx)
        try:
            app.save(clearances)
        except IntegrityError:
            continue
        return CommandResult(clearances.id, clearances.version, expected)
    raise Conflict("version", "the clearances changed concurrently; retry the command")


def grant_clearance(
    app: TaskLedger,
    actor: Actor,
    *,
    agency: str,
    user: str,
    level: Confidentiality | str,
    command_id: str | None = None,
) -> CommandResult:
    """Record that ``agency:user`` is cleared for ``level`` (central office only)."""
    return _change_clearances(
        app, actor, command_id, "Granted", lambda c, ctx: c.grant(ctx, agency=agency, user=user, level=level)
    )


def revoke_clearance(
    app: TaskLedger, actor: Actor, *, agency: str, user: str, reason: str | None = None, command_id: str | None = None
) -> CommandResult:
    """Record that ``agency:user``'s grant is withdrawn: it reads regular records only."""
    return _change_clearances(
        app, actor, command_id, "Revoked", lambda c, ctx: c.revoke(ctx, agency=agency, user=user, reason=reason)
    )


@dataclass(frozen=True)
class Record:
    """One aggregate's stored facts, what kind it is and its confidentiality."""

    id: UUID
    kind: str
    level: Confidentiality
    events: list[Event]

    @property
    def label(self) -> str:
        return f"{self.kind} {self.id}"


KINDS: dict[type[Any], str] = {
    Task: "task",
    Directive: "directive",
    Clearances: "clearances",
    WorkingCalendar: "calendar",
}


def readable_record(app: TaskLedger, actor: Actor, aggregate_id: UUID) -> Record:
    """The facts of one aggregate, after checking the actor's role and clearance: a record above the
    clearance is refused explicitly and nothing of it is returned."""
    require_reader(actor)
    events: list[Any] = list(app.events.get(aggregate_id))
    if not events:
        raise NotFound("id", f"nothing recorded for {aggregate_id}")
    first = events[0].mutate(None)
    kind = next((name for cls, name in KINDS.items() if isinstance(first, cls)), type(first).__name__.lower())
    level = Confidentiality(getattr(first, "confidentiality", Confidentiality.REGULAR.value))
    record = Record(aggregate_id, kind, level, events)
    require_clearance(actor, reader_level(app, actor), level, record.label)
    return record


def _projection(app: TaskLedger, record: Record) -> tl.Projection:
    calendars = app.calendars
    if record.kind == "task":
        directive_id = record.events[0].directive_id  # type: ignore[attr-defined]
        directive = fold(app, directive_id)
        directive = directive if isinstance(directive, Directive) else None
        return lambda task, at: tl.task_state(task, directive, calendars, at)
    if record.kind == "directive":
        return lambda d, at: tl.directive_state(d, calendars)
    if record.kind == "clearances":
        return lambda c, at: tl.grants_state(c)
    return lambda aggregate, at: {}


def history(app: TaskLedger, actor: Actor, aggregate_id: UUID) -> dict[str, Any]:
    """The complete timeline of a task or directive: every fact, who, occurred vs recorded, late
    records flagged, hash chain, and what each fact changed."""
    record = readable_record(app, actor, aggregate_id)
    rows = tl.timeline(record.events, _projection(app, record), app.tz)
    return {
        "aggregate_id": str(aggregate_id),
        "kind": record.kind,
        "confidentiality": record.level.value,
        "events": rows,
        "late_records": sum(1 for r in rows if r["late_record"]),
    }


def as_of(app: TaskLedger, actor: Actor, aggregate_id: UUID, at: datetime, basis: tl.Basis) -> dict[str, Any]:
    """State, derived status and clocks as they stood at ``at``: by recorded time, what the system
    showed then; by business time, what had happened by then (facts recorded later included)."""
    record = readable_record(app, actor, aggregate_id)
    tz = app.tz
    at_text = at.astimezone(tz).isoformat()
    counted, excluded = tl.split_at(record.events, at, basis)
    if not counted:
        first = record.events[0]
        raise NotFound(
            "at",
            f"{record.label} did not exist yet at {at_text} by {basis.value} time "
            f"(created: occurred {tl.local_iso(tl.occurred_at(first), tz)}, "
            f"recorded {tl.local_iso(first.timestamp, tz)})",
        )
    if record.kind == "task":
        view = app.task_view(aggregate_id, as_of=at, basis=basis.value)
    elif record.kind == "directive":
        directive: Any = app.as_of(aggregate_id, at, basis.value)
        view = views.directive_view(directive, app.calendars)
    else:
        raise NotFound("id", f"{record.label} has no as-of view; use audit history")
    return {
        "aggregate_id": str(aggregate_id),
        "kind": record.kind,
        "at": at_text,
        "basis": basis.value,
        "note": basis.note(at_text),
        "events_total": len(record.events),
        "events_counted": len(counted),
        "events_excluded": len(excluded),
        "counted_but_recorded_later": tl.recorded_after(counted, at) if basis is tl.Basis.OCCURRED else [],
        "excluded": tl.excluded_view(excluded, at, basis, tz),
        "view": view,
    }


def clearance_listing(app: TaskLedger, actor: Actor) -> list[dict[str, Any]]:
    require_reader(actor, "list clearances")
    clearances = load_clearances(app)
    tz = app.tz
    rows = clearances.listing() if clearances else []
    return [{**r, "granted_at": tl.local_iso(r["granted_at"], tz)} for r in rows]


# -- command line ---------------------------------------------------------------------------
def _cli() -> Any:
    """connectors.cli, imported when a command runs: it imports this module while it is being built."""
    from connectors import cli

    return cli


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """connectors.cli.guarded, resolved at call time."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return _cli().guarded(fn)(*args, **kwargs)

    return wrapper


ActorOpt = Annotated[str | None, typer.Option("--actor", help="ROLE:AGENCY:USER (or env TASKLEDGER_ACTOR)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
CmdIdOpt = Annotated[str | None, typer.Option("--command-id", help="idempotency key: a retry appends nothing")]
RecordId = Annotated[str, typer.Argument(help="task id, directive id or directive symbol")]
AgencyOpt = Annotated[str, typer.Option("--agency", help="agency code of the user")]


def _actor_text(actor: dict[str, str] | None) -> str:
    a = actor or {}
    return f"{a.get('role')}:{a.get('agency')}:{a.get('user')}"


CREATED_SHOWN = (
    "status",
    "lifecycle",
    "assignee",
    "monitor",
    "deadline",
    "confidentiality",
    "symbol",
    "title",
    "clocks.receipt_due_at",
    "grants",
)


def _changes_text(row: dict[str, Any]) -> str:
    """'field: old → new' lines; a creating fact shows its key fields (--json has them all)."""
    changes = [tl.Change(**c) for c in row["changes"]]
    if row["version"] == 1:
        key = [f"{c.field}: {tl.shown(c.new)}" for c in changes if c.field.startswith(CREATED_SHOWN)]
        return "\n".join(["created", *key])
    return "\n".join(str(c) for c in changes) or "—"


@audit_app.command("history")
@guarded
def history_cmd(record_id: RecordId, actor: ActorOpt = None, as_json: JsonOpt = False) -> None:
    """The complete timeline: every fact, actor, occurred vs recorded time (late records flagged),
    command id, calendar version, hash, and what changed."""
    cli = _cli()
    data = history(cli._ledger(), cli.actor_of(actor), cli.directive_ref(record_id))
    table = Table(
        "v",
        "event",
        "actor",
        "occurred_at",
        "recorded_at",
        "late by",
        "command_id",
        "cal",
        "hash",
        "what changed",
        title=f"{data['kind']} {data['aggregate_id']} ({data['confidentiality']})",
    )
    for r in data["events"]:
        table.add_row(
            str(r["version"]),
            r["type"],
            _actor_text(r["actor"]),
            r["occurred_at"],
            r["recorded_at"],
            f"LATE {r['record_gap']}" if r["late_record"] else "",
            r["command_id"] or "",
            str(r["calendar_version"] or ""),
            (r["hash"] or "")[:12],
            _changes_text(r),
        )
    cli.emit(data, as_json, table)
    if not as_json:
        cli.out.print(f"{len(data['events'])} facts, {data['late_records']} recorded late (after they occurred)")


@audit_app.command("as-of")
@guarded
def as_of_cmd(
    record_id: RecordId,
    at: Annotated[str, typer.Option("--at", help="the instant, ISO 8601 with offset")],
    basis: Annotated[
        str, typer.Option("--basis", help="occurred (what had happened) | recorded (what was shown)")
    ] = "occurred",
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """State, derived status and clocks as they stood at an instant, by business or recorded time."""
    cli = _cli()
    instant = cli.instant(at, "at")
    data = as_of(cli._ledger(), cli.actor_of(actor), cli.directive_ref(record_id), instant, tl.Basis.parse(basis))
    table = Table(
        "field",
        "value",
        show_header=False,
        title=f"{data['kind']} {data['aggregate_id']}: {data['note']} (basis: {data['basis']})",
    )
    view = data["view"]
    for key in ("status", "lifecycle", "assignee", "deadline", "percent", "version", "symbol", "title"):
        if key in view:
            table.add_row(key, str(view[key]))
    for key, value in (view.get("clocks") or {}).items():
        if key.endswith("_at"):
            table.add_row(key, str(value or "—"))
    table.add_row("facts counted", f"{data['events_counted']} of {data['events_total']}")
    for e in data["excluded"]:
        why = "occurred by then, recorded later" if e["occurred_by_instant"] else "not yet occurred"
        table.add_row(
            "excluded", f"v{e['version']} {e['type']} occurred {e['occurred_at']}, recorded {e['recorded_at']} ({why})"
        )
    for v in data["counted_but_recorded_later"]:
        table.add_row("counted", f"v{v} had occurred but was recorded after {data['at']}")
    cli.emit(data, as_json, table)


@audit_app.command("grant")
@guarded
def grant_cmd(
    user: Annotated[str, typer.Argument(help="user id")],
    agency: AgencyOpt,
    level: Annotated[str, typer.Option("--level", help="regular|confidential|top_secret")],
    actor: ActorOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Clear a user to read records up to a confidentiality level (central office)."""
    cli = _cli()
    result = grant_clearance(
        cli._ledger(), cli.actor_of(actor), agency=agency, user=user, level=level, command_id=command_id
    ).to_dict()
    note = " (retry: nothing appended)" if result["duplicate"] else ""
    cli.emit(result, as_json, f"{agency}:{user} cleared for {level} (clearances v{result['version']}){note}")


@audit_app.command("revoke")
@guarded
def revoke_cmd(
    user: Annotated[str, typer.Argument(help="user id")],
    agency: AgencyOpt,
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    actor: ActorOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Withdraw a user's clearance: it reads regular records only (central office)."""
    cli = _cli()
    result = revoke_clearance(
        cli._ledger(), cli.actor_of(actor), agency=agency, user=user, reason=reason, command_id=command_id
    ).to_dict()
    note = " (retry: nothing appended)" if result["duplicate"] else ""
    cli.emit(result, as_json, f"{agency}:{user} clearance revoked (clearances v{result['version']}){note}")


@audit_app.command("clearances")
@guarded
def clearances_cmd(actor: ActorOpt = None, as_json: JsonOpt = False) -> None:
    """Who is cleared above regular, since when and by whom."""
    cli = _cli()
    rows = clearance_listing(cli._ledger(), cli.actor_of(actor))
    table = Table("agency", "user", "level", "granted_at", "granted_by")
    for r in rows:
        table.add_row(r["agency"], r["user"], r["level"], r["granted_at"], _actor_text(r["granted_by"]))
    cli.emit(rows, as_json, table)
