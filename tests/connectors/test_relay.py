"""The relay on a real Kafka-API broker (tansu) and a real event store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import jsonschema
import pytest

from connectors.broker import DevBroker, restart_empty
from connectors.kafka import end_offsets, read_all
from connectors.relay import Relay
from domain import commands as c
from domain.application import TaskLedger
from domain.contract import EVENTS_TOPIC, event_id_for
from domain.values import CONTENT_FIELDS
from tests.conftest import APPROVER, ASSIGNEE, OFFICE, new_cipher_key
from tests.kafka_fixtures import fresh_broker  # noqa: F401  (fixture)

SCHEMA = json.loads((Path(__file__).parents[2] / "docs/contract/taskledger.events.v1.schema.json").read_text())
RELAY_NAME = "relay:" + EVENTS_TOPIC


def load(app: TaskLedger, directive_id: UUID, tasks: int, prefix: str = "t") -> int:
    """tasks × 6 commands (assign, receive, report, approve, report, approve), in batches."""
    batch: list[tuple[Any, c.Command]] = []
    appended = 0
    for i in range(tasks):
        cid = f"{prefix}{i}"
        task_id = app.execute_batch(
            [
                (
                    OFFICE,
                    c.AssignTask(
                        directive_id=directive_id, content=f"task {i}", assignee="HN", monitor="BKT", command_id=cid
                    ),
                )
            ]
        )[0].aggregate_id
        batch += [
            (ASSIGNEE, c.ReceiveTask(task_id=task_id)),
            (ASSIGNEE, c.ReportProgress(task_id=task_id, percent=40, note="half way")),
            (APPROVER, c.ApproveProgress(task_id=task_id)),
            (ASSIGNEE, c.ReportProgress(task_id=task_id, percent=80, note="nearly")),
            (APPROVER, c.ApproveProgress(task_id=task_id)),
        ]
        appended += 1
        if len(batch) >= 1000:
            appended += len(app.execute_batch(batch))
            batch = []
    if batch:
        appended += len(app.execute_batch(batch))
    return appended


def stored_keys(app: TaskLedger) -> list[tuple[str, int]]:
    notes = app.recorder.select_notifications(start=1, limit=10**7)
    return [(str(n.originator_id), n.originator_version) for n in notes]


def published(bootstrap: str) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in read_all(bootstrap, EVENTS_TOPIC, timeout_s=60)]


def assert_topic_mirrors_store(app: TaskLedger, messages: list[dict[str, Any]]) -> None:
    """Every stored event at least once, per aggregate in version order, duplicates identical."""
    assert {(m["aggregate_id"], m["version"]) for m in messages} == set(stored_keys(app))
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in messages:
        by_id[m["event_id"]].append(m)
        assert m["event_id"] == str(event_id_for(UUID(m["aggregate_id"]), m["version"]))
    assert all(all(copy == copies[0] for copy in copies) for copies in by_id.values())
    versions: dict[str, list[int]] = defaultdict(list)
    for m in messages:  # read_all yields each partition in offset order; a key lives in one partition
        versions[m["aggregate_id"]].append(m["version"])
    for seq in versions.values():
        first_seen = list(dict.fromkeys(seq))
        assert first_seen == sorted(first_seen)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_ten_thousand_commands_reach_the_topic_in_order_and_match_the_schema(
    make_ledger: Callable[..., TaskLedger],
    register: Callable[..., UUID],
    fresh_broker: DevBroker,  # noqa: F811
) -> None:
    app = make_ledger()
    commands = 1 + load(app, register(app), 1700)
    assert commands == 10_201
    relay = Relay(app, fresh_broker.bootstrap)
    stats = relay.run(until_caught_up=True)
    relay.close()
    stored = stored_keys(app)
    assert len(stored) == commands + 1  # plus the calendar's establishment
    assert stats.position == app.recorder.max_notification_id() and stats.lag == 0
    assert sum(end_offsets(fresh_broker.bootstrap, EVENTS_TOPIC).values()) == len(stored)
    messages = published(fresh_broker.bootstrap)
    assert len(messages) == len(stored)
    assert_topic_mirrors_store(app, messages)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for m in messages:
        validator.validate(m)
    assert relay.recorded_position() == stats.position


def test_a_relay_killed_mid_stream_resumes_without_a_gap(
    make_ledger: Callable[..., TaskLedger],
    register: Callable[..., UUID],
    backend: Any,
    fresh_broker: DevBroker,  # noqa: F811
) -> None:
    app = make_ledger()
    load(app, register(app), 2000)
    head = app.recorder.max_notification_id()
    env = {**os.environ, **backend.env, "TASKLEDGER_KAFKA_BOOTSTRAP": fresh_broker.bootstrap}
    cmd = [sys.executable, "-m", "connectors.cli", "relay"]
    tracking = app.factory.tracking_recorder()
    proc = subprocess.Popen([*cmd, "--batch", "100"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: (tracking.max_tracking_id(RELAY_NAME) or 0) >= 1000, 60, "the relay to publish 1,000")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    at_kill = tracking.max_tracking_id(RELAY_NAME) or 0
    assert 1000 <= at_kill < head  # killed mid-stream
    done = subprocess.run([*cmd, "--until-caught-up", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["position"] == head
    messages = published(fresh_broker.bootstrap)
    assert len(messages) >= head
    assert_topic_mirrors_store(app, messages)


def test_a_broker_that_comes_back_empty_is_refilled_from_the_store(
    make_ledger: Callable[..., TaskLedger],
    register: Callable[..., UUID],
    fresh_broker: DevBroker,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    app = make_ledger()
    directive = register(app)
    load(app, directive, 300)
    relay = Relay(app, fresh_broker.bootstrap, check_every_s=0.5)
    runner = threading.Thread(target=relay.run, kwargs={"idle_sleep_s": 0.02}, daemon=True)
    runner.start()
    try:
        count = len(stored_keys(app))
        wait_for(
            lambda: sum(end_offsets(fresh_broker.bootstrap, EVENTS_TOPIC).values()) >= count,
            60,
            "the first publication",
        )
        broker = restart_empty(fresh_broker)
        request.addfinalizer(broker.stop)
        load(app, directive, 50, prefix="after")
        total = set(stored_keys(app))
        wait_for(
            lambda: {(m["aggregate_id"], m["version"]) for m in published(broker.bootstrap)} >= total,
            90,
            "the relay to republish everything",
        )
    finally:
        relay.stop()
        runner.join(30)
        relay.close()
    assert relay.stats.republished_from_start >= 1
    assert_topic_mirrors_store(app, published(broker.bootstrap))


def test_confidential_records_carry_no_content_on_the_topic(
    make_ledger: Callable[..., TaskLedger],
    register: Callable[..., UUID],
    fresh_broker: DevBroker,  # noqa: F811
) -> None:
    app = make_ledger(cipher_key=new_cipher_key())
    regular = register(app, "57-NQ/TW", summary="REGULAR-SUMMARY-MARK")
    app.execute(
        OFFICE, c.AssignTask(directive_id=regular, content="REGULAR-CONTENT-MARK", assignee="HN", monitor="BKT")
    )
    secret = app.execute(
        OFFICE,
        c.RegisterDirective(
            symbol="01-NQ/TW-M",
            title="CONF-TITLE-MARK",
            issued_on="2026-04-22",
            signer="To Lam",
            issuing_body="Politburo",
            presenting_body="Central Party Office",
            confidentiality="confidential",
        ),
    ).aggregate_id
    task = app.execute(OFFICE, c.AssignTask(directive_id=secret, assignee="HN", monitor="BKT")).aggregate_id
    app.execute(ASSIGNEE, c.ReceiveTask(task_id=task))
    app.execute(ASSIGNEE, c.ReportProgress(task_id=task, percent=100))
    app.execute(APPROVER, c.ApproveProgress(task_id=task))
    app.execute(ASSIGNEE, c.CompleteTask(task_id=task))
    relay = Relay(app, fresh_broker.bootstrap)
    relay.run(until_caught_up=True)
    relay.close()
    raw = [r.value for r in read_all(fresh_broker.bootstrap, EVENTS_TOPIC)]
    assert any(b"REGULAR-SUMMARY-MARK" in v for v in raw) and any(b"REGULAR-CONTENT-MARK" in v for v in raw)
    classified = sorted(
        (json.loads(v) for v in raw if b'"confidentiality":"confidential"' in v), key=lambda m: m["position"]
    )
    assert [m["type"] for m in classified] == [
        "DirectiveRegistered",
        "TaskAssigned",
        "TaskReceived",
        "ProgressReported",
        "ProgressApproved",
        "TaskCompleted",
    ]
    assert any(b"CONF-TITLE-MARK" in v for v in raw)  # the title is allowed (SPEC 6)
    for message in classified:
        assert all(message["payload"].get(name) is None for name in CONTENT_FIELDS)
