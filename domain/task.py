"""The Task aggregate: one assigned task from assignment to evaluation (SPEC section 2)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain import clocks
from domain.actors import Role
from domain.directive import forbid_content, require_role
from domain.errors import InvariantViolation, NotAuthorized, ValidationError
from domain.events import Chained, CheapCopy, Context, Fact, iso_date
from domain.values import (
    AgencyKind,
    Confidentiality,
    FindingKind,
    Grade,
    Lifecycle,
    Priority,
    ScopeKind,
    UpdateEvery,
)

ADJUSTABLE = ("content", "deadline", "priority", "scope", "scope_name", "monitor", "update_every")


def _required(name: str, value: str | None, why: str) -> str:
    if value is None or not str(value).strip():
        raise ValidationError(name, f"is required {why}")
    return value


class Task(Chained, CheapCopy, Aggregate):
    """A task assigned to an agency, with its whole lifecycle as facts."""

    # -- events ---------------------------------------------------------------------------
    class Assigned(Aggregate.Created):
        actor: dict[str, str]
        occurred_at: datetime
        command_id: str | None
        calendar_version: int
        prev_hash: str
        hash: str
        directive_id: UUID
        parent_id: UUID | None
        confidentiality: str
        content: str | None
        assigning_body: str
        assignee: str
        assignee_kind: str
        monitor: str
        deadline: str | None
        scope: str
        scope_name: str | None
        priority: str
        update_every: str
        ad_hoc: bool

        def apply(self, aggregate: Task) -> None:
            aggregate.init_from(self)

    class SubtaskAssigned(Fact):
        subtask_id: UUID
        assignee: str

        def apply_to(self, t: Task) -> None:
            t.subtasks.append(self.subtask_id)

    class Received(Fact):
        late: bool

        def apply_to(self, t: Task) -> None:
            t.lifecycle = Lifecycle.RECEIVED
            t.receipts[-1]["received_at"] = self.occurred_at
            t.received_at = self.occurred_at
            t.received_calendar_version = self.calendar_version

    class Objected(Fact):
        reason: str
        late: bool

        def apply_to(self, t: Task) -> None:
            t.lifecycle = Lifecycle.OBJECTED
            t.objections.append(
                {
                    "at": self.occurred_at,
                    "calendar_version": self.calendar_version,
                    "reason": self.reason,
                    "late": self.late,
                    "resolved_at": None,
                    "outcome": None,
                }
            )

    class ObjectionResolved(Fact):
        outcome: str
        transfer_to: str | None
        changes: dict[str, Any]
        reason: str | None
        late: bool

        def apply_to(self, t: Task) -> None:
            t.objections[-1]["resolved_at"] = self.occurred_at
            t.objections[-1]["outcome"] = self.outcome
            t.lifecycle = Lifecycle.RECEIVED
            t.apply_changes(self.changes, self.calendar_version)
            if self.transfer_to:
                t.start_receipt(self.transfer_to, self.occurred_at, self.calendar_version)

    class Transferred(Fact):
        to: str
        previous: str
        reason: str

        def apply_to(self, t: Task) -> None:
            t.start_receipt(self.to, self.occurred_at, self.calendar_version)

    class Adjusted(Fact):
        changes: dict[str, Any]
        reason: str

        def apply_to(self, t: Task) -> None:
            t.apply_changes(self.changes, self.calendar_version)

    class ProgressReported(Fact):
        report_no: int
        percent: int
        note: str | None
        products: str | None
        decrease_reason: str | None

        def apply_to(self, t: Task) -> None:
            t.reports.append(
                {
                    "no": self.report_no,
                    "percent": self.percent,
                    "note": self.note,
                    "products": self.products,
                    "reported_at": self.occurred_at,
                    "state": "draft",
                    "decided_at": None,
                    "agency": self.actor["agency"],
                    "user": self.actor["user"],
                    "version": self.originator_version,
                }
            )

    class ProgressApproved(Fact):
        report_no: int

        def apply_to(self, t: Task) -> None:
            report = t.reports[self.report_no - 1]
            report["state"] = "approved"
            report["decided_at"] = self.occurred_at
            t.percent = report["percent"]

    class ProgressReturned(Fact):
        report_no: int
        reason: str

        def apply_to(self, t: Task) -> None:
            report = t.reports[self.report_no - 1]
            report["state"] = "returned"
            report["decided_at"] = self.occurred_at

    class Urged(Fact):
        message: str | None

        def apply_to(self, t: Task) -> None:
            t.urges.append({"at": self.occurred_at, "agency": self.actor["agency"]})

    class DifficultyReported(Fact):
        causes: str | None
        proposals: str | None

        def apply_to(self, t: Task) -> None:
            t.difficulties += 1

    class DeadlineExtended(Fact):
        deadline: str
        previous: str
        reason: str
        authority: str

        def apply_to(self, t: Task) -> None:
            t.extensions.append(
                {"at": self.occurred_at, "from": self.previous, "to": self.deadline, "reason": self.reason}
            )
            t.deadline = self.deadline
            t.deadline_calendar_version = self.calendar_version

    class DelayExplained(Fact):
        explanation: str | None

        def apply_to(self, t: Task) -> None:
            t.explanations += 1

    class Completed(Fact):
        result: str | None
        products: str | None
        late: bool
        late_against_original: bool

        def apply_to(self, t: Task) -> None:
            t.lifecycle = Lifecycle.COMPLETED
            t.completed_at = self.occurred_at
            t.completed_late = self.late
            t.completed_late_against_original = self.late_against_original

    class Evaluated(Fact):
        grade: str
        comment: str | None

        def apply_to(self, t: Task) -> None:
            t.evaluations.append({"at": self.occurred_at, "grade": self.grade, "by": self.actor["role"]})

    class Cancelled(Fact):
        reason: str

        def apply_to(self, t: Task) -> None:
            t.lifecycle = Lifecycle.CANCELLED
            t.cancelled_at = self.occurred_at
            t.cancel_reason = self.reason

    class FindingRaised(Fact):
        kind: str
        description: str | None

        def apply_to(self, t: Task) -> None:
            t.findings.append({"at": self.occurred_at, "kind": self.kind})

    # -- creation -------------------------------------------------------------------------
    @classmethod
    def assign(
        cls,
        ctx: Context,
        *,
        task_id: UUID,
        directive_id: UUID,
        confidentiality: Confidentiality,
        content: str | None,
        assigning_body: str,
        assignee: str,
        assignee_kind: AgencyKind,
        monitor: str,
        deadline: date | None,
        scope: ScopeKind,
        scope_name: str | None,
        priority: Priority,
        update_every: UpdateEvery,
        ad_hoc: bool = False,
        parent: Task | None = None,
    ) -> Task:
        if parent is None:
            require_role(ctx, Role.CENTRAL_OFFICE, what="assign tasks")
        else:
            parent.require_own(ctx, Role.ASSIGNEE, what="assign subtasks")
        forbid_content(confidentiality, content=content)
        if not confidentiality.is_classified:
            _required("content", content, "for a task")
        if assignee == monitor:
            raise ValidationError("monitor", "must be another agency than the assignee")
        if scope is not ScopeKind.NATIONAL and not (scope_name or "").strip():
            raise ValidationError("scope_name", f"is required for a {scope.value} scope (sector or region name)")
        if deadline is not None and deadline < ctx.calendars.current.local(ctx.when).date():
            raise ValidationError("deadline", "may not be before the assignment date")
        return cls._create(
            cls.Assigned,
            id=task_id,
            **ctx.fact_fields(),
            directive_id=directive_id,
            parent_id=parent.id if parent else None,
            confidentiality=confidentiality.value,
            content=content,
            assigning_body=assigning_body,
            assignee=assignee,
            assignee_kind=assignee_kind.value,
            monitor=monitor,
            deadline=iso_date(deadline),
            scope=scope.value,
            scope_name=scope_name,
            priority=priority.value,
            update_every=update_every.value,
            ad_hoc=ad_hoc,
        )

    def init_from(self, e: Assigned) -> None:
        self.commands: dict[str, tuple[str, int]] = {}
        self.last_hash = e.hash
        self.directive_id = e.directive_id
        self.parent_id = e.parent_id
        self.confidentiality = e.confidentiality
        self.content = e.content
        self.assigning_body = e.assigning_body
        self.assignee = e.assignee
        self.assignee_kind = e.assignee_kind
        self.monitor = e.monitor
        self.deadline = e.deadline
        self.original_deadline = e.deadline
        self.deadline_calendar_version = e.calendar_version
        self.scope = e.scope
        self.scope_name = e.scope_name
        self.priority = e.priority
        self.update_every = e.update_every
        self.ad_hoc = e.ad_hoc
        self.assigned_at = e.occurred_at
        self.assigned_calendar_version = e.calendar_version
        self.lifecycle = Lifecycle.AWAITING_RECEIPT
        self.receipts: list[dict[str, Any]] = []
        self.received_at: datetime | None = None
        self.received_calendar_version: int | None = None
        self.objections: list[dict[str, Any]] = []
        self.reports: list[dict[str, Any]] = []
        self.percent = 0
        self.urges: list[dict[str, Any]] = []
        self.difficulties = 0
        self.explanations = 0
        self.extensions: list[dict[str, Any]] = []
        self.completed_at: datetime | None = None
        self.completed_late: bool | None = None
        self.completed_late_against_original: bool | None = None
        self.evaluations: list[dict[str, Any]] = []
        self.cancelled_at: datetime | None = None
        self.cancel_reason: str | None = None
        self.findings: list[dict[str, Any]] = []
        self.subtasks: list[UUID] = []
        self.last_occurred_at = e.occurred_at
        self.start_receipt(e.assignee, e.occurred_at, e.calendar_version)
        if e.command_id:
            self.commands[e.command_id] = ("Assigned", 1)

    def note_fact(self, e: Fact) -> None:
        self.last_occurred_at = e.occurred_at
        if e.command_id:
            self.commands[e.command_id] = (type(e).__name__, e.originator_version)

    def start_receipt(self, agency: str, at: datetime, calendar_version: int) -> None:
        self.assignee = agency
        self.lifecycle = Lifecycle.AWAITING_RECEIPT
        self.received_at = None
        self.received_calendar_version = None
        self.receipts.append(
            {"assignee": agency, "started_at": at, "calendar_version": calendar_version, "received_at": None}
        )
        for report in self.reports:
            if report["state"] == "draft":
                report["state"] = "superseded"

    def apply_changes(self, changes: dict[str, Any], calendar_version: int) -> None:
        for key, value in changes.items():
            setattr(self, key, value)
        if "deadline" in changes:
            self.original_deadline = changes["deadline"]
            self.deadline_calendar_version = calendar_version

    # -- guards ---------------------------------------------------------------------------
    @property
    def level(self) -> Confidentiality:
        return Confidentiality(self.confidentiality)

    @property
    def pending_draft(self) -> dict[str, Any] | None:
        drafts = [r for r in self.reports if r["state"] == "draft"]
        return drafts[-1] if drafts else None

    def require_own(self, ctx: Context, role: Role, *, what: str) -> None:
        """Only the task's own assignee agency (or its approver) may act in that role."""
        if ctx.actor.role is not role:
            raise NotAuthorized("actor.role", f"only {role.value} may {what} (SPEC 1); {ctx.actor.role.value} may not")
        if ctx.actor.agency != self.assignee:
            raise NotAuthorized(
                "actor.agency",
                f"{role.value} {ctx.actor.agency} acts only on tasks of its own agency; "
                f"this task is assigned to {self.assignee}",
            )

    def require_monitor_or_office(self, ctx: Context, *, what: str) -> None:
        if ctx.actor.role is Role.CENTRAL_OFFICE:
            return
        if ctx.actor.role is not Role.MONITOR:
            raise NotAuthorized("actor.role", f"only monitor or central_office may {what} (SPEC 1)")
        if ctx.actor.agency != self.monitor:
            raise NotAuthorized(
                "actor.agency",
                f"monitor {ctx.actor.agency} acts only on tasks it monitors; this task is monitored by {self.monitor}",
            )

    def require_open(self, ctx: Context) -> None:
        if self.cancelled_at is not None:
            raise InvariantViolation(
                "task", f"was cancelled at {self.cancelled_at.isoformat()}; no events follow TaskCancelled"
            )
        if ctx.when < self.last_occurred_at:
            raise InvariantViolation(
                "occurred_at",
                f"is before the task's previous event ({self.last_occurred_at.isoformat()}); "
                "a task's facts are recorded in the order they happened",
            )

    def require_not_completed(self, what: str) -> None:
        if self.completed_at is not None:
            raise InvariantViolation("task", f"is completed; cannot {what}")

    def require_received(self, what: str) -> None:
        if self.lifecycle is Lifecycle.AWAITING_RECEIPT:
            raise InvariantViolation("task", f"has not been received by {self.assignee}; receive it before you {what}")

    def require_no_pending_objection(self, what: str) -> None:
        if self.lifecycle is Lifecycle.OBJECTED:
            raise InvariantViolation("task", f"has an objection awaiting the central office's decision; cannot {what}")

    def _forbid(self, **fields: Any) -> None:
        forbid_content(self.level, **fields)

    # -- commands -------------------------------------------------------------------------
    def assign_subtask(self, ctx: Context, child: Task) -> None:
        self.require_open(ctx)
        self.require_not_completed("assign subtasks")
        self.require_received("assign subtasks")
        self.trigger_event(self.SubtaskAssigned, **ctx.fact_fields(), subtask_id=child.id, assignee=child.assignee)

    def receive(self, ctx: Context) -> None:
        self.require_own(ctx, Role.ASSIGNEE, what="acknowledge receipt")
        self.require_open(ctx)
        if self.lifecycle is not Lifecycle.AWAITING_RECEIPT:
            raise InvariantViolation("task", f"was already received by {self.assignee}")
        due = clocks.receipt_due(self, ctx.calendars)
        self.trigger_event(self.Received, **ctx.fact_fields(), late=ctx.when > due)

    def object(self, ctx: Context, *, reason: str) -> None:
        self.require_own(ctx, Role.ASSIGNEE, what="object to a task")
        self.require_open(ctx)
        self.require_not_completed("object")
        self.require_received("object")
        self.require_no_pending_objection("object again")
        _required("reason", reason, "for an objection (Art. 6.2.a)")
        due = clocks.objection_due(self, ctx.calendars)
        late = due is not None and ctx.when > due
        self.trigger_event(self.Objected, **ctx.fact_fields(), reason=reason, late=late)

    def resolve_objection(
        self,
        ctx: Context,
        *,
        accept: bool,
        transfer_to: str | None,
        changes: dict[str, Any],
        reason: str | None,
    ) -> None:
        require_role(ctx, Role.CENTRAL_OFFICE, what="resolve objections")
        self.require_open(ctx)
        if self.lifecycle is not Lifecycle.OBJECTED:
            raise InvariantViolation("task", "has no objection awaiting a decision")
        if not accept and (transfer_to or changes):
            raise ValidationError("transfer_to", "a dismissed objection leaves the task unchanged")
        if transfer_to is not None and transfer_to in (self.assignee, self.monitor):
            raise ValidationError("transfer_to", f"must be another agency than {transfer_to}, the current one")
        clean = self._checked_changes(ctx, changes) if changes else {}
        if not accept:
            _required("reason", reason, "to dismiss an objection")
        due = clocks.objection_handling_due(self, ctx.calendars)
        self.trigger_event(
            self.ObjectionResolved,
            **ctx.fact_fields(),
            outcome="accepted" if accept else "dismissed",
            transfer_to=transfer_to,
            changes=clean,
            reason=reason,
            late=due is not None and ctx.when > due,
        )

    def transfer(self, ctx: Context, *, to: str, reason: str) -> None:
        require_role(ctx, Role.CENTRAL_OFFICE, what="transfer tasks")
        self.require_open(ctx)
        self.require_not_completed("transfer")
        if to == self.assignee:
            raise ValidationError("to", f"the task is already assigned to {to}")
        if to == self.monitor:
            raise ValidationError("to", "the monitoring agency cannot also be the assignee")
        _required("reason", reason, "to transfer a task")
        self.trigger_event(self.Transferred, **ctx.fact_fields(), to=to, previous=self.assignee, reason=reason)

    def adjust(self, ctx: Context, *, changes: dict[str, Any], reason: str) -> None:
        require_role(ctx, Role.CENTRAL_OFFICE, what="adjust tasks")
        self.require_open(ctx)
        self.require_not_completed("adjust")
        _required("reason", reason, "to adjust a task")
        clean = self._checked_changes(ctx, changes)
        if not clean:
            raise ValidationError("changes", "an adjustment must change at least one field")
        self.trigger_event(self.Adjusted, **ctx.fact_fields(), changes=clean, reason=reason)

    def _checked_changes(self, ctx: Context, changes: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(changes) - set(ADJUSTABLE))
        if unknown:
            raise ValidationError(unknown[0], f"cannot be adjusted; adjustable: {', '.join(ADJUSTABLE)}")
        clean = {k: (iso_date(v) if k == "deadline" else v) for k, v in changes.items() if v is not None}
        clean = {k: v for k, v in clean.items() if getattr(self, k) != v}
        self._forbid(content=clean.get("content"))
        if clean.get("monitor") == self.assignee:
            raise ValidationError("monitor", "must be another agency than the assignee")
        assigned_on = ctx.calendars.current.local(self.assigned_at).date()
        if "deadline" in clean and date.fromisoformat(clean["deadline"]) < assigned_on:
            raise ValidationError("deadline", "may not be before the assignment date")
        scope = clean.get("scope", self.scope)
        if scope != ScopeKind.NATIONAL.value and not clean.get("scope_name", self.scope_name):
            raise ValidationError("scope_name", f"is required for a {scope} scope (sector or region name)")
        return clean

    def report_progress(
        self, ctx: Context, *, percent: int, note: str | None, products: str | None, reason: str | None
    ) -> int:
        self.require_own(ctx, Role.ASSIGNEE, what="report progress")
        self.require_open(ctx)
        self.require_not_completed("report progress")
        self.require_received("report progress")
        self.require_no_pending_objection("report progress")
        self._forbid(note=note, products=products)
        if not 0 <= percent <= 100:
            raise ValidationError("percent", "must be between 0 and 100")
        draft = self.pending_draft
        if draft is not None:
            raise InvariantViolation(
                "report", f"report {draft['no']} is awaiting approval; have it approved or returned first"
            )
        if percent < self.percent and not (reason or "").strip():
            raise InvariantViolation(
                "percent", f"may not fall below the approved {self.percent} % without a reason (--reason)"
            )
        number = len(self.reports) + 1
        self.trigger_event(
            self.ProgressReported,
            **ctx.fact_fields(),
            report_no=number,
            percent=percent,
            note=note,
            products=products,
            decrease_reason=reason if percent < self.percent else None,
        )
        return number

    def _draft_to_decide(self, ctx: Context, report_no: int | None, what: str) -> dict[str, Any]:
        self.require_own(ctx, Role.APPROVER, what=what)
        self.require_open(ctx)
        draft = self.pending_draft
        if draft is None:
            raise InvariantViolation("report", "no progress report is awaiting approval")
        if report_no is not None and report_no != draft["no"]:
            raise InvariantViolation(
                "report_no", f"report {report_no} is not the one awaiting approval ({draft['no']})"
            )
        if ctx.actor.user == draft.get("user"):
            raise NotAuthorized("actor.user", "maker-checker: the drafter may not approve their own report")
        return draft

    def approve_progress(self, ctx: Context, *, report_no: int | None = None) -> None:
        draft = self._draft_to_decide(ctx, report_no, "approve progress reports")
        self.trigger_event(self.ProgressApproved, **ctx.fact_fields(), report_no=draft["no"])

    def return_progress(self, ctx: Context, *, reason: str, report_no: int | None = None) -> None:
        draft = self._draft_to_decide(ctx, report_no, "return progress reports")
        _required("reason", reason, "to return a report")
        self.trigger_event(self.ProgressReturned, **ctx.fact_fields(), report_no=draft["no"], reason=reason)

    def urge(self, ctx: Context, *, message: str | None) -> None:
        self.require_monitor_or_office(ctx, what="urge")
        self.require_open(ctx)
        self.require_not_completed("urge")
        self._forbid(message=message)
        self.trigger_event(self.Urged, **ctx.fact_fields(), message=message)

    def report_difficulty(self, ctx: Context, *, causes: str | None, proposals: str | None) -> None:
        self.require_own(ctx, Role.ASSIGNEE, what="report difficulties")
        self.require_open(ctx)
        self.require_not_completed("report difficulties")
        self.require_received("report difficulties")
        self._forbid(causes=causes, proposals=proposals)
        if not self.level.is_classified:
            _required("causes", causes, "to report a difficulty (Art. 15.2)")
        self.trigger_event(self.DifficultyReported, **ctx.fact_fields(), causes=causes, proposals=proposals)

    def extend_deadline(self, ctx: Context, *, deadline: date, reason: str, authority: str) -> None:
        require_role(ctx, Role.CENTRAL_OFFICE, what="extend deadlines")
        self.require_open(ctx)
        self.require_not_completed("extend the deadline")
        if self.deadline is None:
            raise InvariantViolation("deadline", "the task has no deadline to extend; adjust it instead")
        if deadline <= date.fromisoformat(self.deadline):
            raise ValidationError("deadline", f"an extension must be later than the current deadline {self.deadline}")
        _required("reason", reason, "to extend a deadline")
        _required("authority", authority, "to extend a deadline (who decided it)")
        self.trigger_event(
            self.DeadlineExtended,
            **ctx.fact_fields(),
            deadline=deadline.isoformat(),
            previous=self.deadline,
            reason=reason,
            authority=authority,
        )

    def explain_delay(self, ctx: Context, *, explanation: str | None) -> None:
        self.require_own(ctx, Role.ASSIGNEE, what="explain delays")
        self.require_open(ctx)
        self._forbid(explanation=explanation)
        if not self.level.is_classified:
            _required("explanation", explanation, "to explain a delay (Art. 15.4)")
        self.trigger_event(self.DelayExplained, **ctx.fact_fields(), explanation=explanation)

    def complete(self, ctx: Context, *, result: str | None, products: str | None) -> None:
        self.require_own(ctx, Role.ASSIGNEE, what="report completion")
        self.require_open(ctx)
        self.require_not_completed("complete it again")
        self.require_received("complete it")
        self.require_no_pending_objection("complete it")
        self._forbid(result=result, products=products)
        approved = [r for r in self.reports if r["state"] == "approved"]
        if not approved or approved[-1]["percent"] != 100:
            raise InvariantViolation(
                "report", "completion needs an approved progress report at 100 %; report 100 % and have it approved"
            )
        if self.pending_draft is not None:
            raise InvariantViolation("report", "a progress report is still awaiting approval")
        if not self.level.is_classified:
            _required("result", result, "to report completion (results/products)")
        deadline_at = clocks.deadline_at(self, ctx.calendars)
        original_at = clocks.original_deadline_at(self, ctx.calendars)
        self.trigger_event(
            self.Completed,
            **ctx.fact_fields(),
            result=result,
            products=products,
            late=deadline_at is not None and ctx.when > deadline_at,
            late_against_original=original_at is not None and ctx.when > original_at,
        )

    def evaluate(self, ctx: Context, *, grade: Grade, comment: str | None) -> None:
        self.require_monitor_or_office(ctx, what="evaluate tasks")
        self.require_open(ctx)
        self._forbid(comment=comment)
        deadline_at = clocks.deadline_at(self, ctx.calendars)
        if self.completed_at is None and (deadline_at is None or ctx.when <= deadline_at):
            raise InvariantViolation("task", "can be evaluated once completed or once its deadline has passed")
        self.trigger_event(self.Evaluated, **ctx.fact_fields(), grade=grade.value, comment=comment)

    def cancel(self, ctx: Context, *, reason: str) -> None:
        require_role(ctx, Role.CENTRAL_OFFICE, what="cancel tasks")
        self.require_open(ctx)
        self.require_not_completed("cancel it")
        _required("reason", reason, "to cancel a task")
        self.trigger_event(self.Cancelled, **ctx.fact_fields(), reason=reason)

    def raise_finding(self, ctx: Context, *, kind: FindingKind, description: str | None) -> None:
        require_role(ctx, Role.INSPECTOR, what="raise findings")
        self.require_open(ctx)
        self._forbid(description=description)
        if not self.level.is_classified:
            _required("description", description, "for a finding (Art. 11)")
        self.trigger_event(self.FindingRaised, **ctx.fact_fields(), kind=kind.value, description=description)
