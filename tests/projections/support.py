"""Shared by the projection and ClickHouse connector tests: a recorded history built through the domain,
its v1 envelopes (as the relay builds them), and a chdb client per test module.

chdb hosts one directory per process: each test module opens ONE engine on its own temporary directory
and closes it at module teardown; tests isolate themselves in a fresh database of that engine.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson

from connectors.pki import init_dev_pki, read_trusted_roots
from domain import commands as c
from domain import contract
from domain.actors import Actor
from domain.application import TaskLedger
from tests.conftest import (
    APPROVER,
    ASSIGNEE,
    CIPHER_TOPIC,
    INSPECTOR,
    MONITOR,
    OFFICE,
    START,
    Clock,
    directive_command,
    new_cipher_key,
    sign_with,
)

TASK_CONTENT = "Draft the provincial digital-transformation plan"
SUBTASK_CONTENT = "Survey the districts"
SECOND_CONTENT = "Second task"
# every free text the history records: none may reach ClickHouse
FREE_TEXTS = (
    TASK_CONTENT,
    SUBTASK_CONTENT,
    SECOND_CONTENT,
    "Breakthroughs in science, technology and innovation",  # directive summary
    "partly beyond our competence",
    "narrowed to the provincial plan",
    "reclassified by the office",
    "drafting the outline",
    "the outline v1",
    "please speed up the survey",
    "staff shortage in districts",
    "second two officers",
    "difficulty accepted by the office",
    "Standing Secretariat decision",
    "the survey took longer",
    "the adopted plan",
    "plan adopted by the committee",
    "good work overall",
    "report 1 was misdated",
    "moved for competence",
    "superseded by another task",
    "Notice 1/2026",
)
ASSIGNEE_QN = Actor.parse("assignee:QN:hoa")
APPROVER_QN = Actor.parse("approver:QN:khanh")


@dataclass
class History:
    app: TaskLedger
    clock: Clock
    envelopes: list[dict[str, Any]]
    ids: dict[str, UUID]

    def of_type(self, name: str, aggregate: str | None = None) -> list[dict[str, Any]]:
        key = str(self.ids[aggregate]) if aggregate else None
        return [e for e in self.envelopes if e["type"] == name and (key is None or e["aggregate_id"] == key)]

    def one(self, name: str, aggregate: str | None = None) -> dict[str, Any]:
        found = self.of_type(name, aggregate)
        assert len(found) == 1, (name, aggregate, len(found))
        return found[0]


def stored_envelopes(app: TaskLedger) -> list[dict[str, Any]]:
    """What the relay publishes: every stored event as a v1 envelope, levels kept from creation events."""
    cipher = app.mapper.cipher
    levels: dict[UUID, str | None] = {}
    envelopes = []
    for n in app.recorder.select_notifications(start=1, limit=100_000):
        state = cipher.decrypt(n.state) if cipher else n.state
        if n.topic in contract.CREATION_TOPICS:
            levels[n.originator_id] = contract.confidentiality_of(n.topic, orjson.loads(state))
        envelopes.append(
            contract.envelope_from_stored(
                n.topic, state, n.originator_id, n.originator_version, n.id, levels.get(n.originator_id)
            )
        )
    return envelopes


def record_history(tmp: Path) -> History:
    """One of every event type, each one minute after the previous one, from Friday 2026-04-24 15:01
    local (08:01 UTC): every fact falls on local day 2026-04-24.

    * t1 (regular, HN, provincial_committee, monitor BKT, deadline 2026-06-30): received, objected,
      objection accepted (deadline 2026-07-15, priority key), adjusted (sector 'Science'), subtask to
      HNQ1, progress 40 returned, 50 approved, urged, difficulty, extended to 2026-08-31, delay explained,
      100 approved, completed (on time), evaluated, finding.
    * t2 (regular, DN, no deadline): transferred to HCM, cancelled.
    * t3 (confidential, QN, urgent, deadline 2026-06-30): received, progress 60 approved.
    * directives d1 (regular, signed), d2 (withdrawn), d3 (confidential); one calendar change.
    """
    pki = init_dev_pki(tmp / "pki", now=datetime(2026, 1, 1, tzinfo=START.tzinfo))
    clock = Clock(START)
    app = TaskLedger(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(tmp / "events.sqlite"),
            "CIPHER_TOPIC": CIPHER_TOPIC,
            "CIPHER_KEY": new_cipher_key(),
        },
        clock=clock,
        trusted_roots=read_trusted_roots([pki.trusted_roots]),
    )

    def signed(document: bytes) -> tuple[str, dict[str, Any]]:
        return sign_with(pki, document)

    def run(actor: Actor, command: c.Command) -> UUID:
        clock.advance(minutes=1)
        return app.execute(actor, command).aggregate_id

    d1 = run(OFFICE, directive_command(signed, "57-NQ/TW", number="57", command_id="reg-57"))
    d2 = run(OFFICE, directive_command(signed, "58-NQ/TW"))
    run(OFFICE, c.AmendDirective(directive_id=d1, changes={"number": "57a"}, reason="number corrected"))
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
            changes={"content": TASK_CONTENT + " (narrowed)", "deadline": date(2026, 7, 15), "priority": "key"},
            reason="narrowed to the provincial plan",
        ),
    )
    run(
        OFFICE,
        c.AdjustTask(
            task_id=t1, changes={"scope": "sector", "scope_name": "Science"}, reason="reclassified by the office"
        ),
    )
    sub = run(ASSIGNEE, c.AssignSubtask(parent_id=t1, content=SUBTASK_CONTENT, assignee="HNQ1"))
    run(ASSIGNEE, c.ReportProgress(task_id=t1, percent=40, note="drafting the outline", products="the outline v1"))
    run(APPROVER, c.ReturnProgress(task_id=t1, reason="figures missing"))
    run(ASSIGNEE, c.ReportProgress(task_id=t1, percent=50))
    run(APPROVER, c.ApproveProgress(task_id=t1))
    run(MONITOR, c.UrgeTask(task_id=t1, message="please speed up the survey"))
    run(ASSIGNEE, c.ReportDifficulty(task_id=t1, causes="staff shortage in districts", proposals="second two officers"))
    run(
        OFFICE,
        c.ExtendDeadline(
            task_id=t1,
            deadline=date(2026, 8, 31),
            reason="difficulty accepted by the office",
            authority="Standing Secretariat decision",
        ),
    )
    run(ASSIGNEE, c.ExplainDelay(task_id=t1, explanation="the survey took longer"))
    run(ASSIGNEE, c.ReportProgress(task_id=t1, percent=100, products="the adopted plan"))
    run(APPROVER, c.ApproveProgress(task_id=t1))
    run(ASSIGNEE, c.CompleteTask(task_id=t1, result="plan adopted by the committee", products="the adopted plan"))
    run(OFFICE, c.EvaluateTask(task_id=t1, grade="completed", comment="good work overall"))
    run(INSPECTOR, c.RaiseFinding(task_id=t1, kind="data_error", description="report 1 was misdated"))

    t2 = run(OFFICE, c.AssignTask(directive_id=d1, content=SECOND_CONTENT, assignee="DN", monitor="BKT"))
    run(OFFICE, c.TransferTask(task_id=t2, to="HCM", reason="moved for competence"))
    run(OFFICE, c.CancelTask(task_id=t2, reason="superseded by another task"))

    d3 = run(OFFICE, directive_command(None, "01-NQ/TW", confidentiality="confidential", summary=None))
    t3 = run(
        OFFICE,
        c.AssignTask(
            directive_id=d3,
            assignee="QN",
            assignee_kind="provincial_committee",
            monitor="BKT",
            deadline=date(2026, 6, 30),
            priority="urgent",
        ),
    )
    run(ASSIGNEE_QN, c.ReceiveTask(task_id=t3))
    run(ASSIGNEE_QN, c.ReportProgress(task_id=t3, percent=60))
    run(APPROVER_QN, c.ApproveProgress(task_id=t3))

    clock.advance(minutes=1)
    app.change_calendar(OFFICE, c.ChangeCalendar(add_working_days=[date(2026, 10, 10)], reason="Notice 1/2026"))
    ids = {"d1": d1, "d2": d2, "d3": d3, "t1": t1, "t2": t2, "t3": t3, "sub": sub}
    return History(app, clock, stored_envelopes(app), ids)


# -- chdb ---------------------------------------------------------------------------------------------------------
def open_engine(directory: Path) -> Iterator[Any]:
    """A module's single chdb engine (one clickhouse-connect client), closed at teardown."""
    from connectors.clickhouse import connect

    client = connect(f"chdb://{directory}")
    try:
        yield client
    finally:
        client.close()


def fresh_database(client: Any) -> Iterator[Any]:
    """Switch the module's client to an empty database for one test; drop it afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    client.command(f"CREATE DATABASE {name}")
    client.database = name
    try:
        yield client
    finally:
        client.database = "default"
        client.command(f"DROP DATABASE IF EXISTS {name} SYNC")


def at(minutes: int) -> datetime:
    """START + minutes (UTC)."""
    return START + timedelta(minutes=minutes)
