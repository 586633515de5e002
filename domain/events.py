"""What every recorded fact carries, and the context a command is executed in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from domain import audit
from domain.actors import Actor
from domain.errors import ValidationError

if TYPE_CHECKING:
    from domain.calendar import CalendarHistory

NAMESPACE = uuid.UUID("6f1c2d0e-4b7a-5c3e-9a51-08c0a7e7f2b1")


def directive_id_for(symbol: str) -> uuid.UUID:
    """Directives are keyed by their symbol (ký hiệu): registering one twice is a conflict."""
    return uuid.uuid5(NAMESPACE, "directive:" + " ".join(symbol.upper().split()))


def task_id_for(command_id: str) -> uuid.UUID:
    """A task created by a command with an id gets a deterministic id, so a retry finds it."""
    return uuid.uuid5(NAMESPACE, "task:" + command_id)


def utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValidationError("occurred_at", "must carry a time zone offset, e.g. 2026-04-24T15:00+07:00")
    return t.astimezone(timezone.utc)


@dataclass(frozen=True)
class Context:
    """Who acts, when it happened, when it is recorded, and the calendar in force."""

    actor: Actor
    recorded_at: datetime
    calendars: CalendarHistory
    occurred_at: datetime | None = None
    command_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def when(self) -> datetime:
        """Business time of the fact: given for imports of past records, else the recorded time."""
        return self.occurred_at or self.recorded_at

    @property
    def calendar_version(self) -> int:
        return self.calendars.current.version

    def fact_fields(self) -> dict[str, Any]:
        return {
            "timestamp": self.recorded_at,
            "actor": self.actor.to_dict(),
            "occurred_at": self.when,
            "command_id": self.command_id,
            "calendar_version": self.calendar_version,
        }

    @classmethod
    def create(
        cls,
        actor: Actor,
        recorded_at: datetime,
        calendars: CalendarHistory,
        occurred_at: datetime | None,
        command_id: str | None,
    ) -> Context:
        """A validated context: instants in UTC, business time never after the recorded time."""
        recorded = utc(recorded_at)
        occurred = utc(occurred_at) if occurred_at else None
        if occurred and occurred > recorded:
            raise ValidationError(
                "occurred_at",
                f"may not be in the future (it is {occurred.isoformat()}, now is {recorded.isoformat()})",
            )
        return cls(actor, recorded, calendars, occurred, command_id)


class Chained:
    """Aggregates whose events carry a hash chain (domain.audit): every event records
    ``prev_hash`` (the previous event's hash, or the genesis of the aggregate id) and
    ``hash`` = SHA-256(prev_hash ‖ canonical bytes of the event), computed when it is created."""

    last_hash: str

    @staticmethod
    def _sealed(event_class: type[Any], base: dict[str, Any], prev: str) -> dict[str, Any]:
        probe = event_class(**base, prev_hash=prev, hash="")
        digest = audit.event_hash(
            prev,
            probe.originator_id,
            probe.originator_version,
            get_topic(event_class),
            probe.timestamp,
            probe.__dict__,
        )
        return {**base, "prev_hash": prev, "hash": digest}

    @classmethod
    def _create(cls, event_class: type[Any], *, id: Any, **kwargs: Any) -> Any:  # noqa: A002
        base = {
            **kwargs,
            "originator_topic": get_topic(cls),
            "originator_id": id,
            "originator_version": 1,
        }
        sealed = cls._sealed(event_class, base, audit.genesis(id))
        for key in ("originator_topic", "originator_id", "originator_version"):
            sealed.pop(key)
        return super()._create(event_class, id=id, **sealed)  # type: ignore[misc]

    def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None:
        base = {**kwargs, "originator_id": self.id, "originator_version": self.version + 1}  # type: ignore[attr-defined]
        sealed = self._sealed(event_class, base, self.last_hash)
        sealed.pop("originator_id")
        sealed.pop("originator_version")
        super().trigger_event(event_class, **sealed)  # type: ignore[misc]


class Fact(Aggregate.Event):
    """Base of every non-creating event: actor, business time, command id, calendar version,
    hash chain. The library's ``timestamp`` is the system's recorded time."""

    actor: dict[str, str]
    occurred_at: datetime
    command_id: str | None
    calendar_version: int
    prev_hash: str
    hash: str

    @property
    def recorded_at(self) -> datetime:
        return self.timestamp

    def apply(self, aggregate: Any) -> None:
        aggregate.last_hash = self.hash
        aggregate.note_fact(self)
        self.apply_to(aggregate)

    def apply_to(self, aggregate: Any) -> None:  # pragma: no cover - overridden
        pass


def copy_state(value: Any) -> Any:
    """Copy the mutable containers of an aggregate's state; share the immutable values."""
    if isinstance(value, list):
        return [copy_state(v) for v in value]
    if isinstance(value, dict):
        return {k: copy_state(v) for k, v in value.items()}
    return value


class CheapCopy:
    """Aggregates hold lists and dicts of immutable values: a structural copy is all a deep copy
    needs, and 15x cheaper than ``copy.deepcopy`` (the repository copies on every cache hit)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        clone = object.__new__(type(self))
        clone.__dict__.update({k: copy_state(v) for k, v in self.__dict__.items()})
        return clone


def iso_date(d: date | str | None) -> str | None:
    if d is None:
        return None
    return d.isoformat() if isinstance(d, date) else date.fromisoformat(d).isoformat()


def public_payload(event: Aggregate.Event) -> dict[str, Any]:
    """Event attributes other than the envelope ones, for history views."""
    skip = {
        "originator_id",
        "originator_version",
        "timestamp",
        "originator_topic",
        "actor",
        "occurred_at",
        "command_id",
        "calendar_version",
        "prev_hash",
        "hash",
    }
    return {k: v for k, v in event.__dict__.items() if k not in skip}
