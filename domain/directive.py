"""The Directive aggregate: the assigning document (Art. 5), its registration and amendments."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.actors import Role
from domain.errors import ConfidentialityViolation, InvariantViolation, NotAuthorized, ValidationError
from domain.events import Chained, CheapCopy, Context, Fact, directive_id_for
from domain.values import Confidentiality


def require_role(ctx: Context, *roles: Role, what: str) -> None:
    if ctx.actor.role not in roles:
        allowed = " or ".join(r.value for r in roles)
        raise NotAuthorized("actor.role", f"only {allowed} may {what} (SPEC 1); {ctx.actor.role.value} may not")


def forbid_content(confidentiality: Confidentiality, **fields: Any) -> None:
    """Confidential and Top Secret records hold no content (SPEC 6)."""
    if not confidentiality.is_classified:
        return
    for name, value in fields.items():
        if value not in (None, "", [], ()):
            raise ConfidentialityViolation(
                name,
                f"a {confidentiality.value} record may not carry '{name}' (SPEC 6: no content is held)",
            )


class Directive(Chained, CheapCopy, Aggregate):
    """A directive of the central leadership, keyed by its symbol."""

    class Registered(Aggregate.Created):
        actor: dict[str, str]
        occurred_at: datetime
        command_id: str | None
        calendar_version: int
        prev_hash: str
        hash: str
        symbol: str
        number: str
        title: str
        summary: str | None
        issued_on: str
        signer: str
        issuing_body: str
        presenting_body: str
        confidentiality: str
        document_sha256: str | None
        signature: dict[str, Any] | None
        registration_due_at: datetime
        registered_late: bool

        def apply(self, aggregate: Directive) -> None:
            aggregate.init_from(self)

    class Amended(Fact):
        changes: dict[str, Any]
        reason: str

        def apply_to(self, aggregate: Directive) -> None:
            for key, value in self.changes.items():
                setattr(aggregate, key, value)

    class Withdrawn(Fact):
        reason: str

        def apply_to(self, aggregate: Directive) -> None:
            aggregate.withdrawn_at = self.occurred_at
            aggregate.withdrawal_reason = self.reason

    # -- construction -------------------------------------------------------------------
    @classmethod
    def register(
        cls,
        ctx: Context,
        *,
        symbol: str,
        number: str,
        title: str,
        summary: str | None,
        issued_on: date,
        signer: str,
        issuing_body: str,
        presenting_body: str,
        confidentiality: Confidentiality,
        document_sha256: str | None,
        signature: dict[str, Any] | None,
    ) -> Directive:
        require_role(ctx, Role.CENTRAL_OFFICE, what="register directives")
        forbid_content(confidentiality, summary=summary)
        if issued_on > ctx.calendars.current.local(ctx.when).date():
            raise ValidationError("issued_on", "may not be after the registration date")
        due = ctx.calendars.current.end_of_nth_working_day_after(issued_on, 3)
        return cls._create(
            cls.Registered,
            id=directive_id_for(symbol),
            **ctx.fact_fields(),
            symbol=symbol,
            number=number,
            title=title,
            summary=summary,
            issued_on=issued_on.isoformat(),
            signer=signer,
            issuing_body=issuing_body,
            presenting_body=presenting_body,
            confidentiality=confidentiality.value,
            document_sha256=document_sha256,
            signature=signature,
            registration_due_at=due,
            registered_late=ctx.when > due,
        )

    def init_from(self, e: Registered) -> None:
        self.commands: dict[str, tuple[str, int]] = {}
        self.last_hash = e.hash
        self.symbol = e.symbol
        self.number = e.number
        self.title = e.title
        self.summary = e.summary
        self.issued_on = e.issued_on
        self.signer = e.signer
        self.issuing_body = e.issuing_body
        self.presenting_body = e.presenting_body
        self.confidentiality = e.confidentiality
        self.document_sha256 = e.document_sha256
        self.signature = e.signature
        self.registered_at = e.occurred_at
        self.registration_due_at = e.registration_due_at
        self.registered_late = e.registered_late
        self.registration_calendar_version = e.calendar_version
        self.withdrawn_at: datetime | None = None
        self.withdrawal_reason: str | None = None
        self.last_occurred_at = e.occurred_at
        if e.command_id:
            self.commands[e.command_id] = ("Registered", 1)

    def note_fact(self, e: Fact) -> None:
        self.last_occurred_at = e.occurred_at
        if e.command_id:
            self.commands[e.command_id] = (type(e).__name__, e.originator_version)

    @property
    def level(self) -> Confidentiality:
        return Confidentiality(self.confidentiality)

    # -- commands -----------------------------------------------------------------------
    AMENDABLE = ("title", "summary", "signer", "issuing_body", "presenting_body", "number")

    def amend(self, ctx: Context, *, changes: dict[str, Any], reason: str) -> None:
        require_role(ctx, Role.CENTRAL_OFFICE, what="amend directives")
        self._require_open()
        if not reason.strip():
            raise ValidationError("reason", "is required to amend a directive")
        unknown = sorted(set(changes) - set(self.AMENDABLE))
        if unknown:
            raise ValidationError(unknown[0], f"cannot be amended; amendable: {', '.join(self.AMENDABLE)}")
        real = {k: v for k, v in changes.items() if v is not None and getattr(self, k) != v}
        if not real:
            raise ValidationError("changes", "an amendment must change at least one field")
        forbid_content(self.level, summary=real.get("summary"))
        self._require_order(ctx)
        self.trigger_event(self.Amended, **ctx.fact_fields(), changes=real, reason=reason)

    def withdraw(self, ctx: Context, *, reason: str) -> None:
        require_role(ctx, Role.CENTRAL_OFFICE, what="withdraw directives")
        self._require_open()
        if not reason.strip():
            raise ValidationError("reason", "is required to withdraw a directive")
        self._require_order(ctx)
        self.trigger_event(self.Withdrawn, **ctx.fact_fields(), reason=reason)

    def _require_open(self) -> None:
        if self.withdrawn_at is not None:
            raise InvariantViolation("directive", f"{self.symbol} was withdrawn; nothing more may be recorded")

    def _require_order(self, ctx: Context) -> None:
        if ctx.when < self.last_occurred_at:
            raise InvariantViolation(
                "occurred_at",
                f"is before the directive's previous event ({self.last_occurred_at.isoformat()}); "
                "facts are recorded in the order they happened",
            )
