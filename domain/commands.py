"""Commands: the validated input of every use case (pydantic v2). Errors name the field and the rule."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic import ValidationError as PydanticError

from domain.errors import ValidationError
from domain.values import AgencyKind, Confidentiality, FindingKind, Grade, Priority, ScopeKind, UpdateEvery

AgencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20000)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class Command(BaseModel):
    """Base: business time for imports of past records, and an idempotency key."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)
    occurred_at: datetime | None = None
    command_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None

    @classmethod
    def build(cls, **data: Any) -> Any:
        """Construct, turning pydantic's errors into one that names the field and the rule."""
        try:
            return cls(**data)
        except PydanticError as e:
            first = e.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or cls.__name__
            raise ValidationError(field, first["msg"]) from None


class RegisterDirective(Command):
    symbol: ShortText
    number: ShortText | None = None
    title: ShortText
    summary: Text | None = None
    issued_on: date
    signer: ShortText
    issuing_body: ShortText
    presenting_body: ShortText
    confidentiality: Confidentiality
    document_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    signature: dict[str, Any] | None = None


class DirectiveChanges(BaseModel):
    """What an amendment may change; unknown fields are refused by name."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    number: ShortText | None = None
    title: ShortText | None = None
    summary: Text | None = None
    signer: ShortText | None = None
    issuing_body: ShortText | None = None
    presenting_body: ShortText | None = None


class TaskChanges(BaseModel):
    """What an adjustment (or an accepted objection) may change, with the same rules as assignment."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    content: Text | None = None
    deadline: date | None = None
    priority: Priority | None = None
    scope: ScopeKind | None = None
    scope_name: ShortText | None = None
    monitor: AgencyCode | None = None
    update_every: UpdateEvery | None = None

    def given(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class AmendDirective(Command):
    directive_id: UUID
    changes: DirectiveChanges
    reason: ShortText


class WithdrawDirective(Command):
    directive_id: UUID
    reason: ShortText


class AssignTask(Command):
    directive_id: UUID
    content: Text | None = None
    assignee: AgencyCode
    assignee_kind: AgencyKind = AgencyKind.OTHER
    monitor: AgencyCode
    deadline: date | None = None
    scope: ScopeKind = ScopeKind.NATIONAL
    scope_name: ShortText | None = None
    priority: Priority = Priority.REGULAR
    update_every: UpdateEvery = UpdateEvery.MONTH
    ad_hoc: bool = False
    assigning_body: ShortText | None = None


class AssignSubtask(Command):
    parent_id: UUID
    content: Text | None = None
    assignee: AgencyCode
    assignee_kind: AgencyKind = AgencyKind.OTHER
    deadline: date | None = None
    priority: Priority | None = None
    update_every: UpdateEvery | None = None


class TaskCommand(Command):
    task_id: UUID


class ReceiveTask(TaskCommand):
    pass


class ObjectTask(TaskCommand):
    reason: ShortText


class ResolveObjection(TaskCommand):
    accept: bool
    transfer_to: AgencyCode | None = None
    changes: TaskChanges = Field(default_factory=TaskChanges)
    reason: ShortText | None = None


class TransferTask(TaskCommand):
    to: AgencyCode
    reason: ShortText


class AdjustTask(TaskCommand):
    changes: TaskChanges
    reason: ShortText


class ReportProgress(TaskCommand):
    percent: Annotated[int, Field(ge=0, le=100)]
    note: Text | None = None
    products: Text | None = None
    reason: ShortText | None = None


class ApproveProgress(TaskCommand):
    report_no: int | None = None


class ReturnProgress(TaskCommand):
    report_no: int | None = None
    reason: ShortText


class UrgeTask(TaskCommand):
    message: Text | None = None


class ReportDifficulty(TaskCommand):
    causes: Text | None = None
    proposals: Text | None = None


class ExtendDeadline(TaskCommand):
    deadline: date
    reason: ShortText
    authority: ShortText


class ExplainDelay(TaskCommand):
    explanation: Text | None = None


class CompleteTask(TaskCommand):
    result: Text | None = None
    products: Text | None = None


class EvaluateTask(TaskCommand):
    grade: Grade
    comment: Text | None = None


class CancelTask(TaskCommand):
    reason: ShortText


class RaiseFinding(TaskCommand):
    kind: FindingKind
    description: Text | None = None


class ChangeCalendar(Command):
    add_days_off: list[date] = Field(default_factory=list)
    remove_days_off: list[date] = Field(default_factory=list)
    add_working_days: list[date] = Field(default_factory=list)
    remove_working_days: list[date] = Field(default_factory=list)
    reason: ShortText


Kind = Literal["directive", "task"]
