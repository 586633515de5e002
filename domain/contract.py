"""The public event contract v1 (SPEC section 8): what downstream systems read from Kafka.

One JSON message per stored event on topic ``taskledger.events.v1``; the message key is the
aggregate id (canonical UUID text, UTF-8), so per-aggregate order holds within a partition.

Every message is an *envelope*: the same header fields for every event, and a ``payload`` typed
per event ``type``. The pydantic models below are the contract; ``json_schema()`` publishes it
(``docs/contract/taskledger.events.v1.schema.json``, regenerated with ``python -m domain.contract``).

Conventions (fixed for v1):

* instants (``occurred_at``, ``recorded_at``, ``registration_due_at``, ``signature_signer.not_after``)
  are RFC 3339 strings in UTC with a ``Z`` suffix, fractional seconds only when non-zero
  (``2026-04-24T08:00:00Z``, ``2026-04-24T08:00:00.250000Z``); calendar dates are ``YYYY-MM-DD``;
  ids are canonical lowercase UUID text.
* ``event_id`` is ``uuid5(EVENT_ID_NAMESPACE, "<aggregate_id>:<version>")``: the same stored event
  always gets the same id, so consumers de-duplicate re-deliveries by it.
* ``position`` is the event's global notification id in the event store (gap-free per store, strictly
  increasing); ``version`` is its position in its aggregate's sequence (1 = the creation event).
* Confidentiality (SPEC 6): for ``confidential`` and ``top_secret`` aggregates every payload field named
  in ``domain.values.CONTENT_FIELDS`` is published as ``null`` and content keys are removed from
  ``changes`` objects, whatever the stored event holds. Calendar events carry no level (``null``).
* Compatibility: v1 only ever gains optional fields; anything else is a new contract on a ``.v2`` topic.

``envelope_from_stored`` is the relay's fast path: plain dicts, no pydantic validation. Tests validate its
output against ``EVENT_ADAPTER`` for every event type.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from uuid import UUID

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    create_model,
)

from domain.values import CONTENT_FIELDS

CONTRACT_VERSION = 1
EVENTS_TOPIC = "taskledger.events.v1"
ALERTS_TOPIC = "taskledger.alerts.v1"
STATUS_TOPIC = "taskledger.task-status.v1"

SCHEMA_ID = "urn:taskledger:contract:events:v1"
SCHEMA_TITLE = "taskledger event v1"
SCHEMA_FILE = "taskledger.events.v1.schema.json"

EVENT_ID_NAMESPACE = UUID("3d0c6f0e-2b1a-5e7c-8f4d-6a9b1c2d3e4f")
"""Fixed forever for v1: changing it would change every published event_id."""

# --- value types (kept literal here on purpose: a domain enum change must be a visible contract change;
# tests check that they equal the domain enums) ----------------------------------------------------------
Level = Literal["regular", "confidential", "top_secret"]
Role = Literal["central_office", "assignee", "approver", "monitor", "inspector", "auditor", "system"]
Priority = Literal["key", "regular", "urgent"]
ScopeKind = Literal["national", "sector", "regional"]
AgencyKind = Literal["central_body", "provincial_committee", "municipal_committee", "other"]
UpdateEvery = Literal["month", "quarter", "year"]
Grade = Literal["excellent", "completed", "not_fully_completed", "not_completed"]
FindingKind = Literal["violation", "delay", "data_error"]
ObjectionOutcome = Literal["accepted", "dismissed"]

Code = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
    Field(description="Agency code or user id."),
]


def _utc_only(moment: datetime) -> datetime:
    if moment.utcoffset():
        raise ValueError("instants of contract v1 are in UTC ('Z')")
    return moment


Instant = Annotated[
    AwareDatetime,
    AfterValidator(_utc_only),
    Field(
        description="RFC 3339 instant in UTC with a 'Z' suffix.",
        json_schema_extra={"pattern": "Z$"},
    ),
]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Count = Annotated[int, Field(ge=1)]

_CLASSIFIED_NOTE = (
    "Content field (domain.values.CONTENT_FIELDS): always null when the aggregate's confidentiality "
    "is confidential or top_secret (SPEC 6)."
)


def _content(what: str, **kwargs: Any) -> Any:
    return Field(description=f"{what} {_CLASSIFIED_NOTE}", **kwargs)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- header parts ------------------------------------------------------------------------------------------
class Actor(_Strict):
    """Who recorded the fact: a user of an agency acting in a role (SPEC 1)."""

    role: Role
    agency: Code
    user: Code


class SignatureSigner(_Strict):
    """The signer of a directive's document, as verified from its X.509 leaf certificate at registration."""

    subject: str = Field(description="RFC 4514 subject of the signer certificate.")
    issuer: str = Field(description="RFC 4514 issuer of the signer certificate.")
    serial: str = Field(description="Certificate serial number, lowercase hex.")
    fingerprint_sha256: Sha256 = Field(description="SHA-256 of the certificate (DER), lowercase hex.")
    not_after: Instant


class TaskChanges(_Strict):
    """Fields an adjustment (or an accepted objection) changed, with their new values; absent = unchanged."""

    content: str | None = _content("New task content.", default=None)
    deadline: date | None = None
    priority: Priority | None = None
    scope: ScopeKind | None = None
    scope_name: str | None = None
    monitor: Code | None = None
    update_every: UpdateEvery | None = None


class DirectiveChanges(_Strict):
    """Fields an amendment changed, with their new values; absent = unchanged."""

    title: str | None = None
    summary: str | None = _content("New directive summary.", default=None)
    signer: str | None = None
    issuing_body: str | None = None
    presenting_body: str | None = None
    number: str | None = None


class WorkingHoursPayload(_Strict):
    periods: list[tuple[str, str]] = Field(description='Daily working periods, local "HH:MM" start/end pairs.')
    weekdays: list[Annotated[int, Field(ge=0, le=6)]] = Field(description="Working weekdays, 0 = Monday.")
    tz: str = Field(description="IANA time zone of the periods.")


# --- payloads: the event class's own attributes (domain/task.py, domain/directive.py, domain/calendar.py) ---
class TaskAssignedPayload(_Strict):
    directive_id: UUID
    parent_id: UUID | None = Field(description="The parent task of a subtask (Art. 6.2.c), else null.")
    content: str | None = _content("What is to be done.")
    assigning_body: str
    assignee: Code
    assignee_kind: AgencyKind
    monitor: Code
    deadline: date | None = Field(description="Deadline date (17:00 local is the deadline instant); null = none.")
    scope: ScopeKind
    scope_name: str | None
    priority: Priority
    update_every: UpdateEvery
    ad_hoc: bool


class SubtaskAssignedPayload(_Strict):
    subtask_id: UUID
    assignee: Code


class TaskReceivedPayload(_Strict):
    late: bool = Field(description="Receipt was after the 4-working-hour receipt clock (Art. 6.2.a).")


class TaskObjectedPayload(_Strict):
    reason: str
    late: bool


class ObjectionResolvedPayload(_Strict):
    outcome: ObjectionOutcome
    transfer_to: Code | None
    changes: TaskChanges
    reason: str | None
    late: bool


class TaskTransferredPayload(_Strict):
    to: Code
    previous: Code
    reason: str


class TaskAdjustedPayload(_Strict):
    changes: TaskChanges
    reason: str


class ProgressReportedPayload(_Strict):
    report_no: Count
    percent: Annotated[int, Field(ge=0, le=100)]
    note: str | None = _content("Progress narrative.")
    products: str | None = _content("Products delivered so far.")
    decrease_reason: str | None


class ProgressApprovedPayload(_Strict):
    report_no: Count


class ProgressReturnedPayload(_Strict):
    report_no: Count
    reason: str


class TaskUrgedPayload(_Strict):
    message: str | None = _content("The reminder's text.")


class DifficultyReportedPayload(_Strict):
    causes: str | None = _content("Causes of the difficulty.")
    proposals: str | None = _content("Proposals.")


class DeadlineExtendedPayload(_Strict):
    deadline: date
    previous: date
    reason: str
    authority: str


class DelayExplainedPayload(_Strict):
    explanation: str | None = _content("The written explanation (Art. 15.4).")


class TaskCompletedPayload(_Strict):
    result: str | None = _content("Results.")
    products: str | None = _content("Products.")
    late: bool = Field(description="Completed after the (possibly extended) deadline instant.")
    late_against_original: bool = Field(description="Completed after the original deadline instant.")


class TaskEvaluatedPayload(_Strict):
    grade: Grade
    comment: str | None = _content("Evaluation comment.")


class TaskCancelledPayload(_Strict):
    reason: str


class FindingRaisedPayload(_Strict):
    kind: FindingKind
    description: str | None = _content("What was found.")


class DirectiveRegisteredPayload(_Strict):
    symbol: str
    number: str
    title: str
    summary: str | None = _content("Directive summary.")
    issued_on: date
    signer: str
    issuing_body: str
    presenting_body: str
    document_sha256: Sha256 | None
    signature_signer: SignatureSigner | None = Field(
        description="The verified signer of the document (the signature bundle itself is never published)."
    )
    registration_due_at: Instant
    registered_late: bool


class DirectiveAmendedPayload(_Strict):
    changes: DirectiveChanges
    reason: str


class DirectiveWithdrawnPayload(_Strict):
    reason: str


class CalendarEstablishedPayload(_Strict):
    hours: WorkingHoursPayload
    days_off: list[date]
    working_days: list[date] = Field(description="Make-up working days (e.g. Saturdays).")
    first_year: int
    last_year: int
    source: str


class CalendarChangedPayload(_Strict):
    days_off_added: list[date]
    days_off_removed: list[date]
    working_days_added: list[date]
    working_days_removed: list[date]
    reason: str


# --- envelopes ---------------------------------------------------------------------------------------------
class EnvelopeBase(_Strict):
    """Header fields common to every event message."""

    contract_version: Literal[1]
    event_id: UUID = Field(
        description='uuid5(EVENT_ID_NAMESPACE, "<aggregate_id>:<version>"); stable per stored event.'
    )
    aggregate_type: str
    aggregate_id: UUID = Field(description="Also the Kafka message key.")
    version: int = Field(ge=1, description="Position of the event in its aggregate's sequence (1 = creation).")
    position: int = Field(ge=1, description="Global notification id in the event store.")
    type: str
    occurred_at: Instant = Field(description="Business time of the fact (given for imports, else = recorded_at).")
    recorded_at: Instant = Field(description="When the system recorded the fact.")
    actor: Actor
    confidentiality: Level | None = Field(description="Level of the aggregate (SPEC 6); null for calendar events.")
    calendar_version: int | None = Field(ge=1, description="Working-calendar version in force for the fact.")
    command_id: str | None = Field(description="Client idempotency key of the command that recorded the fact.")
    hash: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 (hex) of prev_hash and the event's canonical bytes: the aggregate's hash chain "
        "(docs/audit.md). Optional: null for events stored before the chain existed.",
    )
    prev_hash: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Hash of the aggregate's previous event (for version 1: SHA-256 of "
        "'taskledger:genesis:<aggregate_id>').",
    )


class TaskEnvelope(EnvelopeBase):
    aggregate_type: Literal["Task"]
    confidentiality: Level
    calendar_version: int = Field(ge=1)


class DirectiveEnvelope(EnvelopeBase):
    aggregate_type: Literal["Directive"]
    confidentiality: Level
    calendar_version: int = Field(ge=1)


class CalendarEnvelope(EnvelopeBase):
    aggregate_type: Literal["WorkingCalendar"]
    confidentiality: None = Field(description="Calendar events carry no confidentiality level.")
    calendar_version: int = Field(ge=1, description="The calendar version this event establishes (= version).")
    command_id: str | None = Field(
        default=None, description="Client idempotency key of the change (null for the establishment)."
    )


_PayloadTransform = Callable[[dict[str, Any], dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class _Spec:
    """How one stored event topic is published."""

    aggregate_type: str
    type: str
    payload: type[BaseModel]
    creation: bool = False
    fields: tuple[str, ...] = ()  # state attributes copied into the payload, in order
    content: tuple[str, ...] = ()  # of those, the ones nulled at confidential/top_secret
    changes: bool = False  # has a `changes` object whose content keys are removed when classified
    transform: _PayloadTransform | None = None


def _directive_signature(state: dict[str, Any], payload: dict[str, Any]) -> None:
    """Publish the verified signer of the stored signature record, never the raw bundle."""
    signature = state.get("signature")
    signer = signature.get("signer") if isinstance(signature, dict) else None
    if isinstance(signer, dict):
        signer = dict(signer)
        if isinstance(signer.get("not_after"), str):
            signer["not_after"] = _iso_utc(signer["not_after"])
    payload["signature_signer"] = signer or None


_TASK = "domain.task:Task."
_DIRECTIVE = "domain.directive:Directive."
_CALENDAR = "domain.calendar:WorkingCalendar."

# stored topic -> (aggregate type, public type, payload model, is the creation event)
_TABLE: tuple[tuple[str, str, str, type[BaseModel], bool], ...] = (
    (_TASK + "Assigned", "Task", "TaskAssigned", TaskAssignedPayload, True),
    (_TASK + "SubtaskAssigned", "Task", "SubtaskAssigned", SubtaskAssignedPayload, False),
    (_TASK + "Received", "Task", "TaskReceived", TaskReceivedPayload, False),
    (_TASK + "Objected", "Task", "TaskObjected", TaskObjectedPayload, False),
    (_TASK + "ObjectionResolved", "Task", "ObjectionResolved", ObjectionResolvedPayload, False),
    (_TASK + "Transferred", "Task", "TaskTransferred", TaskTransferredPayload, False),
    (_TASK + "Adjusted", "Task", "TaskAdjusted", TaskAdjustedPayload, False),
    (_TASK + "ProgressReported", "Task", "ProgressReported", ProgressReportedPayload, False),
    (_TASK + "ProgressApproved", "Task", "ProgressApproved", ProgressApprovedPayload, False),
    (_TASK + "ProgressReturned", "Task", "ProgressReturned", ProgressReturnedPayload, False),
    (_TASK + "Urged", "Task", "TaskUrged", TaskUrgedPayload, False),
    (_TASK + "DifficultyReported", "Task", "DifficultyReported", DifficultyReportedPayload, False),
    (_TASK + "DeadlineExtended", "Task", "DeadlineExtended", DeadlineExtendedPayload, False),
    (_TASK + "DelayExplained", "Task", "DelayExplained", DelayExplainedPayload, False),
    (_TASK + "Completed", "Task", "TaskCompleted", TaskCompletedPayload, False),
    (_TASK + "Evaluated", "Task", "TaskEvaluated", TaskEvaluatedPayload, False),
    (_TASK + "Cancelled", "Task", "TaskCancelled", TaskCancelledPayload, False),
    (_TASK + "FindingRaised", "Task", "FindingRaised", FindingRaisedPayload, False),
    (
        _DIRECTIVE + "Registered",
        "Directive",
        "DirectiveRegistered",
        DirectiveRegisteredPayload,
        True,
    ),
    (_DIRECTIVE + "Amended", "Directive", "DirectiveAmended", DirectiveAmendedPayload, False),
    (_DIRECTIVE + "Withdrawn", "Directive", "DirectiveWithdrawn", DirectiveWithdrawnPayload, False),
    (
        _CALENDAR + "Established",
        "WorkingCalendar",
        "CalendarEstablished",
        CalendarEstablishedPayload,
        True,
    ),
    (_CALENDAR + "Changed", "WorkingCalendar", "CalendarChanged", CalendarChangedPayload, False),
)

_TRANSFORMS: dict[str, tuple[str, _PayloadTransform]] = {
    # public type -> (payload field produced, transform); the field is not copied from the stored state
    "DirectiveRegistered": ("signature_signer", _directive_signature),
}

_ENVELOPE_BASES: dict[str, type[EnvelopeBase]] = {
    "Task": TaskEnvelope,
    "Directive": DirectiveEnvelope,
    "WorkingCalendar": CalendarEnvelope,
}


def _make_spec(topic: str, aggregate_type: str, type_name: str, payload: type[BaseModel], creation: bool) -> _Spec:
    names = tuple(payload.model_fields)
    transform = _TRANSFORMS.get(type_name)
    copied = tuple(n for n in names if not transform or n != transform[0])
    return _Spec(
        aggregate_type=aggregate_type,
        type=type_name,
        payload=payload,
        creation=creation,
        fields=copied,
        content=tuple(n for n in names if n in CONTENT_FIELDS),
        changes="changes" in names,
        transform=transform[1] if transform else None,
    )


_SPECS: dict[str, _Spec] = {row[0]: _make_spec(*row) for row in _TABLE}

ENVELOPE_MODELS: dict[str, type[EnvelopeBase]] = {
    spec.type: create_model(  # type: ignore[call-overload]
        spec.type + "Event",
        __base__=_ENVELOPE_BASES[spec.aggregate_type],
        __module__=__name__,
        __doc__=f"Envelope of a {spec.type} event ({spec.aggregate_type} aggregate).",
        type=(Literal[spec.type], ...),  # type: ignore[valid-type]
        payload=(spec.payload, ...),
    )
    for spec in _SPECS.values()
}
"""Public event type -> its envelope model."""

EVENT_TYPES: tuple[str, ...] = tuple(ENVELOPE_MODELS)

Event = Annotated[Union[tuple(ENVELOPE_MODELS.values())], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(Event)

CREATION_TOPICS: frozenset[str] = frozenset(t for t, s in _SPECS.items() if s.creation)
STORED_TOPICS: tuple[str, ...] = tuple(_SPECS)


# --- identity and naming -----------------------------------------------------------------------------------
_EVENT_ID_PREFIX = EVENT_ID_NAMESPACE.bytes


def event_id_for(aggregate_id: UUID, version: int) -> UUID:
    """The stable id of the stored event ``version`` of ``aggregate_id``."""
    return UUID(_event_id_text(str(aggregate_id), version))


def _event_id_text(aggregate_id: str, version: int) -> str:
    """uuid5(EVENT_ID_NAMESPACE, f"{aggregate_id}:{version}") as canonical text, without building UUIDs."""
    digest = bytearray(hashlib.sha1(_EVENT_ID_PREFIX + f"{aggregate_id}:{version}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def public_type(topic: str) -> tuple[str, str]:
    """Stored event topic -> (aggregate type, public event type), e.g.
    ``"domain.task:Task.Received"`` -> ``("Task", "TaskReceived")``."""
    spec = _SPECS.get(topic)
    if spec is None:
        raise ValueError(f"{topic!r} is not an event of contract v{CONTRACT_VERSION}")
    return spec.aggregate_type, spec.type


def confidentiality_of(topic: str, payload_state: dict[str, Any]) -> str | None:
    """The level an aggregate's events are published with, read from its creation event's decoded state.

    Task.Assigned / Directive.Registered -> the level they record; calendar events -> None. Any other
    topic raises ValueError: a non-creation event does not carry its aggregate's level (the caller keeps
    the level of each aggregate from its creation event)."""
    spec = _SPECS.get(topic)
    if spec is None:
        raise ValueError(f"{topic!r} is not an event of contract v{CONTRACT_VERSION}")
    if spec.aggregate_type == "WorkingCalendar":
        return None
    if not spec.creation:
        raise ValueError(f"{topic} is not a creation event; its level is the one of the aggregate's creation event")
    return _checked_level(payload_state.get("confidentiality"), topic)


_LEVELS = frozenset(("regular", "confidential", "top_secret"))
_CLASSIFIED = frozenset(("confidential", "top_secret"))
_CONTENT = frozenset(CONTENT_FIELDS)


def _checked_level(level: Any, topic: str) -> str:
    if level not in _LEVELS:
        raise ValueError(
            f"{topic}: confidentiality {level!r} cannot be published; expected one of {', '.join(sorted(_LEVELS))}"
        )
    return level  # type: ignore[no-any-return]


# --- the fast builder --------------------------------------------------------------------------------------
def _iso_utc(text: str) -> str:
    """An ISO 8601 instant as RFC 3339 UTC with 'Z'. Naive values are taken as UTC (eventsourcing's rule)."""
    if text.endswith("+00:00"):
        return text[:-6] + "Z"
    if text.endswith("Z"):
        return text
    moment = datetime.fromisoformat(text)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat()[:-6] + "Z"


def _uuid_text(hex_text: str) -> str:
    if len(hex_text) == 32 and hex_text.islower():
        return f"{hex_text[:8]}-{hex_text[8:12]}-{hex_text[12:16]}-{hex_text[16:20]}-{hex_text[20:]}"
    return str(UUID(hex_text))


def _custom(value: dict[str, Any]) -> Any:
    """A value the JSONTranscoder wrote as {"_type_": name, "_data_": data}."""
    kind, data = value["_type_"], value["_data_"]
    if kind == "datetime_iso":
        return _iso_utc(data)
    if kind == "uuid_hex":
        return _uuid_text(data)
    if kind == "decimal_str":
        return data
    raise ValueError(f"stored value of type {kind!r} has no representation in contract v{CONTRACT_VERSION}")


def _convert(value: Any) -> Any:
    """Replace transcoder encodings inside nested dicts and lists (mirrors JSONTranscoder._decode_obj)."""
    cls = value.__class__
    if cls is dict:
        if len(value) == 2 and "_type_" in value and "_data_" in value:
            return _custom(value)
        return {k: _convert(v) if v.__class__ in _CONTAINERS else v for k, v in value.items()}
    if cls is list:
        return [_convert(v) if v.__class__ in _CONTAINERS else v for v in value]
    return value


_CONTAINERS = (dict, list)


def _instant(value: Any) -> str:
    if value.__class__ is dict and value.get("_type_") == "datetime_iso":
        return _iso_utc(value["_data_"])
    if isinstance(value, str):
        return _iso_utc(value)
    raise ValueError(f"expected a stored instant, got {value!r}")


def envelope_from_stored(
    topic: str,
    state: bytes,
    aggregate_id: UUID,
    version: int,
    position: int,
    confidentiality: str | None,
) -> dict[str, Any]:
    """The v1 message of one stored event, as a plain dict ready for ``encode``.

    ``state`` is the JSON the eventsourcing JSONTranscoder wrote, already decrypted and decompressed.
    ``confidentiality`` is the aggregate's level for non-creation Task and Directive events (required:
    ValueError if missing); it is ignored for creation events (their own recorded level wins) and for
    calendar events (always null). Only the fields the contract declares are published; content
    fields are nulled for confidential and top_secret aggregates."""
    spec = _SPECS.get(topic)
    if spec is None:
        raise ValueError(f"{topic!r} is not an event of contract v{CONTRACT_VERSION}")
    data = orjson.loads(state)
    if spec.aggregate_type == "WorkingCalendar":
        level = None
        calendar_version: Any = version
    else:
        level = _checked_level(data.get("confidentiality") if spec.creation else confidentiality, topic)
        calendar_version = data.get("calendar_version")

    payload: dict[str, Any] = {}
    for name in spec.fields:
        value = data.get(name)
        if value.__class__ in _CONTAINERS:
            value = _convert(value)
        payload[name] = value
    if spec.transform is not None:
        spec.transform(data, payload)
    if level in _CLASSIFIED:
        for name in spec.content:
            payload[name] = None
        if spec.changes and payload.get("changes").__class__ is dict:
            payload["changes"] = {k: v for k, v in payload["changes"].items() if k not in _CONTENT}

    recorded_at = _instant(data["timestamp"])
    occurred = data.get("occurred_at")
    aggregate = aggregate_id if aggregate_id.__class__ is UUID else UUID(str(aggregate_id))
    aggregate_text = str(aggregate)
    return {
        "contract_version": CONTRACT_VERSION,
        "event_id": _event_id_text(aggregate_text, version),
        "aggregate_type": spec.aggregate_type,
        "aggregate_id": aggregate_text,
        "version": version,
        "position": position,
        "type": spec.type,
        "occurred_at": recorded_at if occurred is None else _instant(occurred),
        "recorded_at": recorded_at,
        "actor": data.get("actor"),
        "confidentiality": level,
        "calendar_version": calendar_version,
        "command_id": data.get("command_id"),
        "hash": data.get("hash"),
        "prev_hash": data.get("prev_hash"),
        "payload": payload,
    }


def encode(envelope: dict[str, Any]) -> bytes:
    """The Kafka message value: compact UTF-8 JSON."""
    return orjson.dumps(envelope)


def kafka_key(aggregate_id: UUID | str) -> bytes:
    """The Kafka message key: the aggregate id as canonical UUID text (so per-aggregate order holds)."""
    return str(aggregate_id if isinstance(aggregate_id, UUID) else UUID(aggregate_id)).encode("ascii")


# --- the published schema ----------------------------------------------------------------------------------
def json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of one message on ``taskledger.events.v1``."""
    schema = EVENT_ADAPTER.json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": SCHEMA_TITLE,
        "description": (
            f"One message of Kafka topic {EVENTS_TOPIC} per stored event (key: aggregate_id as UUID text). "
            "Instants are RFC 3339 UTC with 'Z'; dates are YYYY-MM-DD. event_id is stable per stored event. "
            "Content fields (summary, content, note, products, result, causes, proposals, explanation, "
            "description, comment, message) are always null for confidential and top_secret aggregates. "
            "Compatibility: v1 only gains optional fields; breaking changes get a v2 topic."
        ),
        "x-contract-version": CONTRACT_VERSION,
        "x-kafka-topic": EVENTS_TOPIC,
        **schema,
    }


def schema_text() -> str:
    """The committed form of the schema: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schema(path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(schema_text(), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m domain.contract`` prints the schema; ``--write PATH`` writes it; ``--check PATH``
    exits 1 when the file differs from the current contract."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--write":
        write_schema(args[1])
        return 0
    if len(args) == 2 and args[0] == "--check":
        path = Path(args[1])
        if not path.exists() or path.read_text(encoding="utf-8") != schema_text():
            print(
                f"{path} is out of date; regenerate it with: python -m domain.contract --write {path}",
                file=sys.stderr,
            )
            return 1
        return 0
    if args:
        print("usage: python -m domain.contract [--write PATH | --check PATH]", file=sys.stderr)
        return 2
    sys.stdout.write(schema_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
