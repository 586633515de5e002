"""The TaskLedger application: use cases over the event store (get, command, save atomically, return).

Persistence comes from the eventsourcing environment (PERSISTENCE_MODULE, SQLITE_DBNAME, POSTGRES_*,
CIPHER_*); the connectors build that environment from settings. The current instant is injected."""

from __future__ import annotations

import threading
import time as _time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from domain import commands as c
from domain import views
from domain.actors import Actor, Role
from domain.calendar import CALENDAR_ID, CalendarHistory, WorkingCalendar, WorkingHours, vietnam_base
from domain.directive import Directive
from domain.errors import (
    ConfidentialityViolation,
    Conflict,
    DomainError,
    InvariantViolation,
    NotFound,
    SignatureInvalid,
)
from domain.events import Context, directive_id_for, task_id_for
from domain.signatures import verify_bundle
from domain.task import Task
from domain.values import Confidentiality, Priority, ScopeKind, UpdateEvery

SYSTEM = Actor(Role.SYSTEM, "taskledger", "system")
BASE_YEARS = (2015, 2045)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command did: the aggregate it touched, its version after, the event, and whether
    this was a retry of an already-executed command (then nothing was appended)."""

    aggregate_id: UUID
    version: int
    event: str
    duplicate: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "aggregate_id": str(self.aggregate_id),
            "version": self.version,
            "event": self.event,
            "duplicate": self.duplicate,
            **self.extra,
        }


class BatchRefused(DomainError):
    """One command of a batch was refused; nothing of the batch was written."""

    def __init__(self, index: int, error: DomainError) -> None:
        super().__init__(error.field, f"command {index + 1} of the batch: {error.rule}; nothing was written")
        self.kind = error.kind
        self.index = index
        self.cause = error


# Event class name each task command records: a reused command_id must name the same command.
TASK_EVENTS: dict[type[c.TaskCommand], str] = {
    c.ReceiveTask: "Received",
    c.ObjectTask: "Objected",
    c.ResolveObjection: "ObjectionResolved",
    c.TransferTask: "Transferred",
    c.AdjustTask: "Adjusted",
    c.ReportProgress: "ProgressReported",
    c.ApproveProgress: "ProgressApproved",
    c.ReturnProgress: "ProgressReturned",
    c.UrgeTask: "Urged",
    c.ReportDifficulty: "DifficultyReported",
    c.ExtendDeadline: "DeadlineExtended",
    c.ExplainDelay: "DelayExplained",
    c.CompleteTask: "Completed",
    c.EvaluateTask: "Evaluated",
    c.CancelTask: "Cancelled",
    c.RaiseFinding: "FindingRaised",
}


TASK_HANDLERS: dict[type[c.TaskCommand], Callable[[Task, Context, Any], Any]] = {
    c.ReceiveTask: lambda t, ctx, cmd: t.receive(ctx),
    c.ObjectTask: lambda t, ctx, cmd: t.object(ctx, reason=cmd.reason),
    c.ResolveObjection: lambda t, ctx, cmd: t.resolve_objection(
        ctx, accept=cmd.accept, transfer_to=cmd.transfer_to, changes=cmd.changes.given(), reason=cmd.reason
    ),
    c.TransferTask: lambda t, ctx, cmd: t.transfer(ctx, to=cmd.to, reason=cmd.reason),
    c.AdjustTask: lambda t, ctx, cmd: t.adjust(ctx, changes=cmd.changes.given(), reason=cmd.reason),
    c.ReportProgress: lambda t, ctx, cmd: t.report_progress(
        ctx, percent=cmd.percent, note=cmd.note, products=cmd.products, reason=cmd.reason
    ),
    c.ApproveProgress: lambda t, ctx, cmd: t.approve_progress(ctx, report_no=cmd.report_no),
    c.ReturnProgress: lambda t, ctx, cmd: t.return_progress(ctx, reason=cmd.reason, report_no=cmd.report_no),
    c.UrgeTask: lambda t, ctx, cmd: t.urge(ctx, message=cmd.message),
    c.ReportDifficulty: lambda t, ctx, cmd: t.report_difficulty(ctx, causes=cmd.causes, proposals=cmd.proposals),
    c.ExtendDeadline: lambda t, ctx, cmd: t.extend_deadline(
        ctx, deadline=cmd.deadline, reason=cmd.reason, authority=cmd.authority
    ),
    c.ExplainDelay: lambda t, ctx, cmd: t.explain_delay(ctx, explanation=cmd.explanation),
    c.CompleteTask: lambda t, ctx, cmd: t.complete(ctx, result=cmd.result, products=cmd.products),
    c.EvaluateTask: lambda t, ctx, cmd: t.evaluate(ctx, grade=cmd.grade, comment=cmd.comment),
    c.CancelTask: lambda t, ctx, cmd: t.cancel(ctx, reason=cmd.reason),
    c.RaiseFinding: lambda t, ctx, cmd: t.raise_finding(ctx, kind=cmd.kind, description=cmd.description),
}


class UnitOfWork:
    """Aggregates loaded and changed by one or more commands, saved together atomically."""

    def __init__(self, app: TaskLedger, optimistic: bool = True) -> None:
        self.app = app
        self.loaded: dict[UUID, Aggregate] = {}
        # Optimistic: a new deterministic id (from a command id) is assumed not to exist yet; if it
        # does, the save fails on the store's unique (id, version) key and the work is redone with
        # look-ups, which then return the first result.
        self.optimistic = optimistic

    def created_before(self, aggregate_id: UUID) -> Aggregate | None:
        if self.optimistic and aggregate_id not in self.loaded:
            return None
        return self.find(aggregate_id)

    def get(self, aggregate_id: UUID, kind: type[Aggregate], what: str) -> Any:
        found = self.find(aggregate_id)
        if found is None or not isinstance(found, kind):
            raise NotFound(what, f"no {kind.__name__.lower()} with id {aggregate_id}")
        return found

    def find(self, aggregate_id: UUID) -> Aggregate | None:
        if aggregate_id not in self.loaded:
            try:
                self.loaded[aggregate_id] = self.app.repository.get(aggregate_id)
            except AggregateNotFoundError:
                return None
        return self.loaded[aggregate_id]

    def add(self, aggregate: Aggregate) -> None:
        self.loaded[aggregate.id] = aggregate

    def pending(self) -> list[Aggregate]:
        return [a for a in self.loaded.values() if a.pending_events]


class TaskLedger(Application[UUID]):
    """Use cases of SPEC sections 1-6 on Directive and Task aggregates."""

    name = "taskledger"
    # Writes go through a cache without a fast-forward SELECT: a stale aggregate (another process
    # wrote) fails on save with a version conflict, is evicted and the command retried. Reads
    # (views, calendar) always fold fresh from the store.
    env = {
        "AGGREGATE_CACHE_MAXSIZE": "10000",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "y",
        "AGGREGATE_CACHE_FASTFORWARD": "n",
    }

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        trusted_roots: Sequence[Any] = (),
        calendar_overrides: dict[str, list[date]] | None = None,
        calendar_refresh_seconds: float = 1.0,
    ) -> None:
        super().__init__(env)
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.trusted_roots = tuple(trusted_roots)
        self.encrypted_at_rest = bool(self.env.get("CIPHER_KEY"))
        self._calendar_refresh = calendar_refresh_seconds
        self._calendars: CalendarHistory | None = None
        self._calendar_read_at = 0.0
        self._lock = threading.RLock()
        self._ensure_calendar(calendar_overrides or {})

    # -- calendar ---------------------------------------------------------------------------
    def _ensure_calendar(self, overrides: dict[str, list[date]]) -> None:
        """Establish the recorded calendar on first use; record override-file entries not yet in it."""
        try:
            cal: WorkingCalendar = self.repository.get(CALENDAR_ID)
        except AggregateNotFoundError:
            days_off, working = vietnam_base(*BASE_YEARS)
            import holidays

            cal = WorkingCalendar.establish(
                hours=WorkingHours(),
                days_off=days_off,
                working_days=working,
                first_year=BASE_YEARS[0],
                last_year=BASE_YEARS[1],
                source=f"holidays {holidays.__version__} (VN)",
                actor=SYSTEM.to_dict(),
                recorded_at=self.clock(),
            )
        current = cal.history.current
        add_off = sorted(set(overrides.get("days_off", [])) - current.days_off)
        add_work = sorted(set(overrides.get("working_days", [])) - current.working_days)
        if add_off or add_work:
            cal.change(
                add_days_off=add_off,
                add_working_days=add_work,
                reason="calendar override file",
                actor=SYSTEM.to_dict(),
                recorded_at=self.clock(),
            )
        if cal.pending_events:
            try:
                self.save(cal)
            except IntegrityError:  # another process established it at the same moment
                pass
        self._calendars = None

    @property
    def calendars(self) -> CalendarHistory:
        """The recorded calendar history, re-read at most every ``calendar_refresh_seconds``."""
        now = _time.monotonic()
        if self._calendars is None or now - self._calendar_read_at > self._calendar_refresh:
            cal = self._fold(CALENDAR_ID)
            assert isinstance(cal, WorkingCalendar)
            self._calendars = cal.history
            self._calendar_read_at = now
        return self._calendars

    def change_calendar(self, actor: Actor, cmd: c.ChangeCalendar) -> CommandResult:
        if actor.role is not Role.CENTRAL_OFFICE:
            from domain.errors import NotAuthorized

            raise NotAuthorized("actor.role", "only central_office may change the working calendar")
        cal = self._fold(CALENDAR_ID)
        assert isinstance(cal, WorkingCalendar)
        if cmd.command_id and cmd.command_id in cal.commands:
            return CommandResult(cal.id, cal.commands[cmd.command_id], "Changed", duplicate=True)
        cal.change(
            command_id=cmd.command_id,
            add_days_off=cmd.add_days_off,
            remove_days_off=cmd.remove_days_off,
            add_working_days=cmd.add_working_days,
            remove_working_days=cmd.remove_working_days,
            reason=cmd.reason,
            actor=actor.to_dict(),
            recorded_at=self.clock(),
        )
        self.save(cal)
        self._calendars = None
        return CommandResult(cal.id, cal.version, "Changed")

    # -- commands ---------------------------------------------------------------------------
    def execute(self, actor: Actor, command: c.Command) -> CommandResult:
        """Run one command atomically. On a version conflict (another writer, or a retry of a
        creating command) the command is redone with fresh look-ups: a retry with the same
        command_id then finds the first result."""
        return self.execute_batch([(actor, command)], wrap_errors=False)[0]

    def execute_batch(
        self, items: Iterable[tuple[Actor, c.Command]], *, wrap_errors: bool = True
    ) -> list[CommandResult]:
        """Run many commands in one unit of work and one atomic save (the bulk/import path).
        Any refusal refuses the whole batch: nothing is written."""
        commands = list(items)
        for attempt in range(3):
            uow = UnitOfWork(self, optimistic=attempt == 0)
            try:
                results = self._run(uow, commands, wrap_errors)
            except DomainError:
                self._evict(uow)
                if uow.optimistic:
                    continue  # decide on fresh, looked-up state before refusing
                raise
            try:
                self.save(*uow.pending())
                return results
            except IntegrityError:
                self._evict(uow)
        raise Conflict("version", "the aggregates changed concurrently; retry the command") from None

    def _run(self, uow: UnitOfWork, commands: list[tuple[Actor, c.Command]], wrap: bool) -> list[CommandResult]:
        results = []
        for index, (actor, command) in enumerate(commands):
            try:
                results.append(self._handle(uow, actor, command))
            except DomainError as error:
                if not wrap or uow.optimistic:
                    raise
                raise BatchRefused(index, error) from error
        return results

    def _evict(self, uow: UnitOfWork) -> None:
        cache = self.repository.cache
        if cache is not None:
            for aggregate_id in uow.loaded:
                try:
                    cache.get(aggregate_id, evict=True)
                except KeyError:
                    pass

    def _context(self, actor: Actor, command: c.Command) -> Context:
        return Context.create(actor, self.clock(), self.calendars, command.occurred_at, command.command_id)

    def _handle(self, uow: UnitOfWork, actor: Actor, command: c.Command) -> CommandResult:
        if isinstance(command, c.TaskCommand):
            return self._task_command(uow, actor, command)
        handler = self._handlers.get(type(command))
        if handler is None:
            raise TypeError(f"unknown command {type(command).__name__}")
        return handler(self, uow, actor, command)

    @staticmethod
    def _replayed(aggregate: Aggregate, command_id: str | None, expected: str) -> CommandResult | None:
        """A command id already recorded on this aggregate: return the first result, append nothing."""
        if command_id is None or command_id not in aggregate.commands:  # type: ignore[attr-defined]
            return None
        recorded, version = aggregate.commands[command_id]  # type: ignore[attr-defined]
        if recorded != expected:
            raise Conflict(
                "command_id", f"{command_id} was already used for {recorded}; a retry must repeat the same command"
            )
        extra = {}
        if recorded == "ProgressReported":
            extra["report_no"] = next(r["no"] for r in aggregate.reports if r["version"] == version)  # type: ignore[attr-defined]
        return CommandResult(aggregate.id, version, recorded, duplicate=True, extra=extra)

    def _require_storable(self, level: Confidentiality) -> None:
        if level is Confidentiality.ABSOLUTE_SECRET:
            raise ConfidentialityViolation(
                "confidentiality",
                "absolute_secret (Tuyệt mật) may not be held by this system at all (SPEC 6); nothing was written",
            )
        if level.is_classified and not self.encrypted_at_rest:
            raise ConfidentialityViolation(
                "confidentiality",
                f"{level.value} records are accepted only with encryption at rest; set TASKLEDGER_CIPHER_KEY",
            )

    def _register_directive(self, uow: UnitOfWork, actor: Actor, cmd: c.RegisterDirective) -> CommandResult:
        self._require_storable(cmd.confidentiality)
        existing = uow.find(directive_id_for(cmd.symbol))
        if existing is not None:
            replay = self._replayed(existing, cmd.command_id, "Registered")
            if replay:
                return replay
            raise Conflict("symbol", f"directive {cmd.symbol} is already registered")
        ctx = self._context(actor, cmd)
        signature = self._verified_signature(cmd, ctx)
        directive = Directive.register(
            ctx,
            symbol=cmd.symbol,
            number=cmd.number or cmd.symbol.split("-")[0],
            title=cmd.title,
            summary=cmd.summary,
            issued_on=cmd.issued_on,
            signer=cmd.signer,
            issuing_body=cmd.issuing_body,
            presenting_body=cmd.presenting_body,
            confidentiality=cmd.confidentiality,
            document_sha256=cmd.document_sha256,
            signature=signature,
        )
        uow.add(directive)
        return CommandResult(directive.id, directive.version, "Registered")

    def _verified_signature(self, cmd: c.RegisterDirective, ctx: Context) -> dict[str, Any] | None:
        """Regular directives need a valid signature over the document's SHA-256 (Art. 5.1)."""
        required = cmd.confidentiality is Confidentiality.REGULAR
        if cmd.signature is None:
            if required:
                raise SignatureInvalid(
                    "signature", "a regular directive must carry a digital signature over its document"
                )
            return None
        if cmd.document_sha256 is None:
            raise SignatureInvalid("document", "the signed document (its SHA-256) is required to verify the signature")
        signer = verify_bundle(cmd.document_sha256, cmd.signature, self.trusted_roots, ctx.recorded_at)
        return {"bundle": cmd.signature, "signer": signer.to_dict(), "verified_at": ctx.recorded_at.isoformat()}

    def _change_directive(
        self, uow: UnitOfWork, actor: Actor, cmd: c.AmendDirective | c.WithdrawDirective
    ) -> CommandResult:
        directive: Directive = uow.get(cmd.directive_id, Directive, "directive_id")
        expected = "Amended" if isinstance(cmd, c.AmendDirective) else "Withdrawn"
        replay = self._replayed(directive, cmd.command_id, expected)
        if replay:
            return replay
        ctx = self._context(actor, cmd)
        if isinstance(cmd, c.AmendDirective):
            directive.amend(ctx, changes=cmd.changes.model_dump(exclude_none=True), reason=cmd.reason)
        else:
            directive.withdraw(ctx, reason=cmd.reason)
        return CommandResult(directive.id, directive.version, expected)

    def _new_task_id(self, command_id: str | None) -> UUID:
        return task_id_for(command_id) if command_id else uuid.uuid4()

    def _assign(self, uow: UnitOfWork, actor: Actor, cmd: c.AssignTask) -> CommandResult:
        task_id = self._new_task_id(cmd.command_id)
        existing = uow.created_before(task_id) if cmd.command_id else None
        if existing is not None:
            return self._replayed(existing, cmd.command_id, "Assigned") or CommandResult(task_id, 1, "Assigned", True)
        directive: Directive = uow.get(cmd.directive_id, Directive, "directive_id")
        self._require_storable(directive.level)
        if directive.withdrawn_at is not None:
            raise InvariantViolation("directive_id", f"directive {directive.symbol} was withdrawn; no new tasks")
        ctx = self._context(actor, cmd)
        task = Task.assign(
            ctx,
            task_id=task_id,
            directive_id=directive.id,
            confidentiality=directive.level,
            content=cmd.content,
            assigning_body=cmd.assigning_body or directive.issuing_body,
            assignee=cmd.assignee,
            assignee_kind=cmd.assignee_kind,
            monitor=cmd.monitor,
            deadline=cmd.deadline,
            scope=cmd.scope,
            scope_name=cmd.scope_name,
            priority=cmd.priority,
            update_every=cmd.update_every,
            ad_hoc=cmd.ad_hoc,
        )
        uow.add(task)
        return CommandResult(task.id, task.version, "Assigned")

    def _assign_subtask(self, uow: UnitOfWork, actor: Actor, cmd: c.AssignSubtask) -> CommandResult:
        """Art. 6.2.c / 8.2: the assignee passes part of its task to a subordinate unit."""
        task_id = self._new_task_id(cmd.command_id)
        existing = uow.created_before(task_id) if cmd.command_id else None
        if existing is not None:
            return self._replayed(existing, cmd.command_id, "Assigned") or CommandResult(task_id, 1, "Assigned", True)
        parent: Task = uow.get(cmd.parent_id, Task, "parent_id")
        ctx = self._context(actor, cmd)
        if cmd.deadline is not None and parent.deadline is not None and cmd.deadline.isoformat() > parent.deadline:
            raise InvariantViolation("deadline", f"a subtask may not end after its parent's deadline {parent.deadline}")
        if cmd.assignee == parent.assignee:
            raise InvariantViolation("assignee", "a subtask goes to a subordinate unit, not to the parent's assignee")
        child = Task.assign(
            ctx,
            task_id=task_id,
            directive_id=parent.directive_id,
            confidentiality=parent.level,
            content=cmd.content,
            assigning_body=parent.assignee,
            assignee=cmd.assignee,
            assignee_kind=cmd.assignee_kind,
            monitor=parent.assignee,
            deadline=cmd.deadline or (date.fromisoformat(parent.deadline) if parent.deadline else None),
            scope=ScopeKind(parent.scope),
            scope_name=parent.scope_name,
            priority=cmd.priority or Priority(parent.priority),
            update_every=cmd.update_every or UpdateEvery(parent.update_every),
            parent=parent,
        )
        parent.assign_subtask(ctx, child)
        uow.add(child)
        return CommandResult(child.id, child.version, "Assigned", extra={"parent_version": parent.version})

    def _task_command(self, uow: UnitOfWork, actor: Actor, cmd: c.TaskCommand) -> CommandResult:
        task: Task = uow.get(cmd.task_id, Task, "task_id")
        expected = TASK_EVENTS[type(cmd)]
        replay = self._replayed(task, cmd.command_id, expected)
        if replay:
            return replay
        ctx = self._context(actor, cmd)
        outcome = TASK_HANDLERS[type(cmd)](task, ctx, cmd)
        extra = {"report_no": outcome} if isinstance(cmd, c.ReportProgress) else {}
        return CommandResult(task.id, task.version, expected, extra=extra)

    _handlers: dict[type[c.Command], Callable[..., CommandResult]] = {
        c.RegisterDirective: _register_directive,
        c.AmendDirective: _change_directive,
        c.WithdrawDirective: _change_directive,
        c.AssignTask: _assign,
        c.AssignSubtask: _assign_subtask,
    }

    # -- queries ----------------------------------------------------------------------------
    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.calendars.current.hours.tz)

    def get_task(self, task_id: UUID) -> Task:
        return self._get(task_id, Task, "task_id")

    def get_directive(self, directive_id: UUID) -> Directive:
        return self._get(directive_id, Directive, "directive_id")

    def _fold(self, aggregate_id: UUID) -> Aggregate | None:
        """The aggregate from its stored events, bypassing the write cache (always fresh)."""
        aggregate = None
        for event in self.events.get(aggregate_id):
            aggregate = event.mutate(aggregate)
        return aggregate

    def _get(self, aggregate_id: UUID, kind: type[Aggregate], what: str) -> Any:
        found = self._fold(aggregate_id)
        if not isinstance(found, kind):
            raise NotFound(what, f"no {kind.__name__.lower()} with id {aggregate_id}")
        return found

    def as_of(self, aggregate_id: UUID, at: datetime, basis: str = "occurred") -> Aggregate:
        """The aggregate folded from its facts up to ``at``: by business time ('occurred': what had
        happened by then) or by recorded time ('recorded': what the system showed then)."""
        aggregate = None
        for event in self.events.get(aggregate_id):
            instant = event.timestamp if basis == "recorded" else getattr(event, "occurred_at", event.timestamp)
            if instant > at:
                break
            aggregate = event.mutate(aggregate)
        if aggregate is None:
            raise NotFound("as_of", f"{aggregate_id} did not exist yet at {at.isoformat()}")
        return aggregate

    def task_view(self, task_id: UUID, as_of: datetime | None = None, basis: str = "occurred") -> dict[str, Any]:
        now = self.clock()
        task = self.get_task(task_id) if as_of is None else self.as_of(task_id, as_of, basis)
        if not isinstance(task, Task):
            raise NotFound("task_id", f"no task with id {task_id}")
        directive = self._optional_directive(task.directive_id)
        subtasks = [self.get_task(s) if as_of is None else self.as_of(s, as_of, basis) for s in task.subtasks]
        return views.task_view(task, directive, self.calendars, as_of or now, subtasks)

    def _optional_directive(self, directive_id: UUID) -> Directive | None:
        try:
            return self.get_directive(directive_id)
        except NotFound:
            return None

    def history(self, aggregate_id: UUID) -> list[dict[str, Any]]:
        events = list(self.events.get(aggregate_id))
        if not events:
            raise NotFound("id", f"nothing recorded for {aggregate_id}")
        return [views.event_view(e, self.tz) for e in events]

    def all_aggregates(self, batch: int = 1000) -> Iterator[Aggregate]:
        """Every aggregate, folded from one pass over the notification log (in recorded order)."""
        folded: dict[UUID, Aggregate] = {}
        for event in self.all_events(batch):
            folded[event.originator_id] = event.mutate(folded.get(event.originator_id))
        yield from folded.values()

    def all_events(self, batch: int = 1000) -> Iterator[Aggregate.Event]:
        start = 1
        while True:
            notifications = self.recorder.select_notifications(start=start, limit=batch)
            if not notifications:
                return
            for n in notifications:
                yield self.mapper.to_domain_event(n)
            start = notifications[-1].id + 1

    def list_tasks(self, as_of: datetime | None = None) -> list[dict[str, Any]]:
        now = as_of or self.clock()
        aggregates = list(self.all_aggregates())
        directives = {a.id: a for a in aggregates if isinstance(a, Directive)}
        tasks = [a for a in aggregates if isinstance(a, Task)]
        return [views.task_view(t, directives.get(t.directive_id), self.calendars, now) for t in tasks]

    def list_directives(self) -> list[dict[str, Any]]:
        aggregates = list(self.all_aggregates())
        counts: dict[UUID, int] = {}
        for a in aggregates:
            if isinstance(a, Task):
                counts[a.directive_id] = counts.get(a.directive_id, 0) + 1
        return [
            views.directive_view(a, self.calendars, counts.get(a.id, 0)) for a in aggregates if isinstance(a, Directive)
        ]
