"""The public event contract v1 (SPEC 8): every stored event becomes a valid, stable message."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from eventsourcing.utils import get_topic
from pydantic import ValidationError

from connectors.pki import init_dev_pki, read_trusted_roots, sign_document
from domain import commands as c
from domain import contract, values
from domain.actors import Actor, Role
from domain.application import TaskLedger
from domain.calendar import CALENDAR_ID, WorkingCalendar
from domain.directive import Directive
from domain.signatures import document_digest
from domain.task import Task

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "contract" / contract.SCHEMA_FILE
START = datetime(2026, 4, 24, 8, 0, tzinfo=UTC)  # Friday 15:00 local
CIPHER_TOPIC = "eventsourcing.cryptography:AESCipher"

OFFICE = Actor.parse("central_office:VPTW:an")
ASSIGNEE = Actor.parse("assignee:HN:binh")
APPROVER = Actor.parse("approver:HN:chi")
MONITOR = Actor.parse("monitor:BKT:dung")
INSPECTOR = Actor.parse("inspector:UBKTTW:em")
ASSIGNEE_DN = Actor.parse("assignee:DN:giang")

TASK_CONTENT = "Draft the provincial digital-transformation plan"
SUMMARY = "Breakthroughs in science, technology and innovation"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def tick(self) -> None:
        self.now += timedelta(minutes=30)


@dataclass
class Built:
    """An application with recorded history, and the v1 message of each of its stored events."""

    app: TaskLedger
    envelopes: list[dict[str, Any]]
    states: list[tuple[Any, bytes]]  # (notification, plaintext state)
    ids: dict[str, UUID]


def stored(app: TaskLedger) -> list[tuple[Any, bytes]]:
    """Every notification with its plaintext state (decrypted when the store is encrypted at rest)."""
    cipher = app.mapper.cipher
    notifications = app.recorder.select_notifications(start=1, limit=10000)
    return [(n, cipher.decrypt(n.state) if cipher else n.state) for n in notifications]


def build_all(pairs: list[tuple[Any, bytes]]) -> list[dict[str, Any]]:
    """What the relay does: keep each aggregate's level from its creation event; build each message."""
    levels: dict[UUID, str | None] = {}
    envelopes = []
    for n, state in pairs:
        if n.topic in contract.CREATION_TOPICS:
            levels[n.originator_id] = contract.confidentiality_of(n.topic, orjson.loads(state))
        envelopes.append(
            contract.envelope_from_stored(
                n.topic,
                state,
                n.originator_id,
                n.originator_version,
                n.id,
                levels.get(n.originator_id),
            )
        )
    return envelopes


def signed(pki: Any, document: bytes) -> dict[str, Any]:
    bundle = sign_document(
        document,
        key_pem=pki.signer_key.read_bytes(),
        cert_chain_pem=pki.signer_cert.read_bytes(),
        now=datetime(2026, 4, 1, tzinfo=UTC),
    )
    return {"document_sha256": document_digest(document), "signature": bundle}


def regular_history(app: TaskLedger, clock: Clock, pki: Any) -> dict[str, UUID]:
    """One of every event type, through the use cases."""

    def run(actor: Actor, command: c.Command) -> UUID:
        clock.tick()
        return app.execute(actor, command).aggregate_id

    directive = {
        "issued_on": date(2026, 4, 22),
        "signer": "To Lam",
        "issuing_body": "Politburo",
        "presenting_body": "Central Party Office",
        "confidentiality": "regular",
    }
    d1 = run(
        OFFICE,
        c.RegisterDirective(
            symbol="57-NQ/TW",
            title="Resolution 57",
            summary=SUMMARY,
            command_id="reg-57",
            **directive,
            **signed(pki, b"document 57"),
        ),
    )
    d2 = run(
        OFFICE,
        c.RegisterDirective(symbol="58-NQ/TW", title="Resolution 58", **directive, **signed(pki, b"document 58")),
    )
    run(
        OFFICE,
        c.AmendDirective(directive_id=d1, changes={"title": "Resolution 57 (amended)"}, reason="typo"),
    )
    run(OFFICE, c.WithdrawDirective(directive_id=d2, reason="issued in error"))

    t1 = run(
        OFFICE,
        c.AssignTask(
            directive_id=d1,
            content=TASK_CONTENT,
            assignee="HN",
            assignee_kind="provincial_committee",
            monitor="BKT",
            deadline=date(2026, 6, 30),
            command_id="assign-1",
        ),
    )
    run(ASSIGNEE, c.ReceiveTask(task_id=t1))
    run(ASSIGNEE, c.ObjectTask(task_id=t1, reason="partly beyond our competence"))
    run(
        OFFICE,
        c.ResolveObjection(
            task_id=t1,
            accept=True,
            changes={"content": TASK_CONTENT + " (narrowed)", "deadline": date(2026, 7, 15)},
            reason="narrowed",
        ),
    )
    run(
        OFFICE,
        c.AdjustTask(
            task_id=t1,
            changes={"priority": "key", "scope": "sector", "scope_name": "Science"},
            reason="reclassified",
        ),
    )
    sub = run(ASSIGNEE, c.AssignSubtask(parent_id=t1, content="Survey the districts", assignee="HNQ1"))
    run(ASSIGNEE, c.ReportProgress(task_id=t1, percent=40, note="drafting", products="outline"))
    run(APPROVER, c.ReturnProgress(task_id=t1, reason="figures missing"))
    run(ASSIGNEE, c.ReportProgress(task_id=t1, percent=50, note="drafting, with figures"))
    run(APPROVER, c.ApproveProgress(task_id=t1))
    run(MONITOR, c.UrgeTask(task_id=t1, message="please speed up"))
    run(
        ASSIGNEE,
        c.ReportDifficulty(task_id=t1, causes="staff shortage", proposals="second two officers"),
    )
    run(
        OFFICE,
        c.ExtendDeadline(
            task_id=t1,
            deadline=date(2026, 8, 31),
            reason="difficulty accepted",
            authority="Standing Secretariat",
        ),
    )
    run(ASSIGNEE, c.ExplainDelay(task_id=t1, explanation="the survey took longer"))
    run(ASSIGNEE, c.ReportProgress(task_id=t1, percent=100, note="done", products="the plan"))
    run(APPROVER, c.ApproveProgress(task_id=t1))
    run(ASSIGNEE, c.CompleteTask(task_id=t1, result="plan adopted", products="the plan"))
    run(OFFICE, c.EvaluateTask(task_id=t1, grade="completed", comment="good work"))
    run(INSPECTOR, c.RaiseFinding(task_id=t1, kind="data_error", description="report 1 misdated"))

    t2 = run(OFFICE, c.AssignTask(directive_id=d1, content="Second task", assignee="DN", monitor="BKT"))
    run(OFFICE, c.TransferTask(task_id=t2, to="HCM", reason="competence"))
    run(OFFICE, c.CancelTask(task_id=t2, reason="superseded"))

    clock.tick()
    app.change_calendar(OFFICE, c.ChangeCalendar(add_working_days=[date(2026, 10, 10)], reason="Notice 1/2026"))
    return {"d1": d1, "d2": d2, "t1": t1, "t2": t2, "sub": sub}


def confidential_history(app: TaskLedger, clock: Clock) -> dict[str, UUID]:
    def run(actor: Actor, command: c.Command) -> UUID:
        clock.tick()
        return app.execute(actor, command).aggregate_id

    d = run(
        OFFICE,
        c.RegisterDirective(
            symbol="01-NQ/TW",
            title="Resolution 1",
            issued_on=date(2026, 4, 22),
            signer="To Lam",
            issuing_body="Politburo",
            presenting_body="Central Party Office",
            confidentiality="confidential",
        ),
    )
    run(
        OFFICE,
        c.AmendDirective(directive_id=d, changes={"signer": "Tran Cam Tu"}, reason="signer corrected"),
    )
    t = run(
        OFFICE,
        c.AssignTask(directive_id=d, assignee="HN", monitor="BKT", deadline=date(2026, 6, 30)),
    )
    run(ASSIGNEE, c.ReceiveTask(task_id=t))
    run(OFFICE, c.AdjustTask(task_id=t, changes={"priority": "urgent"}, reason="reclassified"))
    run(ASSIGNEE, c.ReportProgress(task_id=t, percent=100))
    run(MONITOR, c.UrgeTask(task_id=t))
    run(ASSIGNEE, c.ReportDifficulty(task_id=t))
    run(ASSIGNEE, c.ExplainDelay(task_id=t))
    run(APPROVER, c.ApproveProgress(task_id=t))
    run(ASSIGNEE, c.CompleteTask(task_id=t))
    run(OFFICE, c.EvaluateTask(task_id=t, grade="excellent"))
    run(INSPECTOR, c.RaiseFinding(task_id=t, kind="delay"))
    return {"d": d, "t": t}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return init_dev_pki(tmp_path_factory.mktemp("pki"), now=datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def regular(tmp_path_factory: pytest.TempPathFactory, pki: Any) -> Iterator[Built]:
    path = tmp_path_factory.mktemp("regular") / "e.sqlite"
    clock = Clock()
    app = TaskLedger(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)},
        clock=clock,
        trusted_roots=read_trusted_roots([pki.trusted_roots]),
    )
    ids = regular_history(app, clock, pki)
    pairs = stored(app)
    yield Built(app, build_all(pairs), pairs, ids)
    app.close()


@pytest.fixture(scope="module")
def confidential(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    path = tmp_path_factory.mktemp("confidential") / "e.sqlite"
    clock = Clock()
    app = TaskLedger(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(path),
            "CIPHER_TOPIC": CIPHER_TOPIC,
            "CIPHER_KEY": base64.b64encode(os.urandom(32)).decode("ascii"),
        },
        clock=clock,
    )
    ids = confidential_history(app, clock)
    pairs = stored(app)
    yield Built(app, build_all(pairs), pairs, ids)
    app.close()


def of_type(built: Built, name: str) -> list[dict[str, Any]]:
    return [e for e in built.envelopes if e["type"] == name]


def state_of(built: Built, topic: str) -> tuple[Any, dict[str, Any]]:
    n, state = next((n, s) for n, s in built.states if n.topic == topic)
    return n, orjson.loads(state)


# -- the published schema ------------------------------------------------------------------------------------
def test_committed_schema_is_the_generated_one() -> None:
    assert SCHEMA_PATH.exists(), f"generate it: python -m domain.contract --write {SCHEMA_PATH}"
    assert SCHEMA_PATH.read_text(encoding="utf-8") == contract.schema_text()
    assert contract.schema_text().endswith("}\n")


def test_write_schema_and_cli_give_the_same_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = contract.write_schema(tmp_path / "out" / contract.SCHEMA_FILE)
    assert target.read_bytes() == SCHEMA_PATH.read_bytes()
    assert contract.main([]) == 0
    assert capsys.readouterr().out == SCHEMA_PATH.read_text(encoding="utf-8")
    assert contract.main(["--check", str(target)]) == 0
    target.write_text("{}\n", encoding="utf-8")
    assert contract.main(["--check", str(target)]) == 1


def test_schema_identity() -> None:
    schema = contract.json_schema()
    assert schema["$id"] == contract.SCHEMA_ID
    assert schema["title"] == "taskledger event v1"
    assert schema["discriminator"]["propertyName"] == "type"
    assert set(schema["discriminator"]["mapping"]) == set(contract.EVENT_TYPES)
    assert len(contract.EVENT_TYPES) == 23


# -- naming -------------------------------------------------------------------------------------------------
def _event_classes() -> Iterator[type]:
    for aggregate in (Task, Directive, WorkingCalendar):
        for attr in vars(aggregate).values():
            if (
                isinstance(attr, type)
                and issubclass(attr, aggregate.Event)
                and attr.__name__ not in ("Event", "Created")
            ):
                yield attr  # the library's own base classes Event and Created are never stored


def test_every_domain_event_class_has_a_public_type() -> None:
    topics = {get_topic(cls) for cls in _event_classes()}
    assert topics == set(contract.STORED_TOPICS)
    assert contract.public_type("domain.task:Task.Received") == ("Task", "TaskReceived")
    assert contract.public_type("domain.directive:Directive.Registered") == (
        "Directive",
        "DirectiveRegistered",
    )
    assert contract.public_type("domain.calendar:WorkingCalendar.Changed") == (
        "WorkingCalendar",
        "CalendarChanged",
    )
    assert contract.public_type("domain.task:Task.Assigned") == ("Task", "TaskAssigned")
    assert contract.public_type("domain.task:Task.FindingRaised") == ("Task", "FindingRaised")


@pytest.mark.parametrize("topic", ["domain.task:Task.Exploded", "domain.task:Task", "", "Task.Received"])
def test_unknown_topic_is_refused(topic: str) -> None:
    with pytest.raises(ValueError):
        contract.public_type(topic)
    with pytest.raises(ValueError):
        contract.envelope_from_stored(topic, b"{}", UUID(int=1), 1, 1, "regular")


def test_contract_literals_match_the_domain_enums() -> None:
    from typing import get_args

    pairs = [
        (
            contract.Level,
            [v for v in values.Confidentiality if v.is_classified or v is values.Confidentiality.REGULAR],
        ),
        (contract.Role, list(Role)),
        (contract.Priority, list(values.Priority)),
        (contract.ScopeKind, list(values.ScopeKind)),
        (contract.AgencyKind, list(values.AgencyKind)),
        (contract.UpdateEvery, list(values.UpdateEvery)),
        (contract.Grade, list(values.Grade)),
        (contract.FindingKind, list(values.FindingKind)),
    ]
    for literal, enum_members in pairs:
        assert set(get_args(literal)) == {m.value for m in enum_members}


def test_event_id_is_uuid5_of_aggregate_and_version() -> None:
    import uuid

    aggregate = UUID("12345678-1234-5678-1234-567812345678")
    expected = uuid.uuid5(contract.EVENT_ID_NAMESPACE, f"{aggregate}:7")
    assert contract.event_id_for(aggregate, 7) == expected
    assert contract.event_id_for(aggregate, 7) == contract.event_id_for(aggregate, 7)
    assert contract.event_id_for(aggregate, 8) != expected
    assert contract.kafka_key(aggregate) == b"12345678-1234-5678-1234-567812345678"


# -- every stored event validates -----------------------------------------------------------------------------
def test_every_event_type_is_recorded_and_validates(regular: Built) -> None:
    assert {e["type"] for e in regular.envelopes} == set(contract.EVENT_TYPES)
    assert len(regular.envelopes) == len(regular.states)
    for envelope in regular.envelopes:
        model = contract.EVENT_ADAPTER.validate_python(envelope)
        assert model.type == envelope["type"]
        # the JSON form a consumer sees validates too
        contract.EVENT_ADAPTER.validate_json(contract.encode(envelope))


def test_confidential_events_validate(confidential: Built) -> None:
    for envelope in confidential.envelopes:
        contract.EVENT_ADAPTER.validate_python(envelope)


def test_no_stored_attribute_is_silently_left_out(regular: Built) -> None:
    """The builder publishes only declared fields: a domain attribute the contract does not know fails here."""
    header = {
        "timestamp",
        "originator_topic",
        "actor",
        "occurred_at",
        "command_id",
        "calendar_version",
        "confidentiality",
        "hash",
        "prev_hash",
    }
    for (n, state), envelope in zip(regular.states, regular.envelopes, strict=True):
        published = set(envelope["payload"])
        if "signature_signer" in published:  # published in place of the stored signature record
            published = published - {"signature_signer"} | {"signature"}
        assert set(orjson.loads(state)) - header == published, n.topic


def test_task_assigned_message(regular: Built) -> None:
    t1 = regular.ids["t1"]
    n, state = next((n, s) for n, s in regular.states if n.originator_id == t1 and n.originator_version == 1)
    envelope = next(e for e in regular.envelopes if e["aggregate_id"] == str(t1) and e["version"] == 1)
    assert envelope["event_id"] == str(contract.event_id_for(t1, 1))
    assert envelope["position"] == n.id
    assert envelope["type"] == "TaskAssigned"
    assert envelope["aggregate_type"] == "Task"
    assert envelope["actor"] == {"role": "central_office", "agency": "VPTW", "user": "an"}
    assigned_at = START + timedelta(minutes=30 * 5)  # the fifth command
    assert envelope["occurred_at"] == assigned_at.strftime("%Y-%m-%dT%H:%M:%SZ") == "2026-04-24T10:30:00Z"
    assert envelope["recorded_at"] == envelope["occurred_at"]
    assert envelope["confidentiality"] == "regular"
    assert envelope["calendar_version"] == 1
    assert envelope["command_id"] == "assign-1"
    assert envelope["contract_version"] == 1
    assert envelope["payload"] == {
        "directive_id": str(regular.ids["d1"]),
        "parent_id": None,
        "content": TASK_CONTENT,
        "assigning_body": "Politburo",
        "assignee": "HN",
        "assignee_kind": "provincial_committee",
        "monitor": "BKT",
        "deadline": "2026-06-30",
        "scope": "national",
        "scope_name": None,
        "priority": "regular",
        "update_every": "month",
        "ad_hoc": False,
    }
    again = contract.envelope_from_stored(n.topic, state, n.originator_id, n.originator_version, n.id, None)
    assert again == envelope
    assert contract.encode(again) == contract.encode(envelope)
    model = contract.EVENT_ADAPTER.validate_python(envelope)
    assert model.occurred_at == assigned_at
    assert model.event_id == contract.event_id_for(t1, 1)


def test_event_ids_are_unique_and_stable(regular: Built) -> None:
    ids = [e["event_id"] for e in regular.envelopes]
    assert len(set(ids)) == len(ids)
    assert [e["event_id"] for e in build_all(regular.states)] == ids
    assert [e["position"] for e in regular.envelopes] == list(range(1, len(ids) + 1))


def test_instants_are_utc_with_z(regular: Built) -> None:
    registered = of_type(regular, "DirectiveRegistered")[0]
    assert registered["payload"]["registration_due_at"].endswith("Z")
    assert registered["payload"]["signature_signer"]["not_after"].endswith("Z")
    for envelope in regular.envelopes:
        assert envelope["occurred_at"].endswith("Z") and envelope["recorded_at"].endswith("Z")


def test_directive_publishes_the_verified_signer_never_the_bundle(regular: Built) -> None:
    registered = of_type(regular, "DirectiveRegistered")[0]
    _, state = state_of(regular, "domain.directive:Directive.Registered")
    assert registered["payload"]["signature_signer"]["subject"] == state["signature"]["signer"]["subject"]
    assert "signature" not in registered["payload"]
    encoded = contract.encode(registered)
    assert state["signature"]["bundle"]["signature"].encode() not in encoded
    assert b"BEGIN CERTIFICATE" not in encoded
    assert registered["payload"]["summary"] == SUMMARY


def test_calendar_events(regular: Built) -> None:
    established, changed = (
        of_type(regular, "CalendarEstablished")[0],
        of_type(regular, "CalendarChanged")[0],
    )
    assert established["aggregate_id"] == changed["aggregate_id"] == str(CALENDAR_ID)
    assert (
        established["confidentiality"],
        established["calendar_version"],
        established["command_id"],
    ) == (None, 1, None)
    assert changed["calendar_version"] == changed["version"] == 2
    assert changed["payload"]["working_days_added"] == ["2026-10-10"]
    assert changed["actor"] == {"role": "central_office", "agency": "VPTW", "user": "an"}


def test_subtask_and_changes(regular: Built) -> None:
    sub = of_type(regular, "SubtaskAssigned")[0]
    assert sub["payload"] == {"subtask_id": str(regular.ids["sub"]), "assignee": "HNQ1"}
    child = next(e for e in of_type(regular, "TaskAssigned") if e["aggregate_id"] == str(regular.ids["sub"]))
    assert child["payload"]["parent_id"] == str(regular.ids["t1"])
    resolved = of_type(regular, "ObjectionResolved")[0]
    assert resolved["payload"]["changes"] == {
        "content": TASK_CONTENT + " (narrowed)",
        "deadline": "2026-07-15",
    }


# -- confidentiality --------------------------------------------------------------------------------------------
def test_confidential_messages_carry_no_content(confidential: Built) -> None:
    assert {e["confidentiality"] for e in confidential.envelopes if e["aggregate_type"] != "WorkingCalendar"} == {
        "confidential"
    }
    for envelope in confidential.envelopes:
        for name in values.CONTENT_FIELDS:
            assert envelope["payload"].get(name) is None
        for name in values.CONTENT_FIELDS:
            assert name not in (envelope["payload"].get("changes") or {})


def test_stored_state_is_encrypted_but_messages_are_plain(confidential: Built) -> None:
    n, _ = confidential.states[-1]
    assert b"FindingRaised" not in n.state and b"delay" not in n.state
    finding = of_type(confidential, "FindingRaised")[0]
    assert finding["payload"] == {"kind": "delay", "description": None}


SECRET = "SECRET-CONTENT-71f3"


def _inject(built: Built, topic: str, **fields: Any) -> tuple[Any, bytes]:
    n, state = state_of(built, topic)
    state.update(fields)
    return n, orjson.dumps(state)


@pytest.mark.parametrize(
    ("topic", "fields"),
    [
        ("domain.task:Task.Assigned", {"content": SECRET}),
        ("domain.directive:Directive.Registered", {"summary": SECRET}),
        ("domain.task:Task.ProgressReported", {"note": SECRET, "products": SECRET}),
        ("domain.task:Task.Urged", {"message": SECRET}),
        ("domain.task:Task.DifficultyReported", {"causes": SECRET, "proposals": SECRET}),
        ("domain.task:Task.DelayExplained", {"explanation": SECRET}),
        ("domain.task:Task.Completed", {"result": SECRET, "products": SECRET}),
        ("domain.task:Task.Evaluated", {"comment": SECRET}),
        ("domain.task:Task.FindingRaised", {"description": SECRET}),
        ("domain.task:Task.Adjusted", {"changes": {"content": SECRET, "priority": "urgent"}}),
        ("domain.directive:Directive.Amended", {"changes": {"summary": SECRET, "signer": "X"}}),
    ],
)
def test_injected_content_is_nulled_for_classified(confidential: Built, topic: str, fields: dict[str, Any]) -> None:
    n, state = _inject(confidential, topic, **fields)
    envelope = contract.envelope_from_stored(
        n.topic, state, n.originator_id, n.originator_version, n.id, "confidential"
    )
    assert SECRET.encode() not in contract.encode(envelope)
    for name in fields:
        if name != "changes":
            assert envelope["payload"][name] is None
    contract.EVENT_ADAPTER.validate_python(envelope)
    top_secret = contract.envelope_from_stored(
        n.topic, state, n.originator_id, n.originator_version, n.id, "top_secret"
    )
    if n.topic not in contract.CREATION_TOPICS:
        assert top_secret["confidentiality"] == "top_secret"
        assert SECRET.encode() not in contract.encode(top_secret)


def test_creation_event_level_comes_from_the_event(confidential: Built) -> None:
    n, state = _inject(confidential, "domain.task:Task.Assigned", content=SECRET)
    envelope = contract.envelope_from_stored(n.topic, state, n.originator_id, 1, n.id, "regular")
    assert envelope["confidentiality"] == "confidential"
    assert envelope["payload"]["content"] is None


def test_regular_content_is_published(regular: Built) -> None:
    assert TASK_CONTENT.encode() in contract.encode(of_type(regular, "TaskAssigned")[0])


def test_level_is_required_for_non_creation_events(regular: Built) -> None:
    n, state = next((n, s) for n, s in regular.states if n.topic == "domain.task:Task.Received")
    for level in (None, "absolute_secret", "secret"):
        with pytest.raises(ValueError):
            contract.envelope_from_stored(n.topic, state, n.originator_id, n.originator_version, n.id, level)


def test_confidentiality_of() -> None:
    assert contract.confidentiality_of("domain.task:Task.Assigned", {"confidentiality": "top_secret"}) == "top_secret"
    assert (
        contract.confidentiality_of("domain.directive:Directive.Registered", {"confidentiality": "regular"})
        == "regular"
    )
    assert contract.confidentiality_of("domain.calendar:WorkingCalendar.Established", {}) is None
    with pytest.raises(ValueError):
        contract.confidentiality_of("domain.task:Task.Received", {})
    with pytest.raises(ValueError):
        contract.confidentiality_of("domain.task:Task.Assigned", {"confidentiality": "absolute_secret"})


# -- strictness ---------------------------------------------------------------------------------------------------
def _valid(built: Built, name: str) -> dict[str, Any]:
    return orjson.loads(contract.encode(of_type(built, name)[0]))


@pytest.mark.parametrize("name", ["TaskAssigned", "TaskReceived", "DirectiveRegistered", "CalendarChanged"])
def test_a_stray_field_fails_validation(regular: Built, name: str) -> None:
    envelope = _valid(regular, name)
    contract.EVENT_ADAPTER.validate_python(envelope)
    envelope["payload"]["stray"] = "x"
    with pytest.raises(ValidationError):
        contract.EVENT_ADAPTER.validate_python(envelope)
    envelope = _valid(regular, name)
    envelope["stray"] = 1
    with pytest.raises(ValidationError):
        contract.EVENT_ADAPTER.validate_python(envelope)


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda e: e.update(type="TaskExploded"), "unknown type"),
        (lambda e: e.update(contract_version=2), "other contract version"),
        (lambda e: e.update(occurred_at="2026-04-24T17:30:00+07:00"), "instant not in UTC"),
        (lambda e: e.update(confidentiality=None), "task without a level"),
        (lambda e: e.update(confidentiality="absolute_secret"), "level never published"),
        (lambda e: e["payload"].update(priority="bogus"), "not a priority"),
        (lambda e: e["payload"].update(deadline="30/06/2026"), "not a date"),
        (lambda e: e["payload"].pop("assignee"), "missing field"),
        (lambda e: e.update(version=0), "version from 1"),
        (lambda e: e["actor"].update(role="king"), "unknown role"),
    ],
)
def test_invalid_messages_fail(regular: Built, mutate: Callable[[dict[str, Any]], Any], why: str) -> None:
    envelope = _valid(regular, "TaskAssigned")
    mutate(envelope)
    with pytest.raises(ValidationError):
        contract.EVENT_ADAPTER.validate_python(envelope)


def test_reserved_hash_fields_are_optional(regular: Built) -> None:
    envelope = _valid(regular, "TaskReceived")
    del envelope["hash"], envelope["prev_hash"]
    contract.EVENT_ADAPTER.validate_python(envelope)
    envelope.update(hash="ab" * 32, prev_hash="cd" * 32)
    contract.EVENT_ADAPTER.validate_python(envelope)


# -- transcoder shapes ---------------------------------------------------------------------------------------------
def test_transcoder_encodings_are_converted_at_any_depth() -> None:
    state = {
        "timestamp": {"_type_": "datetime_iso", "_data_": "2026-04-24T15:00:00.500000+07:00"},
        "actor": {"role": "central_office", "agency": "VPTW", "user": "an"},
        "occurred_at": {"_type_": "datetime_iso", "_data_": "2026-04-24T08:00:00"},
        "command_id": None,
        "calendar_version": 1,
        "changes": {
            "deadline": "2026-07-01",
            "nested": [{"_type_": "uuid_hex", "_data_": "12345678123456781234567812345678"}],
        },
        "reason": "r",
    }
    envelope = contract.envelope_from_stored(
        "domain.task:Task.Adjusted", orjson.dumps(state), UUID(int=5), 2, 9, "regular"
    )
    assert envelope["recorded_at"] == "2026-04-24T08:00:00.500000Z"
    assert envelope["occurred_at"] == "2026-04-24T08:00:00Z"
    assert envelope["payload"]["changes"]["nested"] == ["12345678-1234-5678-1234-567812345678"]
    assert envelope["aggregate_id"] == "00000000-0000-0000-0000-000000000005"
    state["changes"] = {"x": {"_type_": "pickle", "_data_": "..."}}
    with pytest.raises(ValueError):
        contract.envelope_from_stored("domain.task:Task.Adjusted", orjson.dumps(state), UUID(int=5), 2, 9, "regular")


def test_messages_validate_against_the_committed_json_schema(regular: Built, confidential: Built) -> None:
    """Consumers validate with the published file, not with pydantic: both must agree."""
    import jsonschema  # a dev dependency: the published schema must be checked, never skipped

    schema = orjson.loads(SCHEMA_PATH.read_bytes())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    for envelope in regular.envelopes + confidential.envelopes:
        validator.validate(orjson.loads(contract.encode(envelope)))
    bad = orjson.loads(contract.encode(of_type(regular, "TaskReceived")[0]))
    bad["payload"]["stray"] = True
    assert not validator.is_valid(bad)
    bad = orjson.loads(contract.encode(of_type(regular, "TaskReceived")[0]))
    bad["recorded_at"] = "2026-04-24T15:00:00+07:00"
    assert not validator.is_valid(bad)
