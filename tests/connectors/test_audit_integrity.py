"""Tamper evidence (SPEC 8): hash chains, signed checkpoints, verified exports; on SQLite and PostgreSQL.

Histories are built through TaskLedger commands; tampering is done the way an attacker with database
access would: direct SQL on the stored rows (SQLite: ``stored_events`` / ``stored_audit_checkpoints``,
PostgreSQL: ``"<schema>".taskledger_events`` / ``taskledger_audit_checkpoints``)."""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from typer.testing import CliRunner

from connectors import audit_integrity as ai
from domain import audit, contract
from domain import commands as c
from domain.application import TaskLedger
from domain.checkpoint import CHECKPOINTS_ID, AuditCheckpoints
from domain.errors import NotAuthorized, NotFound
from domain.values import Confidentiality
from tests.conftest import (
    APPROVER,
    ASSIGNEE,
    INSPECTOR,
    MONITOR,
    OFFICE,
    Backend,
    Clock,
    directive_command,
    new_cipher_key,
)

AUDITOR = "auditor:KTTW:kiem"


# -- direct database access (the attacker's view) --------------------------------------------------------
class Store:
    """Rows of the events table and of the seal log, read and changed with plain SQL."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.sqlite = backend.name == "sqlite"

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.sqlite:
            import sqlite3

            conn = sqlite3.connect(str(self.backend.sqlite_path))
            try:
                with conn:
                    rows = conn.execute(sql, params).fetchall()
            finally:
                conn.close()
            return rows
        import psycopg

        with psycopg.connect(self.backend.database_url, autocommit=True) as conn:
            cursor = conn.execute(sql.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []

    @property
    def events(self) -> str:
        return "stored_events" if self.sqlite else f'"{self.backend.schema}".taskledger_events'

    @property
    def seals(self) -> str:
        return "stored_audit_checkpoints" if self.sqlite else f'"{self.backend.schema}".taskledger_audit_checkpoints'

    @property
    def position(self) -> str:
        return "rowid" if self.sqlite else "notification_id"

    def _id(self, aggregate_id: UUID) -> Any:
        return aggregate_id.hex if self.sqlite else aggregate_id

    def state(self, aggregate_id: UUID, version: int) -> bytes:
        rows = self._run(
            f"SELECT state FROM {self.events} WHERE originator_id=? AND originator_version=?",
            (self._id(aggregate_id), version),
        )
        return bytes(rows[0][0])

    def set_state(self, aggregate_id: UUID, version: int, state: bytes) -> None:
        self._run(
            f"UPDATE {self.events} SET state=? WHERE originator_id=? AND originator_version=?",
            (state, self._id(aggregate_id), version),
        )

    def position_of(self, aggregate_id: UUID, version: int) -> int:
        rows = self._run(
            f"SELECT {self.position} FROM {self.events} WHERE originator_id=? AND originator_version=?",
            (self._id(aggregate_id), version),
        )
        return int(rows[0][0])

    def delete(self, aggregate_id: UUID, version: int) -> None:
        self._run(
            f"DELETE FROM {self.events} WHERE originator_id=? AND originator_version=?",
            (self._id(aggregate_id), version),
        )

    def truncate_from(self, position: int) -> int:
        """Delete the tail of the events table from ``position`` on; returns how many rows went."""
        before = self.count()
        self._run(f"DELETE FROM {self.events} WHERE {self.position}>=?", (position,))
        return before - self.count()

    def count(self) -> int:
        return int(self._run(f"SELECT COUNT(*) FROM {self.events}")[0][0])

    def seal_state(self, version: int) -> bytes:
        rows = self._run(
            f"SELECT state FROM {self.seals} WHERE originator_id=? AND originator_version=?",
            (self._id(CHECKPOINTS_ID), version),
        )
        return bytes(rows[0][0])

    def set_seal_state(self, version: int, state: bytes) -> None:
        self._run(
            f"UPDATE {self.seals} SET state=? WHERE originator_id=? AND originator_version=?",
            (state, self._id(CHECKPOINTS_ID), version),
        )


@pytest.fixture
def store(backend: Backend) -> Store:
    return Store(backend)


@pytest.fixture
def key(tmp_path: Path) -> Any:
    return ai.ensure_audit_key(tmp_path / "audit-pki")


def fingerprint(key: Any) -> str:
    return ai.key_fingerprint(ai.public_key_text(key))


# -- histories -------------------------------------------------------------------------------------------
class History:
    """12 events, 4 aggregates: calendar (1), directive (2), task t1 (3-9, 7 events), task t2 (10-12)."""

    def __init__(self, app: TaskLedger, clock: Clock, register: Callable[..., UUID], assign: Callable[..., UUID]):
        self.app, self.clock = app, clock
        self.directive = register(app)
        self.t1 = self.run(OFFICE, None, assign=assign)
        for actor, command in (
            (ASSIGNEE, c.ReceiveTask(task_id=self.t1)),
            (ASSIGNEE, c.ReportProgress(task_id=self.t1, percent=50, note="half of it is done")),
            (APPROVER, c.ApproveProgress(task_id=self.t1)),
            (ASSIGNEE, c.ReportProgress(task_id=self.t1, percent=100, note="all of it is done")),
            (APPROVER, c.ApproveProgress(task_id=self.t1)),
            (ASSIGNEE, c.CompleteTask(task_id=self.t1, result="done as directed", products="report no. 1")),
        ):
            self.run(actor, command)
        self.t2 = self.run(OFFICE, None, assign=assign, content="A second task")
        self.run(ASSIGNEE, c.ReceiveTask(task_id=self.t2))
        self.run(MONITOR, c.UrgeTask(task_id=self.t2, message="please report"))

    def run(
        self, actor: Any, command: c.Command | None, assign: Callable[..., UUID] | None = None, **fields: Any
    ) -> UUID:
        self.clock.advance(minutes=7)
        if command is None:
            assert assign is not None
            return assign(self.app, self.directive, **fields)
        return self.app.execute(actor, command).aggregate_id

    def more(self) -> None:
        """Two more events on t2 (positions 13 and 14)."""
        self.run(ASSIGNEE, c.ReportProgress(task_id=self.t2, percent=30, note="started"))
        self.run(APPROVER, c.ApproveProgress(task_id=self.t2))


@pytest.fixture
def history(
    make_ledger: Callable[..., TaskLedger], clock: Clock, register: Callable[..., UUID], assign: Callable[..., UUID]
) -> History:
    return History(make_ledger(), clock, register, assign)


def every_event_type(app: TaskLedger, clock: Clock, signed: Callable[[bytes], Any]) -> dict[str, UUID]:
    """One of every stored event type of contract v1, through the use cases."""

    def run(actor: Any, command: c.Command) -> UUID:
        clock.advance(minutes=30)
        return app.execute(actor, command).aggregate_id

    d1 = run(OFFICE, directive_command(signed, "57-NQ/TW", command_id="reg-57"))
    d2 = run(OFFICE, directive_command(signed, "58-NQ/TW"))
    run(OFFICE, c.AmendDirective(directive_id=d1, changes={"title": "Resolution 57 (amended)"}, reason="typo"))
    run(OFFICE, c.WithdrawDirective(directive_id=d2, reason="issued in error"))
    t1 = run(
        OFFICE,
        c.AssignTask(
            directive_id=d1,
            content="Draft the plan",
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
            changes={"content": "Draft the plan (narrowed)", "deadline": date(2026, 7, 15)},
            reason="narrowed",
        ),
    )
    run(
        OFFICE,
        c.AdjustTask(
            task_id=t1, changes={"priority": "key", "scope": "sector", "scope_name": "Science"}, reason="reclassified"
        ),
    )
    sub = run(ASSIGNEE, c.AssignSubtask(parent_id=t1, content="Survey the districts", assignee="HNQ1"))
    run(ASSIGNEE, c.ReportProgress(task_id=t1, percent=40, note="drafting", products="outline"))
    run(APPROVER, c.ReturnProgress(task_id=t1, reason="figures missing"))
    run(ASSIGNEE, c.ReportProgress(task_id=t1, percent=50, note="drafting, with figures"))
    run(APPROVER, c.ApproveProgress(task_id=t1))
    run(MONITOR, c.UrgeTask(task_id=t1, message="please speed up"))
    run(ASSIGNEE, c.ReportDifficulty(task_id=t1, causes="staff shortage", proposals="second two officers"))
    run(
        OFFICE,
        c.ExtendDeadline(
            task_id=t1, deadline=date(2026, 8, 31), reason="difficulty accepted", authority="Standing Secretariat"
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
    clock.advance(minutes=30)
    app.change_calendar(OFFICE, c.ChangeCalendar(add_working_days=[date(2026, 10, 10)], reason="Notice 1/2026"))
    return {"d1": d1, "d2": d2, "t1": t1, "t2": t2, "sub": sub}


def problems(report: ai.Report) -> list[str]:
    return [p.describe() for p in report.problems]


# -- canonical bytes from the stored JSON, Merkle accumulator ---------------------------------------------
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_canonical_bytes_from_stored_json_equal_those_of_the_domain_events_for_every_event_type(
    make_ledger: Callable[..., TaskLedger], clock: Clock, signed: Callable[[bytes], Any], key: Any, encrypted: bool
) -> None:
    app = make_ledger(new_cipher_key() if encrypted else None)
    every_event_type(app, clock, signed)
    ai.seal(app, key)
    plain = ai.plaintext(app)
    stored = [
        (n.originator_id, n.originator_version, n.topic, n.state)
        for n in app.recorder.select_notifications(start=1, limit=1000)
    ]
    stored += [(s.originator_id, s.originator_version, s.topic, s.state) for s in ai.SealLog(app).stored()]
    topics = set()
    for originator_id, version, topic, state in stored:
        event = app.mapper.to_domain_event(StoredEvent(originator_id, version, topic, state))
        expected = audit.canonical_bytes(
            event.originator_id, event.originator_version, get_topic(type(event)), event.timestamp, event.__dict__
        )
        text = plain(state) if plain else state
        data = orjson.loads(text)
        assert audit.canonical_bytes_from_stored(str(originator_id), version, topic, data) == expected
        assert audit.canonical_bytes_from_stored(str(originator_id), version, topic, data, text) == expected
        assert audit.chain_hash(data["prev_hash"], expected) == data["hash"]
        topics.add(topic)
    assert topics == set(contract.STORED_TOPICS) | {
        get_topic(AuditCheckpoints.Opened),
        get_topic(AuditCheckpoints.Sealed),
    }
    assert (plain is not None) is encrypted


def test_stored_instants_are_read_as_the_domain_would() -> None:
    assert audit.utc_text_from_iso("2026-04-24T08:00:00+00:00") == "2026-04-24T08:00:00Z"
    assert audit.utc_text_from_iso("2026-04-24T08:00:00.120000+00:00") == "2026-04-24T08:00:00.120000Z"
    assert audit.utc_text_from_iso("2026-04-24T15:00:00+07:00") == "2026-04-24T08:00:00Z"
    assert audit.utc_text_from_iso("2026-04-24T08:00:00.000000+00:00") == "2026-04-24T08:00:00Z"
    with pytest.raises(ValueError, match="carries no time zone"):
        audit.utc_text_from_iso("2026-04-24T08:00:00")


@pytest.mark.parametrize("n", [*range(0, 18), 31, 32, 33, 100, 257])
def test_the_merkle_accumulator_gives_merkle_root(n: int) -> None:
    leaves = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]
    acc = audit.MerkleAccumulator()
    for leaf in leaves:
        acc.add(leaf)
    assert (acc.count, acc.root()) == (n, audit.merkle_root(leaves))


# -- the audit key -----------------------------------------------------------------------------------------
def test_the_audit_key_is_made_once_private_and_its_fingerprint_is_published(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    assert ai.deployment_fingerprint(pki) is None
    first = ai.ensure_audit_key(pki)
    second = ai.ensure_audit_key(pki)
    assert ai.public_key_text(first) == ai.public_key_text(second)
    assert stat.S_IMODE((pki / "audit.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((pki / "audit.pub").stat().st_mode) == 0o644
    (pki / "audit.key").unlink()
    assert ai.deployment_fingerprint(pki) == fingerprint(first)  # from audit.pub alone
    assert len(fingerprint(first)) == 64


# -- verify: a clean store ---------------------------------------------------------------------------------
def test_a_clean_store_verifies_with_exact_counts(history: History, key: Any) -> None:
    report = ai.verify_store(history.app)
    assert (report.ok, report.events, report.aggregates, report.checkpoints_total, report.unsealed) == (
        True,
        12,
        4,
        0,
        12,
    )

    sealed = ai.seal(history.app, key)
    history.more()
    report = ai.verify_store(history.app, trusted={fingerprint(key)})

    assert [(s.sequence, s.first_position, s.last_position, s.count) for s in sealed] == [(1, 1, 12, 12)]
    assert (report.ok, report.events, report.aggregates) == (True, 14, 4)
    assert (report.checkpoints_total, report.checkpoints_verified, report.unsealed) == (1, 1, 2)
    assert report.signers == [fingerprint(key)]
    assert report.summary() == (
        f"OK: 14 events of 4 aggregates verified (all); 1 of 1 checkpoints verified (signed by key "
        f"{fingerprint(key)[:16]}); 2 events after the last checkpoint are not sealed yet"
    )
    assert ai.verify_store(history.app, lean=False).to_dict()["problems"] == []
    one = ai.verify_aggregate(history.app, history.t1)
    assert (one.ok, one.events, one.aggregates) == (True, 7, 1)


# -- verify: tampering --------------------------------------------------------------------------------------
def test_one_byte_changed_is_named_by_aggregate_and_version(history: History, store: Store) -> None:
    state = store.state(history.t1, 3)
    assert state.count(b'"percent":50') == 1
    store.set_state(history.t1, 3, state.replace(b'"percent":50', b'"percent":90'))

    report = ai.verify_store(history.app)

    assert problems(report) == [
        f"Task {history.t1} version 3 (position 5): content does not match its hash (the stored event was altered)"
    ]
    assert report.first is not None and (report.first.aggregate_id, report.first.version) == (str(history.t1), 3)
    assert report.events == 12
    assert problems(ai.verify_aggregate(history.app, history.t1)) == [
        f"Task {history.t1} version 3: content does not match its hash (the stored event was altered)"
    ]
    assert ai.verify_aggregate(history.app, history.t2).ok


def test_a_byte_that_breaks_the_json_is_reported_not_raised(history: History, store: Store) -> None:
    state = store.state(history.t2, 2)
    store.set_state(history.t2, 2, b"X" + state[1:])

    report = ai.verify_store(history.app)

    assert [p.describe().split(" (unexpected")[0] for p in report.problems] == [
        f"Task {history.t2} version 2 (position 11): the stored state cannot be read"
    ]


def test_a_deleted_middle_row_is_named(history: History, store: Store) -> None:
    store.delete(history.t1, 4)

    report = ai.verify_store(history.app)

    assert problems(report) == [f"Task {history.t1} version 4: version 4 is missing (next stored is 5, at position 7)"]
    assert report.events == 11


def test_swapped_states_of_two_versions_are_named(history: History, store: Store) -> None:
    third, fifth = store.state(history.t1, 3), store.state(history.t1, 5)
    store.set_state(history.t1, 3, fifth)
    store.set_state(history.t1, 5, third)

    report = ai.verify_store(history.app)

    assert problems(report) == [
        f"Task {history.t1} version 3 (position 5): prev_hash does not link to the previous event "
        "(removed, reordered or rewritten)"
    ]


def test_a_truncated_tail_after_a_checkpoint_is_named_by_the_checkpoint_range(
    history: History, store: Store, key: Any
) -> None:
    ai.seal(history.app, key)  # checkpoint #1: positions 1-12
    history.more()  # positions 13, 14
    assert store.truncate_from(11) == 4  # t2's versions 2-4 and t1 untouched: every chain is still valid

    report = ai.verify_store(history.app)

    assert problems(report) == [
        "checkpoint #1 (positions 1-12, 12 events): 2 of its 12 sealed events are missing from the log "
        "(the range now holds 10, the last at position 10); events were deleted or the log's tail was truncated"
    ]
    assert (report.events, report.checkpoints_verified, report.unsealed) == (10, 0, 0)
    assert ai.verify_aggregate(history.app, history.t2).ok  # a shorter chain is a valid chain


def test_a_rewritten_chain_is_caught_by_the_checkpoint(history: History, store: Store, key: Any) -> None:
    """An attacker rewrites t2's last event and recomputes its hash: the chain holds, the sealed root does not."""
    ai.seal(history.app, key)
    data = json.loads(store.state(history.t2, 3))
    data["message"] = "nothing to report"
    canonical = audit.canonical_bytes_from_stored(str(history.t2), 3, "domain.task:Task.Urged", data)
    data["hash"] = audit.chain_hash(data["prev_hash"], canonical)
    store.set_state(history.t2, 3, json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())

    report = ai.verify_store(history.app)

    assert problems(report) == [
        "checkpoint #1 (positions 1-12, 12 events): the Merkle root of the range differs from the sealed root "
        "(an event hash in the range was rewritten, or events were moved)"
    ]


def test_a_tampered_checkpoint_signature_is_named(history: History, store: Store, key: Any) -> None:
    ai.seal(history.app, key)
    state = store.seal_state(2)
    data = json.loads(state)
    signature = data["signature"]
    forged = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    store.set_seal_state(2, state.replace(data["signature"].encode(), forged.encode()))

    report = ai.verify_store(history.app)

    assert problems(report) == [
        "seal log version 2 (checkpoint #1, positions 1-12): content does not match its hash (the stored event "
        "was altered)",
        "checkpoint #1 (positions 1-12, 12 events): the signature does not verify (range, count, root or time "
        "were changed, or it was forged)",
    ]

    # the same forgery with the seal log's hash recomputed: the signature alone catches it
    data["signature"] = forged
    canonical = audit.canonical_bytes_from_stored(str(CHECKPOINTS_ID), 2, get_topic(AuditCheckpoints.Sealed), data)
    data["hash"] = audit.chain_hash(data["prev_hash"], canonical)
    store.set_seal_state(2, json.dumps(data, separators=(",", ":")).encode())
    assert problems(ai.verify_store(history.app)) == [
        "checkpoint #1 (positions 1-12, 12 events): the signature does not verify (range, count, root or time "
        "were changed, or it was forged)"
    ]


def test_a_checkpoint_signed_by_another_key_is_refused_when_the_key_is_pinned(
    history: History, key: Any, tmp_path: Path
) -> None:
    other = ai.ensure_audit_key(tmp_path / "attacker")
    ai.seal(history.app, other)

    report = ai.verify_store(history.app, trusted={fingerprint(key)})

    assert problems(report) == [
        f"checkpoint #1 (positions 1-12, 12 events): signed by key {fingerprint(other)}, which is not a trusted "
        "audit key of this deployment"
    ]
    assert ai.verify_store(history.app).ok  # without a pinned key the signature itself holds


def test_encrypted_store_verifies_and_an_altered_ciphertext_is_named(
    make_ledger: Callable[..., TaskLedger],
    clock: Clock,
    register: Callable[..., UUID],
    assign: Callable[..., UUID],
    store: Store,
    key: Any,
) -> None:
    history = History(make_ledger(new_cipher_key()), clock, register, assign)
    ai.seal(history.app, key)
    assert ai.verify_store(history.app).ok
    state = bytearray(store.state(history.t1, 2))
    state[-5] ^= 0x01
    store.set_state(history.t1, 2, bytes(state))

    report = ai.verify_store(history.app)

    assert problems(report) == [
        f"Task {history.t1} version 2 (position 4): the stored state cannot be read (it cannot be decrypted: "
        "the ciphertext was altered or the key differs)",
        # its hash cannot be read either: the sealed range cannot be recomputed
        "checkpoint #1 (positions 1-12, 12 events): the Merkle root of the range differs from the sealed root "
        "(an event hash in the range was rewritten, or events were moved)",
    ]


# -- checkpoints ---------------------------------------------------------------------------------------------
def test_maybe_checkpoint_seals_complete_ranges_of_n(history: History, key: Any) -> None:
    made = ai.maybe_checkpoint(history.app, 5, key=key)
    assert [(c.sequence, c.first_position, c.last_position, c.count) for c in made] == [(1, 1, 5, 5), (2, 6, 10, 5)]
    assert ai.maybe_checkpoint(history.app, 5, key=key) == []  # 2 unsealed events: not a range yet
    history.more()
    history.run(ASSIGNEE, c.ReportProgress(task_id=history.t2, percent=60, note="more"))
    made = ai.maybe_checkpoint(history.app, 5, key=key)
    assert [(c.sequence, c.first_position, c.last_position) for c in made] == [(3, 11, 15)]
    assert [c.sequence for c in ai.checkpoints(history.app)] == [1, 2, 3]
    report = ai.verify_store(history.app)
    assert (report.ok, report.checkpoints_verified, report.unsealed) == (True, 3, 0)


def test_sealing_refuses_an_event_that_does_not_match_its_hash(history: History, store: Store, key: Any) -> None:
    store.set_state(history.t1, 3, store.state(history.t1, 3).replace(b'"percent":50', b'"percent":90'))
    with pytest.raises(ai.ValidationError, match=rf"Task {history.t1} version 3 \(position 5\): content does not "):
        ai.seal(history.app, key)
    assert ai.checkpoints(history.app) == []


# -- exports -------------------------------------------------------------------------------------------------
def test_export_round_trip_verifies_offline(history: History, key: Any, tmp_path: Path) -> None:
    ai.seal(history.app, key)
    everything = ai.export(history.app, tmp_path / "all", key=key)
    one_task = ai.export(history.app, tmp_path / "t1", task=history.t1, key=key)
    directive = ai.export(history.app, tmp_path / "d", directive=history.directive, key=key)
    history.app.close()  # offline: no database from here on

    full = ai.verify_export(tmp_path / "all", trusted={fingerprint(key)})
    assert (full.ok, full.events, full.aggregates, full.checkpoints_verified, full.checkpoints_unchecked) == (
        True,
        12,
        4,
        1,
        [],
    )
    assert everything["events"]["count"] == 12
    written = (tmp_path / "all" / "events.jsonl").read_bytes()
    assert everything["events"]["sha256"] == hashlib.sha256(written).hexdigest()
    assert everything["aggregates"][str(history.t1)]["events"] == 7

    task = ai.verify_export(tmp_path / "t1")
    assert (task.ok, task.events, task.aggregates, task.checkpoints_verified) == (True, 7, 1, 0)
    assert (task.checkpoints_proven, task.checkpoints_unchecked) == ({1: 7}, [])
    assert task.summary() == (
        f"OK: 7 events of 1 aggregate verified (export of task {history.t1}); 0 of 1 checkpoints verified "
        f"(signed by key {fingerprint(key)[:16]}; key not pinned: give --trusted-key FINGERPRINT); "
        "7 exported events proven included in signed checkpoint #1"
    )
    assert one_task["proofs"]["count"] == 7
    assert [
        line["version"] for line in map(json.loads, (tmp_path / "t1" / "events.jsonl").read_text().splitlines())
    ] == [1, 2, 3, 4, 5, 6, 7]
    assert one_task["scope"] == {"kind": "task", "id": str(history.t1)}

    by_directive = ai.verify_export(tmp_path / "d")
    assert (by_directive.ok, by_directive.events, by_directive.aggregates) == (True, 11, 3)
    assert by_directive.checkpoints_proven == {1: 11}
    assert set(directive["aggregates"]) == {str(history.directive), str(history.t1), str(history.t2)}


def test_an_edited_export_fails_naming_what(history: History, key: Any, tmp_path: Path) -> None:
    ai.seal(history.app, key)
    ai.export(history.app, tmp_path / "x", key=key)
    events = tmp_path / "x" / "events.jsonl"
    original = events.read_bytes()
    assert original.count(b"half of it is done") == 1
    events.write_bytes(original.replace(b"half of it is done", b"half of it is dune"))

    report = ai.verify_export(tmp_path / "x")

    assert problems(report)[0] == (
        f"Task {history.t1} version 3 (position 5, line 5): content does not match its hash (the stored event was "
        "altered)"
    )
    assert problems(report)[1].startswith("export: events.jsonl was changed after the export: its SHA-256 ")
    assert len(report.problems) == 2

    # a manifest edited by hand (the count of t1's events)
    events.write_bytes(original)
    manifest_path = tmp_path / "x" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["aggregates"][str(history.t1)]["events"] = 8
    manifest_path.write_text(json.dumps(manifest, indent=2))
    assert problems(ai.verify_export(tmp_path / "x")) == [
        "export: manifest.json was edited: its signature does not verify",
        f"export: aggregate {history.t1}: the manifest says events 8, events.jsonl gives 7",
    ]

    # a line removed (and the manifest left alone)
    manifest["aggregates"][str(history.t1)]["events"] = 7
    manifest_path.write_text(json.dumps(manifest, indent=2))
    assert ai.verify_export(tmp_path / "x").ok
    lines = original.splitlines(keepends=True)
    events.write_bytes(b"".join(lines[:5] + lines[6:]))
    removed = problems(ai.verify_export(tmp_path / "x"))
    assert removed[0] == f"Task {history.t1} version 4: version 4 is missing (next stored is 5, at position 7, line 6)"
    assert "checkpoint #1 (positions 1-12, 12 events): 1 of its 12 sealed events are missing from the log" in (
        " ".join(removed)
    )


def test_a_partial_export_proves_its_events_against_the_signed_checkpoint(
    history: History, store: Store, key: Any, tmp_path: Path
) -> None:
    """A task rewritten in the database after sealing, its chain recomputed: the task's chain is valid,
    so a task export signed later looks sound, but its events are not those that were sealed."""
    ai.seal(history.app, key)
    data = json.loads(store.state(history.t2, 3))
    data["message"] = "nothing to report"
    canonical = audit.canonical_bytes_from_stored(str(history.t2), 3, "domain.task:Task.Urged", data)
    data["hash"] = audit.chain_hash(data["prev_hash"], canonical)
    store.set_state(history.t2, 3, json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
    ai.export(history.app, tmp_path / "t2", task=history.t2, key=key)

    report = ai.verify_export(tmp_path / "t2")

    assert problems(report) == [
        f"checkpoint #1 (positions 1-12, 12 events): 3 of the 3 exported events in its range are not proven included "
        f"in its signed root (first: Task {history.t2} version 1, line 1): the log's events in the range changed "
        "after it was sealed"
    ]
    assert report.checkpoints_proven == {}

    proofs = tmp_path / "t2" / "proofs.jsonl"
    proofs.write_bytes(proofs.read_bytes().replace(b'"L', b'"R', 1))
    assert "export: proofs.jsonl was changed after the export: its SHA-256 is not the manifest's" in problems(
        ai.verify_export(tmp_path / "t2")
    )


def test_an_export_above_the_readers_clearance_is_refused_and_writes_nothing(
    make_ledger: Callable[..., TaskLedger], clock: Clock, key: Any, tmp_path: Path
) -> None:
    app = make_ledger(new_cipher_key())
    directive = app.execute(
        OFFICE, directive_command(None, "01-NQ/TW", confidentiality="confidential", summary=None)
    ).aggregate_id
    clock.advance(minutes=5)
    task = app.execute(OFFICE, c.AssignTask(directive_id=directive, assignee="HN", monitor="BKT")).aggregate_id

    with pytest.raises(NotAuthorized, match=f"Task {task} is confidential; the reader is cleared for regular only"):
        ai.export(app, tmp_path / "out", task=task, key=key, reader_level=Confidentiality.REGULAR)
    assert not (tmp_path / "out").exists()
    assert ai.export(app, tmp_path / "out", task=task, key=key, reader_level=Confidentiality.CONFIDENTIAL)
    with pytest.raises(NotFound):
        ai.export(app, tmp_path / "none", task=UUID(int=1), key=key)


def test_a_whole_log_export_redacts_records_above_the_clearance_and_stays_verifiable(
    make_ledger: Callable[..., TaskLedger],
    clock: Clock,
    register: Callable[..., UUID],
    key: Any,
    tmp_path: Path,
    store: Store,
) -> None:
    app = make_ledger(new_cipher_key())
    regular = register(app)
    clock.advance(minutes=5)
    secret_directive = app.execute(
        OFFICE, directive_command(None, "01-NQ/TW", confidentiality="confidential", summary=None)
    ).aggregate_id
    clock.advance(minutes=5)
    secret = app.execute(OFFICE, c.AssignTask(directive_id=secret_directive, assignee="HN", monitor="BKT")).aggregate_id
    clock.advance(minutes=5)
    app.execute(ASSIGNEE, c.ReceiveTask(task_id=secret))
    ai.seal(app, key)

    manifest = ai.export(app, tmp_path / "x", key=key, reader_level=Confidentiality.REGULAR)

    assert manifest["redacted"] == {"events": 3, "aggregates": {str(secret_directive): 1, str(secret): 2}}
    lines = [json.loads(line) for line in (tmp_path / "x" / "events.jsonl").read_text().splitlines()]
    assert [(line["aggregate_id"], "state" in line) for line in lines] == [
        (lines[0]["aggregate_id"], True),
        (str(regular), True),
        (str(secret_directive), False),
        (str(secret), False),
        (str(secret), False),
    ]
    report = ai.verify_export(tmp_path / "x")
    assert (report.ok, report.events, report.redacted, report.checkpoints_verified) == (True, 5, 3, 1)
    assert report.summary().endswith(
        "3 events are above the reader's clearance: exported without content, their links and checkpoint roots verified"
    )

    # a redacted line whose hash is rewritten: the link to the next event and the sealed root both break
    events = tmp_path / "x" / "events.jsonl"
    edited = json.loads(events.read_text().splitlines()[3])
    text = events.read_text().replace(edited["hash"], "0" * 64, 1)
    events.write_text(text)
    assert problems(ai.verify_export(tmp_path / "x"))[:1] == [
        f"Task {secret} version 2 (position 5, line 5): prev_hash does not link to the previous event "
        "(removed, reordered or rewritten)"
    ]

    # the operator's verify names the broken record; a regular-cleared reader sees its kind and level only
    store.set_state(secret, 2, b"{}")
    report = ai.verify_store(app)
    assert problems(report)[0].startswith(f"Task {secret} version 2 (position 5): the stored state cannot be read")
    assert ai.redact(app, report, Confidentiality.REGULAR) == 1
    assert problems(report)[0].startswith(
        "a confidential Task (id withheld: above your clearance) - version 2 (position 5): the stored state cannot "
    )


# -- the command line ----------------------------------------------------------------------------------------
def cli_env(backend: Backend, home: Path) -> dict[str, str | None]:
    env: dict[str, str | None] = {
        "TASKLEDGER_HOME": str(home),
        "TASKLEDGER_ACTOR": None,
        "TASKLEDGER_CLOCK": None,
        "TASKLEDGER_CIPHER_KEY": None,
        "PERSISTENCE_MODULE": None,
        "SQLITE_DBNAME": None,
        "TASKLEDGER_DATABASE_URL": None,
        "TASKLEDGER_POSTGRES_SCHEMA": None,
    }
    if backend.name == "sqlite":
        env.update(PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=str(backend.sqlite_path))
    else:
        env.update(TASKLEDGER_DATABASE_URL=backend.database_url, TASKLEDGER_POSTGRES_SCHEMA=backend.schema)
    return env


def test_the_audit_commands(history: History, backend: Backend, store: Store, tmp_path: Path) -> None:
    from connectors.cli import app as cli

    runner = CliRunner()
    home = tmp_path / "home"

    def tl(*args: str, env: dict[str, str | None] | None = None) -> Any:
        return runner.invoke(cli, ["audit", *args], env=env or cli_env(backend, home))

    sealed = tl("checkpoint", "--json")
    assert sealed.exit_code == 0, sealed.output
    data = json.loads(sealed.stdout)
    assert [(s["sequence"], s["first_position"], s["last_position"], s["count"]) for s in data["sealed"]] == [
        (1, 1, 12, 12)
    ]
    assert data["key_fingerprint"] == ai.deployment_fingerprint(home / "pki")
    assert json.loads(tl("checkpoint", "--json").stdout)["sealed"] == []

    ok = tl("verify", "--json")
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)
    assert (report["ok"], report["events"], report["aggregates"], report["checkpoints"]["verified"]) == (True, 12, 4, 1)
    human = tl("verify")
    assert human.exit_code == 0
    assert human.stdout.startswith("OK: 12 events of 4 aggregates verified (all); 1 of 1 checkpoints verified")

    exported = tl("export", "--all", "--out", str(tmp_path / "export"), "--actor", AUDITOR, "--json")
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["events"] == 12
    refused = tl("export", "--all", "--out", str(tmp_path / "x"), "--actor", "assignee:HN:binh")
    assert refused.exit_code == 2
    assert "only auditor, inspector, central_office may export audit records" in refused.output

    offline_home = tmp_path / "offline"
    offline = {
        "TASKLEDGER_HOME": str(offline_home),
        "PERSISTENCE_MODULE": None,
        "SQLITE_DBNAME": None,
        "TASKLEDGER_DATABASE_URL": None,
        "TASKLEDGER_POSTGRES_SCHEMA": None,
    }
    verified = tl("verify", "--export", str(tmp_path / "export"), "--json", env=offline)
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["events"] == 12
    assert not offline_home.exists()  # no store was opened

    store.set_state(history.t1, 6, store.state(history.t1, 6).replace(b'"report_no":2', b'"report_no":1'))
    broken = tl("verify", "--json")
    assert broken.exit_code == 1
    first = json.loads(broken.stdout)["first_problem"]
    assert (first["aggregate_id"], first["version"], first["position"]) == (str(history.t1), 6, 8)
    assert tl("verify").stdout.splitlines()[0] == (
        f"TAMPERED: Task {history.t1} version 6 (position 8): content does not match its hash (the stored event "
        "was altered)"
    )
    one = tl("verify", "--task", str(history.t1))
    assert one.exit_code == 1
    assert tl("verify", "--task", str(history.t2)).exit_code == 0
    assert tl("verify", "--task", str(history.t2), "--actor", AUDITOR).exit_code == 0
    not_a_reader = tl("verify", "--actor", "assignee:HN:binh")
    assert not_a_reader.exit_code == 2
    assert "only auditor, inspector, central_office may verify audit records" in not_a_reader.output

    (tmp_path / "export" / "manifest.json").write_text(
        (tmp_path / "export" / "manifest.json").read_text().replace('"count": 12', '"count": 11')
    )
    edited = tl("verify", "--export", str(tmp_path / "export"), env=offline)
    assert edited.exit_code == 1
    assert edited.stdout.splitlines()[0] == "TAMPERED: export: manifest.json was edited: its signature does not verify"
