"""The taskledger command line (typer): every use case, human tables or --json."""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.console import Console
from rich.table import Table

from connectors.errors import ConnectorError
from connectors.settings import Settings
from domain import commands as c
from domain.actors import Actor
from domain.errors import DomainError, ValidationError
from domain.events import directive_id_for

app = typer.Typer(
    help="taskledger: event-sourced ledger of tasks assigned by directives (08-QC/TW).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
pki_app = typer.Typer(help="Dev PKI: a CA and a signer for this home only.", no_args_is_help=True)
directive_app = typer.Typer(help="Directives: register, show, list, amend, withdraw.", no_args_is_help=True)
task_app = typer.Typer(help="Tasks: assign and every lifecycle event; show, history, list.", no_args_is_help=True)
projections_app = typer.Typer(help="ClickHouse projections: migrations, rebuild.", no_args_is_help=True)
calendar_app = typer.Typer(help="The working-time calendar and its recorded changes.", no_args_is_help=True)
app.add_typer(pki_app, name="pki")
app.add_typer(directive_app, name="directive")
app.add_typer(task_app, name="task")
app.add_typer(calendar_app, name="calendar")
app.add_typer(projections_app, name="projections")


out = Console(width=None if sys.stdout.isatty() else 200)

ActorOpt = Annotated[str | None, typer.Option("--actor", help="ROLE:AGENCY:USER (or env TASKLEDGER_ACTOR)")]
AtOpt = Annotated[str | None, typer.Option("--at", help="business time ISO 8601 (imports of past records)")]
CmdIdOpt = Annotated[str | None, typer.Option("--command-id", help="idempotency key: a retry appends nothing")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
TaskId = Annotated[str, typer.Argument(help="task id (UUID)")]


# -- plumbing ---------------------------------------------------------------------------
def _settings() -> Settings:
    return Settings()


def _ledger():  # type: ignore[no-untyped-def]
    from connectors.eventstore import open_ledger

    return open_ledger(_settings())


def fail(error: DomainError, as_json: bool = False) -> None:
    """Refusals: one clear line naming the field and the rule, non-zero exit."""
    if as_json:
        print(json.dumps(error.to_dict(), ensure_ascii=False))
    print(f"refused ({error.kind}) {error.field}: {error.rule}", file=sys.stderr)
    raise typer.Exit(2)


def guarded(fn):  # type: ignore[no-untyped-def]
    """Translate domain errors into CLI refusals in one place."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DomainError as e:
            fail(e, bool(kwargs.get("as_json")))
        except ConnectorError as e:
            print(f"failed: {e}", file=sys.stderr)
            raise typer.Exit(1) from None
        except (OSError, ValueError) as e:
            fail(ValidationError("input", str(e)), bool(kwargs.get("as_json")))

    return wrapper


def actor_of(actor: str | None) -> Actor:
    text = actor or _settings().actor
    if not text:
        raise ValidationError("actor", "is required: --actor ROLE:AGENCY:USER or env TASKLEDGER_ACTOR")
    return Actor.parse(text)


def instant(text: str | None, field: str = "at") -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(field, f"'{text}' is not an ISO 8601 instant") from None
    if value.tzinfo is None:
        raise ValidationError(field, "must carry a time zone offset, e.g. 2026-04-24T15:00+07:00")
    return value


def reader_clearance(ledger: Any, actor: str | None) -> tuple[Actor, Any] | None:
    """Auditors and inspectors read only up to their recorded clearance (SPEC 6); None = unrestricted."""
    from connectors.audit_timeline import reader_level
    from domain.actors import Role

    text = actor or _settings().actor
    if not text:
        return None
    reader = Actor.parse(text)
    if reader.role not in (Role.AUDITOR, Role.INSPECTOR):
        return None
    return reader, reader_level(ledger, reader)


def check_clearance(ledger: Any, actor: str | None, level: str, record_id: str) -> None:
    from domain.clearance import require_clearance
    from domain.values import Confidentiality

    cleared = reader_clearance(ledger, actor)
    if cleared is not None:
        require_clearance(cleared[0], cleared[1], Confidentiality(level), record_id)


def within_clearance(ledger: Any, actor: str | None, rows: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
    """Keep the rows the reader is cleared for; say explicitly how many were withheld."""
    from domain.clearance import may_read
    from domain.values import Confidentiality

    cleared = reader_clearance(ledger, actor)
    if cleared is None:
        return rows
    kept = [r for r in rows if may_read(cleared[1], Confidentiality(r["confidentiality"]))]
    if len(kept) < len(rows):
        print(
            f"withheld: {len(rows) - len(kept)} {what} above the clearance of {cleared[0]} ({cleared[1].value})",
            file=sys.stderr,
        )
    return kept


def uuid_of(text: str, field: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise ValidationError(field, f"'{text}' is not a UUID") from None


def directive_ref(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        return directive_id_for(text)


def emit(data: Any, as_json: bool, human: Any = None) -> None:
    if as_json:
        print(json.dumps(data, ensure_ascii=False, default=str))
    elif human is not None:
        out.print(human)
    else:
        out.print_json(json.dumps(data, ensure_ascii=False, default=str))


def run(actor: str | None, command: c.Command, as_json: bool) -> dict[str, Any]:
    ledger = _ledger()
    result = ledger.execute(actor_of(actor), command).to_dict()
    note = " (retry: nothing appended)" if result["duplicate"] else ""
    emit(result, as_json, f"{result['event']} {result['aggregate_id']} v{result['version']}{note}")
    return result


def task_cmd(
    kind: type[c.TaskCommand],
    task_id: str,
    actor: str | None,
    at: str | None,
    command_id: str | None,
    as_json: bool,
    **fields: Any,
) -> None:
    command = kind.build(task_id=uuid_of(task_id, "task_id"), occurred_at=instant(at), command_id=command_id, **fields)
    run(actor, command, as_json)


# -- pki --------------------------------------------------------------------------------
@pki_app.command("init")
@guarded
def pki_init(
    force: Annotated[bool, typer.Option(help="replace existing keys")] = False, as_json: JsonOpt = False
) -> None:
    """Create a dev CA and signer under $TASKLEDGER_HOME/pki, trusted for this home only."""
    from datetime import timedelta

    from connectors.pki import init_dev_pki
    from connectors.settings import make_clock

    settings = _settings()
    # Valid from a day before the (possibly controlled) clock, so that signatures verify at once.
    pki = init_dev_pki(settings.pki_dir, force=force, now=make_clock(settings.clock)() - timedelta(days=1))
    from connectors.audit_integrity import ensure_audit_key

    ensure_audit_key(settings.pki_dir)  # the deployment's key that signs audit checkpoints
    data = {k: str(v) for k, v in pki.__dict__.items()}
    emit(data, as_json, f"dev PKI ready in {pki.directory} (trusted roots: {pki.trusted_roots})")


@pki_app.command("sign")
@guarded
def pki_sign(file: Path, key: Path | None = None, cert: Path | None = None, as_json: JsonOpt = False) -> None:
    """Sign FILE's SHA-256 with the signer key: writes FILE.sig (bundle with the certificate chain)."""
    from connectors.pki import sign_file

    pki_dir = _settings().pki_dir
    sig = sign_file(file, key_path=key or pki_dir / "signer.key", cert_path=cert or pki_dir / "signer.pem")
    emit({"signature": str(sig)}, as_json, f"wrote {sig}")


# -- directives -------------------------------------------------------------------------
@directive_app.command("register")
@guarded
def directive_register(
    symbol: Annotated[str, typer.Option(help="ký hiệu, e.g. 57-NQ/TW")],
    title: Annotated[str, typer.Option()],
    issued_on: Annotated[str, typer.Option(help="YYYY-MM-DD")],
    signer: Annotated[str, typer.Option()],
    issuing_body: Annotated[str, typer.Option()],
    presenting_body: Annotated[str, typer.Option()],
    confidentiality: Annotated[str, typer.Option(help="regular|confidential|top_secret|absolute_secret")],
    summary: Annotated[str | None, typer.Option()] = None,
    number: Annotated[str | None, typer.Option()] = None,
    document: Annotated[Path | None, typer.Option(help="the document file (its SHA-256 is recorded)")] = None,
    signature: Annotated[Path | None, typer.Option(help="FILE.sig from 'pki sign'")] = None,
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a directive (Regular ones need a valid signature)."""
    from domain.signatures import parse_bundle

    digest = hashlib.sha256(document.read_bytes()).hexdigest() if document else None
    bundle = parse_bundle(signature.read_bytes()) if signature else None
    command = c.RegisterDirective.build(
        symbol=symbol,
        number=number,
        title=title,
        summary=summary,
        issued_on=issued_on,
        signer=signer,
        issuing_body=issuing_body,
        presenting_body=presenting_body,
        confidentiality=confidentiality,
        document_sha256=digest,
        signature=bundle,
        occurred_at=instant(at),
        command_id=command_id,
    )
    run(actor, command, as_json)


@directive_app.command("show")
@guarded
def directive_show(directive: str, actor: ActorOpt = None, as_json: JsonOpt = False) -> None:
    """Show a directive by id or symbol."""
    from domain import views

    ledger = _ledger()
    d = ledger.get_directive(directive_ref(directive))
    check_clearance(ledger, actor, d.confidentiality, f"directive {d.id}")
    emit(views.directive_view(d, ledger.calendars), as_json)


@directive_app.command("list")
@guarded
def directive_list(actor: ActorOpt = None, as_json: JsonOpt = False) -> None:
    """List directives with their task counts."""
    ledger = _ledger()
    rows = within_clearance(ledger, actor, ledger.list_directives(), "directives")
    table = Table("symbol", "title", "issued_on", "confidentiality", "tasks", "registered late", "id")
    for r in rows:
        table.add_row(
            r["symbol"],
            r["title"][:40],
            r["issued_on"],
            r["confidentiality"],
            str(r["task_count"]),
            "yes" if r["registered_late"] else "",
            r["directive_id"],
        )
    emit(rows, as_json, table)


@directive_app.command("amend")
@guarded
def directive_amend(
    directive: str,
    reason: Annotated[str, typer.Option()],
    title: str | None = None,
    summary: str | None = None,
    signer: str | None = None,
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Amend a directive's title, summary or signer."""
    changes = {k: v for k, v in {"title": title, "summary": summary, "signer": signer}.items() if v is not None}
    run(
        actor,
        c.AmendDirective.build(
            directive_id=directive_ref(directive),
            changes=changes,
            reason=reason,
            occurred_at=instant(at),
            command_id=command_id,
        ),
        as_json,
    )


@directive_app.command("withdraw")
@guarded
def directive_withdraw(
    directive: str,
    reason: Annotated[str, typer.Option()],
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Withdraw a directive: no new tasks under it."""
    run(
        actor,
        c.WithdrawDirective.build(
            directive_id=directive_ref(directive), reason=reason, occurred_at=instant(at), command_id=command_id
        ),
        as_json,
    )


# -- tasks ------------------------------------------------------------------------------
@task_app.command("assign")
@guarded
def task_assign(
    directive: Annotated[str, typer.Option(help="directive id or symbol")],
    assignee: Annotated[str, typer.Option(help="agency code")],
    monitor: Annotated[str, typer.Option(help="monitoring agency code")],
    content: Annotated[str | None, typer.Option()] = None,
    deadline: Annotated[str | None, typer.Option(help="YYYY-MM-DD; none = without deadline")] = None,
    scope: Annotated[str, typer.Option(help="national|sector|regional")] = "national",
    scope_name: Annotated[str | None, typer.Option(help="sector or region name")] = None,
    priority: Annotated[str, typer.Option(help="key|regular|urgent")] = "regular",
    update_every: Annotated[str, typer.Option(help="month|quarter|year")] = "month",
    assignee_kind: Annotated[
        str, typer.Option(help="central_body|provincial_committee|municipal_committee|other")
    ] = "other",
    ad_hoc: Annotated[bool, typer.Option(help="the 'other' group of ad-hoc tasks")] = False,
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Assign a task under a directive; starts the receipt clock."""
    run(
        actor,
        c.AssignTask.build(
            directive_id=directive_ref(directive),
            content=content,
            assignee=assignee,
            monitor=monitor,
            deadline=deadline,
            scope=scope,
            scope_name=scope_name,
            priority=priority,
            update_every=update_every,
            assignee_kind=assignee_kind,
            ad_hoc=ad_hoc,
            occurred_at=instant(at),
            command_id=command_id,
        ),
        as_json,
    )


@task_app.command("subtask")
@guarded
def task_subtask(
    parent: Annotated[str, typer.Option(help="parent task id")],
    assignee: Annotated[str, typer.Option(help="subordinate unit")],
    content: str | None = None,
    deadline: str | None = None,
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Assign part of a task onward to a subordinate unit (Art. 6.2.c)."""
    run(
        actor,
        c.AssignSubtask.build(
            parent_id=uuid_of(parent, "parent"),
            assignee=assignee,
            content=content,
            deadline=deadline,
            occurred_at=instant(at),
            command_id=command_id,
        ),
        as_json,
    )


@task_app.command("receive")
@guarded
def task_receive(
    task_id: TaskId, actor: ActorOpt = None, at: AtOpt = None, command_id: CmdIdOpt = None, as_json: JsonOpt = False
) -> None:
    """Acknowledge receipt (due within 4 working hours)."""
    task_cmd(c.ReceiveTask, task_id, actor, at, command_id, as_json)


@task_app.command("object")
@guarded
def task_object(
    task_id: TaskId,
    reason: Annotated[str, typer.Option()],
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Object to a task (due within 8 working hours of receipt; later ones are flagged late)."""
    task_cmd(c.ObjectTask, task_id, actor, at, command_id, as_json, reason=reason)


@task_app.command("resolve-objection")
@guarded
def task_resolve(
    task_id: TaskId,
    accept: Annotated[bool, typer.Option("--accept/--dismiss", help="accept or dismiss")],
    transfer_to: Annotated[str | None, typer.Option()] = None,
    reason: str | None = None,
    content: str | None = None,
    deadline: str | None = None,
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Accept (optionally transferring or adjusting) or dismiss the pending objection."""
    changes = {k: v for k, v in {"content": content, "deadline": deadline}.items() if v is not None}
    task_cmd(
        c.ResolveObjection,
        task_id,
        actor,
        at,
        command_id,
        as_json,
        accept=accept,
        transfer_to=transfer_to,
        changes=changes,
        reason=reason,
    )


@task_app.command("transfer")
@guarded
def task_transfer(
    task_id: TaskId,
    to: Annotated[str, typer.Option()],
    reason: Annotated[str, typer.Option()],
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move the task to another agency; the receipt clock restarts."""
    task_cmd(c.TransferTask, task_id, actor, at, command_id, as_json, to=to, reason=reason)


@task_app.command("adjust")
@guarded
def task_adjust(
    task_id: TaskId,
    reason: Annotated[str, typer.Option()],
    content: str | None = None,
    deadline: str | None = None,
    priority: str | None = None,
    scope: str | None = None,
    scope_name: str | None = None,
    monitor: str | None = None,
    update_every: str | None = None,
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Correct content, deadline or classification."""
    changes = {
        k: v
        for k, v in dict(
            content=content,
            deadline=deadline,
            priority=priority,
            scope=scope,
            scope_name=scope_name,
            monitor=monitor,
            update_every=update_every,
        ).items()
        if v is not None
    }
    task_cmd(c.AdjustTask, task_id, actor, at, command_id, as_json, changes=changes, reason=reason)


@task_app.command("report")
@guarded
def task_report(
    task_id: TaskId,
    percent: Annotated[int, typer.Option()],
    note: str | None = None,
    products: str | None = None,
    reason: Annotated[str | None, typer.Option(help="required if percent decreases")] = None,
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Draft a progress report (approved by the agency's approver)."""
    task_cmd(
        c.ReportProgress,
        task_id,
        actor,
        at,
        command_id,
        as_json,
        percent=percent,
        note=note,
        products=products,
        reason=reason,
    )


@task_app.command("approve")
@guarded
def task_approve(
    task_id: TaskId,
    report: int | None = None,
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve the pending progress report (maker-checker, Art. 15.3)."""
    task_cmd(c.ApproveProgress, task_id, actor, at, command_id, as_json, report_no=report)


@task_app.command("return")
@guarded
def task_return(
    task_id: TaskId,
    reason: Annotated[str, typer.Option()],
    report: int | None = None,
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Return the pending progress report to its drafter."""
    task_cmd(c.ReturnProgress, task_id, actor, at, command_id, as_json, reason=reason, report_no=report)


@task_app.command("urge")
@guarded
def task_urge(
    task_id: TaskId,
    message: str | None = None,
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a reminder (monitor or central office)."""
    task_cmd(c.UrgeTask, task_id, actor, at, command_id, as_json, message=message)


@task_app.command("difficulty")
@guarded
def task_difficulty(
    task_id: TaskId,
    causes: str | None = None,
    proposals: str | None = None,
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Report that the task cannot be done as due: causes and proposals (Art. 15.2)."""
    task_cmd(c.ReportDifficulty, task_id, actor, at, command_id, as_json, causes=causes, proposals=proposals)


@task_app.command("extend")
@guarded
def task_extend(
    task_id: TaskId,
    deadline: Annotated[str, typer.Option()],
    reason: Annotated[str, typer.Option()],
    authority: Annotated[str, typer.Option(help="who decided")] = "central_office",
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Extend the deadline (the original one is kept)."""
    task_cmd(
        c.ExtendDeadline, task_id, actor, at, command_id, as_json, deadline=deadline, reason=reason, authority=authority
    )


@task_app.command("explain")
@guarded
def task_explain(
    task_id: TaskId,
    explanation: str | None = None,
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Explain a delay in writing (Art. 15.4)."""
    task_cmd(c.ExplainDelay, task_id, actor, at, command_id, as_json, explanation=explanation)


@task_app.command("complete")
@guarded
def task_complete(
    task_id: TaskId,
    result: str | None = None,
    products: str | None = None,
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Report completion (needs an approved 100 % report)."""
    task_cmd(c.CompleteTask, task_id, actor, at, command_id, as_json, result=result, products=products)


@task_app.command("evaluate")
@guarded
def task_evaluate(
    task_id: TaskId,
    grade: Annotated[str, typer.Option(help="excellent|completed|not_fully_completed|not_completed")],
    comment: str | None = None,
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate implementation (Art. 5.1.i)."""
    task_cmd(c.EvaluateTask, task_id, actor, at, command_id, as_json, grade=grade, comment=comment)


@task_app.command("cancel")
@guarded
def task_cancel(
    task_id: TaskId,
    reason: Annotated[str, typer.Option()],
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Withdraw the task; nothing may follow."""
    task_cmd(c.CancelTask, task_id, actor, at, command_id, as_json, reason=reason)


@task_app.command("finding")
@guarded
def task_finding(
    task_id: TaskId,
    kind: Annotated[str, typer.Option(help="violation|delay|data_error")],
    description: str | None = None,
    actor: ActorOpt = None,
    at: AtOpt = None,
    command_id: CmdIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Raise an inspection finding (Art. 11)."""
    task_cmd(c.RaiseFinding, task_id, actor, at, command_id, as_json, kind=kind, description=description)


CLOCK_FIELDS = (
    "receipt_due_at",
    "objection_due_at",
    "objection_handling_due_at",
    "next_periodic_update_due_at",
    "result_report_due_at",
    "deadline_at",
    "registration_due_at",
)


@task_app.command("show")
@guarded
def task_show(
    task_id: TaskId,
    as_of: Annotated[str | None, typer.Option("--as-of")] = None,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A task's state, derived status and every clock (as of an instant, by business time)."""
    ledger = _ledger()
    view = ledger.task_view(uuid_of(task_id, "task_id"), instant(as_of, "as_of"))
    check_clearance(ledger, actor, view["confidentiality"], f"task {view['task_id']}")
    table = Table("field", "value", show_header=False)
    for key in (
        "task_id",
        "status",
        "lifecycle",
        "assignee",
        "monitor",
        "priority",
        "deadline",
        "percent",
        "version",
        "as_of",
    ):
        table.add_row(key, str(view[key]))
    for key in CLOCK_FIELDS:
        table.add_row(key, str(view["clocks"][key] or "—"))
    for cp in view["clocks"]["checkpoints"]:
        table.add_row("checkpoint", f"{cp['at']} → due {cp['due_at']}")
    emit(view, as_json, table)


@task_app.command("history")
@guarded
def task_history(task_id: TaskId, actor: ActorOpt = None, as_json: JsonOpt = False) -> None:
    """Every recorded fact of a task: actor, business and recorded time, payload."""
    ledger = _ledger()
    task = ledger.get_task(uuid_of(task_id, "task_id"))
    check_clearance(ledger, actor, task.confidentiality, f"task {task.id}")
    events = ledger.history(task.id)
    table = Table("v", "event", "actor", "occurred_at", "recorded_at")
    for e in events:
        a = e["actor"] or {}
        table.add_row(
            str(e["version"]),
            e["type"],
            f"{a.get('role')}:{a.get('agency')}:{a.get('user')}",
            e["occurred_at"],
            e["recorded_at"],
        )
    emit(events, as_json, table)


@task_app.command("list")
@guarded
def task_list(
    assignee: str | None = None,
    status: str | None = None,
    directive: Annotated[str | None, typer.Option(help="id or symbol")] = None,
    limit: Annotated[int, typer.Option(help="rows shown in the human table")] = 50,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List tasks with their derived status (filters: assignee, status, directive)."""
    ledger = _ledger()
    rows = within_clearance(ledger, actor, ledger.list_tasks(), "tasks")
    if assignee:
        rows = [r for r in rows if r["assignee"] == assignee]
    if status:
        rows = [r for r in rows if r["status"] == status]
    if directive:
        wanted = str(directive_ref(directive))
        rows = [r for r in rows if r["directive_id"] == wanted]
    if as_json:
        emit(rows, True)
        return
    table = Table("task_id", "directive", "assignee", "status", "%", "deadline", "next due", title=f"{len(rows)} tasks")
    for r in rows[:limit]:
        clocks = r["clocks"]
        nxt = clocks["next_periodic_update_due_at"] or clocks["deadline_at"] or ""
        table.add_row(
            r["task_id"],
            r["directive_symbol"] or "",
            r["assignee"],
            r["status"],
            str(r["percent"]),
            r["deadline"] or "—",
            nxt[:16],
        )
    out.print(table)
    if len(rows) > limit:
        out.print(f"… {len(rows) - limit} more (--limit, or --json for all)")


# -- calendar, stats, demo ----------------------------------------------------------------
@calendar_app.command("show")
@guarded
def calendar_show(year: int | None = None, as_json: JsonOpt = False) -> None:
    """The calendar versions in force and their days off / make-up working days."""
    history = _ledger().calendars
    y = year or date.today().year
    data = [
        {
            "version": v.version,
            "recorded_at": v.recorded_at.isoformat(),
            "days_off": sorted(d.isoformat() for d in v.days_off if d.year == y),
            "working_days": sorted(d.isoformat() for d in v.working_days if d.year == y),
        }
        for v in history.versions
    ]
    emit(data, as_json)


@calendar_app.command("change")
@guarded
def calendar_change(
    reason: Annotated[str, typer.Option()],
    add_day_off: Annotated[list[str] | None, typer.Option()] = None,
    remove_day_off: Annotated[list[str] | None, typer.Option()] = None,
    add_working_day: Annotated[list[str] | None, typer.Option()] = None,
    remove_working_day: Annotated[list[str] | None, typer.Option()] = None,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a calendar change (a new version); clocks already started keep their version."""
    command = c.ChangeCalendar.build(
        add_days_off=add_day_off or [],
        remove_days_off=remove_day_off or [],
        add_working_days=add_working_day or [],
        remove_working_days=remove_working_day or [],
        reason=reason,
    )
    result = _ledger().change_calendar(actor_of(actor), command).to_dict()
    emit(result, as_json, f"calendar version {result['version']} recorded")


@app.command("stats")
@guarded
def stats(as_json: JsonOpt = False) -> None:
    """Counts of directives, tasks and stored events."""
    from connectors.eventstore import count_events

    counts = count_events(_ledger())
    table = Table("what", "count")
    for k, v in counts.items():
        table.add_row(k, str(v))
    emit(counts, as_json, table)


@app.command("demo")
@guarded
def demo(
    tasks: Annotated[int, typer.Option(help="number of tasks")] = 240,
    seed: Annotated[int, typer.Option(help="random seed")] = 8,
    as_json: JsonOpt = False,
) -> None:
    """Load a realistic year of directives and tasks through the same commands (idempotent)."""
    from connectors.demo import load_demo

    summary = load_demo(_ledger(), _settings(), tasks=tasks, seed=seed, progress=not as_json)
    emit(summary, as_json, "demo loaded: " + ", ".join(f"{k}={v}" for k, v in summary.items()))


@projections_app.command("migrate")
@guarded
def projections_migrate(as_json: JsonOpt = False) -> None:
    """Apply the missing ClickHouse migrations (idempotent)."""
    from contextlib import closing

    from connectors.clickhouse import clickhouse_url, connect, migrate, parse_url

    url = clickhouse_url(_settings())
    with closing(connect(url)) as client:
        applied = migrate(client)
    where = parse_url(url).redacted
    human = f"{where}: " + (f"applied {', '.join(applied)}" if applied else "up to date")
    emit({"url": where, "applied": applied}, as_json, human)


@projections_app.command("rebuild")
@guarded
def projections_rebuild(as_json: JsonOpt = False) -> None:
    """Rebuild task_events, task_status and task_alerts from the event store (fresh copies, then swapped in)."""
    from contextlib import closing

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from connectors.clickhouse import clickhouse_url, connect, migrate, parse_url
    from connectors.rebuild import rebuild

    settings = _settings()
    url, policy = clickhouse_url(settings), settings.alert_policy()
    ledger = _ledger()
    try:
        with closing(connect(url)) as client:
            migrate(client)
            if as_json:
                result = rebuild(ledger, client, policy=policy)
            else:
                columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn())
                with Progress(*columns, TimeElapsedColumn(), transient=True) as bar:
                    job = bar.add_task("rebuilding", total=None)
                    result = rebuild(
                        ledger,
                        client,
                        progress=lambda done, total: bar.update(job, completed=done, total=total),
                        policy=policy,
                    )
    finally:
        ledger.close()
    result["url"] = parse_url(url).redacted
    t = result["tables"]
    human = (
        f"{result['url']}: task_events {t['task_events']}, task_status {t['task_status']}, "
        f"task_alerts {t['task_alerts']} in {result['seconds']} s ({result['rows_per_s']} rows/s)"
    )
    emit(result, as_json, human)


@app.command("sql")
@guarded
def sql(
    statement: Annotated[str, typer.Argument(help="one SELECT / WITH / SHOW / DESCRIBE / EXPLAIN")],
    as_json: JsonOpt = False,
) -> None:
    """Run one read-only statement against the analytical store (ClickHouse). While a worker (`taskledger up`)
    owns the chdb directory, the statement goes through its read-only endpoint."""
    from contextlib import closing

    from connectors.sql import as_objects, check_read_only, connect_reader, jsonable, run_sql

    check_read_only(statement)  # refuse before opening the store
    with closing(connect_reader(_settings())) as client:
        columns, rows = run_sql(client, statement)
    if as_json:
        print(json.dumps(as_objects(columns, rows), ensure_ascii=False))
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(jsonable(v)) for v in row))
    out.print(table)


# -- broker, relay, subscribe ---------------------------------------------------------------
@app.command("broker")
def broker(port: Annotated[int | None, typer.Option(help="default TASKLEDGER_BROKER_PORT (9092)")] = None) -> None:
    """Run the dev Kafka-API broker (tansu, in memory) on 127.0.0.1 until Ctrl-C."""
    from connectors.broker import run_foreground

    settings = _settings()
    if settings.kafka_bootstrap:
        err_line = f"TASKLEDGER_KAFKA_BOOTSTRAP={settings.kafka_bootstrap} is set: use that broker, not the dev one"
        print(err_line, file=sys.stderr)
        raise typer.Exit(2)
    raise typer.Exit(run_foreground(port or settings.broker_port, log_path=settings.home / "broker.log"))


@app.command("relay")
@guarded
def relay(
    until_caught_up: Annotated[bool, typer.Option(help="publish everything stored so far, then exit 0")] = False,
    batch: Annotated[int, typer.Option(help="events per acknowledged batch")] = 2000,
    as_json: JsonOpt = False,
) -> None:
    """Publish the event store to Kafka (taskledger.events.v1), following new events; resumes after a crash."""
    import logging
    import signal
    import time as _t

    from connectors.logs import configure
    from connectors.relay import Relay

    configure(logging.INFO if not as_json else logging.WARNING)
    settings = _settings()
    relay_ = Relay(_ledger(), settings.bootstrap, partitions=settings.events_partitions, batch=batch)
    signal.signal(signal.SIGTERM, lambda *_: relay_.stop())
    last = [0.0]

    def report(stats) -> None:  # type: ignore[no-untyped-def]
        if as_json or _t.monotonic() - last[0] < 2:
            return
        last[0] = _t.monotonic()
        print(
            f"relay: position {stats.position} / head {stats.head}, lag {stats.lag} events, "
            f"{stats.rate():,.0f} events/s, published {stats.published}",
            file=sys.stderr,
            flush=True,
        )

    import gc

    gc.freeze()  # keep the ~140k start-up objects out of every later collection (measured +3-35 %)
    try:
        stats = relay_.run(until_caught_up=until_caught_up, on_progress=report)
    except KeyboardInterrupt:
        stats = relay_.stats
    finally:
        relay_.close()
    emit(stats.to_dict(), as_json, "relay: " + ", ".join(f"{k}={v}" for k, v in stats.to_dict().items()))


@app.command("worker")
def worker() -> None:
    """Run the Faust stream worker: events topic -> task status, time-driven alerts, ClickHouse tables.
    It owns the chdb directory while it runs (one process per directory)."""
    from streams.run import run_worker

    raise typer.Exit(run_worker(_settings()))


@app.command("subscribe")
@guarded
def subscribe(
    group: Annotated[str | None, typer.Option(help="consumer group (offsets committed)")] = None,
    from_beginning: Annotated[bool, typer.Option("--from-beginning")] = False,
    type_: Annotated[list[str] | None, typer.Option("--type", help="event type to keep (repeatable)")] = None,
    max_messages: Annotated[int | None, typer.Option("--max", help="stop after N events")] = None,
    idle_timeout: Annotated[float | None, typer.Option(help="stop after S seconds without events")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print task events from Kafka as they arrive (one JSON object per line with --json)."""
    from connectors.kafka import subscribe as run_subscriber

    count = run_subscriber(
        _settings().bootstrap,
        group=group,
        from_beginning=from_beginning,
        types=type_ or [],
        as_json=as_json,
        max_messages=max_messages,
        idle_timeout_s=idle_timeout,
    )
    if not as_json:
        print(f"{count} events", file=sys.stderr)


@app.command("up")
@guarded
def up(
    until_caught_up: Annotated[
        bool,
        typer.Option(
            help="stop once everything stored is on the topic and (with the worker) projected into ClickHouse"
        ),
    ] = False,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="run the stream worker (ClickHouse, status, alerts)")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Run the stack on embedded defaults: dev broker (unless one is configured), relay and stream worker
    (which serves `taskledger sql` while it owns the chdb store). Ctrl-C stops."""
    from connectors.stack import up as run_stack

    summary = run_stack(_settings(), until_caught_up=until_caught_up, worker=worker)
    emit(summary, as_json, "stack stopped: " + ", ".join(f"{k}={v}" for k, v in summary.items()))


from connectors.audit_cli import audit_app, register_commands  # noqa: E402  (modules import the helpers above)

register_commands()
app.add_typer(audit_app, name="audit")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
