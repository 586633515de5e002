"""Clearances (SPEC 6): who may read records of which confidentiality, as recorded facts. Pure.

A reader without a grant is cleared for ``regular`` only. Grants and revocations are recorded by the
central office on one singleton aggregate, so who was cleared for what, when and by whom, is itself
part of the auditable history (hash-chained like every other aggregate)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from eventsourcing.domain import Aggregate

from domain.actors import Actor, Role
from domain.directive import require_role
from domain.errors import InvariantViolation, NotAuthorized, ValidationError
from domain.events import Chained, CheapCopy, Context, Fact
from domain.values import Confidentiality

CLEARANCES_ID: uuid.UUID = uuid.uuid5(uuid.NAMESPACE_URL, "taskledger:clearances")

DEFAULT_LEVEL = Confidentiality.REGULAR
GRANTABLE = (Confidentiality.REGULAR, Confidentiality.CONFIDENTIAL, Confidentiality.TOP_SECRET)
# Roles that may read audit timelines (SPEC 1: auditors replay and time-travel, inspectors read what
# they are cleared for, the central office holds the records).
READERS = (Role.AUDITOR, Role.INSPECTOR, Role.CENTRAL_OFFICE)
# Roles whose reads are limited by a recorded grant; the central office registers and holds every
# storable record (SPEC 1), so it reads them all.
CLEARED_BY_GRANT = (Role.AUDITOR, Role.INSPECTOR)

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def may_read(level_of_reader: Confidentiality, level_of_record: Confidentiality) -> bool:
    """A reader sees a record whose level is at most its own clearance. Absolute secret records do
    not exist in the system (SPEC 6), so no clearance reads them."""
    if level_of_record is Confidentiality.ABSOLUTE_SECRET:
        return False
    return level_of_reader.rank >= level_of_record.rank


def require_clearance(
    actor: Actor, reader_level: Confidentiality, record_level: Confidentiality, record_id: str
) -> None:
    """Refuse, explicitly, a read of a record above the reader's clearance."""
    if not may_read(reader_level, record_level):
        raise NotAuthorized(
            "clearance",
            f"{record_id} is {record_level.value}; {actor.agency}:{actor.user} is cleared for "
            f"{reader_level.value} only",
        )


def require_reader(actor: Actor, what: str = "read audit timelines") -> None:
    if actor.role not in READERS:
        allowed = ", ".join(r.value for r in READERS)
        raise NotAuthorized("actor.role", f"only {allowed} may {what} (SPEC 1); {actor.role.value} may not")


def clearance_of(actor: Actor, clearances: Clearances | None) -> Confidentiality:
    """The level ``actor`` reads at: its recorded grant (default regular); the central office reads
    every storable level."""
    if actor.role not in CLEARED_BY_GRANT:
        return Confidentiality.TOP_SECRET if actor.role is Role.CENTRAL_OFFICE else DEFAULT_LEVEL
    if clearances is None:
        return DEFAULT_LEVEL
    return clearances.level_of(actor.agency, actor.user)


def grantable_level(level: Confidentiality | str) -> Confidentiality:
    try:
        value = Confidentiality(level)
    except ValueError:
        raise ValidationError("level", f"'{level}' is not one of {', '.join(g.value for g in GRANTABLE)}") from None
    if value not in GRANTABLE:
        allowed = ", ".join(g.value for g in GRANTABLE)
        raise ValidationError("level", f"{value.value} records are never held (SPEC 6); grant one of {allowed}")
    return value


def _code(name: str, value: str) -> str:
    if not _CODE.match(value or ""):
        raise ValidationError(name, "must be a code of letters, digits, '.', '_' or '-'")
    return value


def _key(agency: str, user: str) -> str:
    return f"{agency}:{user}"


class Clearances(Chained, CheapCopy, Aggregate):
    """Every clearance grant and revocation, keyed by agency and user."""

    if TYPE_CHECKING:  # state set by the events' apply(); real annotations would make a dataclass
        commands: dict[str, tuple[str, int]]
        grants: dict[str, dict[str, Any]]

    class Opened(Aggregate.Created):
        actor: dict[str, str]
        occurred_at: datetime
        command_id: str | None
        calendar_version: int
        prev_hash: str
        hash: str

        def apply(self, aggregate: Clearances) -> None:
            aggregate.commands = {}
            aggregate.grants = {}
            aggregate.last_hash = self.hash

    class Granted(Fact):
        agency: str
        user: str
        level: str
        previous: str

        def apply_to(self, c: Clearances) -> None:
            c.grants[_key(self.agency, self.user)] = {
                "agency": self.agency,
                "user": self.user,
                "level": self.level,
                "granted_at": self.occurred_at,
                "granted_by": dict(self.actor),
            }

    class Revoked(Fact):
        agency: str
        user: str
        previous: str
        reason: str | None

        def apply_to(self, c: Clearances) -> None:
            c.grants.pop(_key(self.agency, self.user), None)

    # -- creation -------------------------------------------------------------------------
    @classmethod
    def open(cls, ctx: Context) -> Clearances:
        """The register of clearances, opened by the central office with its first grant."""
        require_role(ctx, Role.CENTRAL_OFFICE, what="record clearances")
        opened = cls._create(cls.Opened, id=CLEARANCES_ID, **{**ctx.fact_fields(), "command_id": None})
        return cast(Clearances, opened)

    def note_fact(self, e: Fact) -> None:
        if e.command_id:
            self.commands[e.command_id] = (type(e).__name__, e.originator_version)

    # -- queries --------------------------------------------------------------------------
    def level_of(self, agency: str, user: str) -> Confidentiality:
        grant = self.grants.get(_key(agency, user))
        return Confidentiality(grant["level"]) if grant else DEFAULT_LEVEL

    def listing(self) -> list[dict[str, Any]]:
        return [dict(g) for _, g in sorted(self.grants.items())]

    # -- commands -------------------------------------------------------------------------
    def grant(self, ctx: Context, *, agency: str, user: str, level: Confidentiality | str) -> None:
        require_role(ctx, Role.CENTRAL_OFFICE, what="grant clearances")
        value = grantable_level(level)
        previous = self.level_of(_code("agency", agency), _code("user", user))
        if _key(agency, user) in self.grants and previous is value:
            raise InvariantViolation(
                "level", f"{agency}:{user} is already cleared for {value.value}; nothing was recorded"
            )
        self.trigger_event(
            self.Granted, **ctx.fact_fields(), agency=agency, user=user, level=value.value, previous=previous.value
        )

    def revoke(self, ctx: Context, *, agency: str, user: str, reason: str | None) -> None:
        require_role(ctx, Role.CENTRAL_OFFICE, what="revoke clearances")
        if _key(_code("agency", agency), _code("user", user)) not in self.grants:
            raise InvariantViolation(
                "user", f"{agency}:{user} has no grant to revoke (it reads {DEFAULT_LEVEL.value} records by default)"
            )
        previous = self.level_of(agency, user)
        self.trigger_event(
            self.Revoked, **ctx.fact_fields(), agency=agency, user=user, previous=previous.value, reason=reason
        )
