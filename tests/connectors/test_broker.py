"""The dev broker and the Kafka helpers, on a real tansu broker (no mocks)."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from connectors.broker import BrokerError, DevBroker, free_port, restart_empty, start_dev_broker
from connectors.kafka import (
    ALERTS_TOPIC,
    EVENTS_TOPIC,
    STATUS_TOPIC,
    TopicSpec,
    end_offsets,
    ensure_topics,
    format_event,
    producer,
    read_all,
    subscribe,
    topic_specs,
)
from domain.contract import encode, event_id_for, kafka_key

# Until tests/conftest.py lists it; registering a plugin twice is a no-op for pytest.
pytest_plugins = ["tests.kafka_fixtures"]

ROOT = Path(__file__).resolve().parents[2]
TASK_A = UUID("00000000-0000-4000-8000-00000000000a")
TASK_B = UUID("00000000-0000-4000-8000-00000000000b")
TASK_C = UUID("00000000-0000-4000-8000-00000000000c")


def envelope(aggregate_id: UUID, version: int, position: int, type_: str) -> dict[str, Any]:
    """The header of a contract v1 message (payload left empty: these tests do not read it)."""
    return {
        "contract_version": 1,
        "event_id": str(event_id_for(aggregate_id, version)),
        "aggregate_type": "Task",
        "aggregate_id": str(aggregate_id),
        "version": version,
        "position": position,
        "type": type_,
        "occurred_at": "2026-04-24T08:00:00Z",
        "recorded_at": "2026-04-24T08:00:00Z",
        "actor": {"role": "central_office", "agency": "VPTW", "user": "an"},
        "confidentiality": "regular",
        "calendar_version": 1,
        "command_id": None,
        "payload": {},
    }


def publish(bootstrap: str, events: list[dict[str, Any]], topic: str = EVENTS_TOPIC) -> None:
    out = producer(bootstrap)
    try:
        for event in events:
            out.send(topic, key=kafka_key(event["aggregate_id"]), value=encode(event))
        out.flush()
    finally:
        out.close()


# -- topics ----------------------------------------------------------------------------------------
def test_ensure_topics_creates_the_three_topics_once(fresh_broker: DevBroker) -> None:
    created = ensure_topics(fresh_broker.bootstrap, topic_specs())

    assert created == [EVENTS_TOPIC, ALERTS_TOPIC, STATUS_TOPIC]
    assert [len(end_offsets(fresh_broker.bootstrap, t)) for t in created] == [6, 6, 6]
    assert ensure_topics(fresh_broker.bootstrap, topic_specs()) == []


def test_topic_specs_keep_events_forever_and_compact_status() -> None:
    specs = {s.name: s.config for s in topic_specs()}

    assert specs == {
        "taskledger.events.v1": {"cleanup.policy": "delete", "retention.ms": "-1"},
        "taskledger.alerts.v1": {"cleanup.policy": "delete", "retention.ms": "-1"},
        "taskledger.task-status.v1": {"cleanup.policy": "compact"},
    }


def test_end_offsets_of_a_missing_topic_is_empty(kafka_broker: DevBroker) -> None:
    assert end_offsets(kafka_broker.bootstrap, "test.no-such-topic") == {}


# -- producing and reading -------------------------------------------------------------------------
def test_a_thousand_keyed_messages_are_all_read_back_in_per_key_order(
    kafka_broker: DevBroker,
) -> None:
    topic = "test.keyed-order"
    ensure_topics(kafka_broker.bootstrap, [TopicSpec(topic, 6)])
    out = producer(kafka_broker.bootstrap)
    for seq in range(1000):
        key = f"task-{seq % 37}"
        out.send(topic, key=key.encode(), value=f"{key}:{seq}".encode())
    out.flush()
    out.close()

    ends = end_offsets(kafka_broker.bootstrap, topic)
    records = read_all(kafka_broker.bootstrap, topic)

    assert sorted(ends) == [0, 1, 2, 3, 4, 5] and sum(ends.values()) == 1000
    assert len(records) == 1000
    seqs: dict[bytes, list[int]] = defaultdict(list)
    partitions: dict[bytes, set[int]] = defaultdict(set)
    for r in records:
        seqs[r.key].append(int(r.value.split(b":")[1]))
        partitions[r.key].add(r.partition)
    assert len(seqs) == 37
    assert all(s == sorted(s) for s in seqs.values())
    assert all(len(p) == 1 for p in partitions.values())
    assert sorted(x for s in seqs.values() for x in s) == list(range(1000))


def test_end_offsets_count_the_whole_last_batch(kafka_broker: DevBroker) -> None:
    # tansu's ListOffsets answers the last batch's base offset + 1 (here 21); the real end is 30
    topic = "test.three-batches"
    ensure_topics(kafka_broker.bootstrap, [TopicSpec(topic, 1)])
    out = producer(kafka_broker.bootstrap)
    for batch in range(3):
        for i in range(10):
            out.send(topic, value=f"{batch}-{i}".encode())
        out.flush()
    out.close()

    assert end_offsets(kafka_broker.bootstrap, topic) == {0: 30}
    assert len(read_all(kafka_broker.bootstrap, topic)) == 30


# -- broker lifecycle ------------------------------------------------------------------------------
def test_restart_empty_loses_every_topic_and_keeps_the_port(
    fresh_broker: DevBroker, request: pytest.FixtureRequest
) -> None:
    ensure_topics(fresh_broker.bootstrap, topic_specs())
    publish(fresh_broker.bootstrap, [envelope(TASK_A, 1, 1, "TaskAssigned")])

    restarted = restart_empty(fresh_broker)
    request.addfinalizer(restarted.stop)

    assert restarted.port == fresh_broker.port and not fresh_broker.running
    assert end_offsets(restarted.bootstrap, EVENTS_TOPIC) == {}
    assert ensure_topics(restarted.bootstrap, topic_specs()) == [
        EVENTS_TOPIC,
        ALERTS_TOPIC,
        STATUS_TOPIC,
    ]
    assert sum(end_offsets(restarted.bootstrap, EVENTS_TOPIC).values()) == 0


def test_a_port_held_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(BrokerError, match=f"port {port} is held by another process"):
            start_dev_broker(port, log_path=tmp_path / "broker.log", ready_timeout=1.0)


# -- subscribe -------------------------------------------------------------------------------------
def mixed_events() -> list[dict[str, Any]]:
    """20 events: per task TaskAssigned (v1) then ProgressReported v2..v?; 3 tasks, positions 1..20."""
    events, versions = [], {TASK_A: 0, TASK_B: 0, TASK_C: 0}
    for position in range(1, 21):
        task = (TASK_A, TASK_B, TASK_C)[position % 3]
        versions[task] += 1
        type_ = "TaskAssigned" if versions[task] == 1 else "ProgressReported"
        events.append(envelope(task, versions[task], position, type_))
    return events


def test_subscribe_prints_exactly_n_json_lines_of_the_wanted_type(fresh_broker: DevBroker) -> None:
    ensure_topics(fresh_broker.bootstrap, topic_specs())
    publish(fresh_broker.bootstrap, mixed_events())
    out = io.StringIO()

    printed = subscribe(
        fresh_broker.bootstrap,
        group=None,
        from_beginning=True,
        types=["ProgressReported"],
        as_json=True,
        out=out,
        max_messages=5,
    )

    lines = out.getvalue().splitlines()
    assert printed == 5 and len(lines) == 5
    assert [json.loads(line)["type"] for line in lines] == ["ProgressReported"] * 5


def test_subscribe_with_a_group_resumes_after_what_it_handled(fresh_broker: DevBroker) -> None:
    ensure_topics(fresh_broker.bootstrap, topic_specs())
    publish(fresh_broker.bootstrap, mixed_events())

    def run(n: int) -> list[int]:
        out = io.StringIO()
        subscribe(
            fresh_broker.bootstrap,
            group="resume",
            from_beginning=True,
            types=[],
            as_json=True,
            out=out,
            max_messages=n,
            idle_timeout_s=5,
        )
        return [json.loads(line)["position"] for line in out.getvalue().splitlines()]

    first, second = run(8), run(12)

    assert len(first) == 8 and len(second) == 12
    assert sorted(first + second) == list(range(1, 21))


def test_subscribe_stops_when_idle(fresh_broker: DevBroker) -> None:
    ensure_topics(fresh_broker.bootstrap, topic_specs())
    publish(fresh_broker.bootstrap, mixed_events())

    printed = subscribe(
        fresh_broker.bootstrap,
        group=None,
        from_beginning=False,
        types=[],
        as_json=False,
        out=io.StringIO(),
        idle_timeout_s=0.5,
    )

    assert printed == 0  # "latest" starts after the 20 events already there


def test_a_readable_line_shows_position_time_type_aggregate_version_and_actor() -> None:
    line = format_event(envelope(TASK_A, 3, 42, "TaskReceived"))

    assert line == (
        "42  2026-04-24T08:00:00Z  TaskReceived  00000000-0000-4000-8000-00000000000a v3  central_office:VPTW:an"
    )


# -- the downstream example of docs/downstream.md --------------------------------------------------
def test_the_downstream_example_prints_each_event_once(fresh_broker: DevBroker) -> None:
    ensure_topics(fresh_broker.bootstrap, topic_specs())
    events = [
        envelope(TASK_A, 1, 1, "TaskAssigned"),
        envelope(TASK_B, 1, 2, "TaskAssigned"),
        envelope(TASK_A, 2, 3, "TaskReceived"),
    ]
    publish(fresh_broker.bootstrap, events + events)  # every event delivered twice
    env = dict(
        os.environ,
        BOOTSTRAP=fresh_broker.bootstrap,
        MAX_MESSAGES="6",
        IDLE_TIMEOUT_S="10",
        SESSION_TIMEOUT_MS="2000",
    )

    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "downstream_example.py")],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == [
        "TaskAssigned 00000000-0000-4000-8000-00000000000a",
        "TaskAssigned 00000000-0000-4000-8000-00000000000b",
        "TaskReceived 00000000-0000-4000-8000-00000000000a",
    ]


def test_the_example_in_the_docs_is_the_tested_file() -> None:
    doc = (ROOT / "docs" / "downstream.md").read_text(encoding="utf-8")
    example = (ROOT / "docs" / "downstream_example.py").read_text(encoding="utf-8")

    assert f"```python\n{example}```" in doc


def test_the_foreground_broker_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    code = f"from connectors.broker import run_foreground; raise SystemExit(run_foreground({port}))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == f"broker ready on 127.0.0.1:{port}\n"
        assert end_offsets(f"127.0.0.1:{port}", EVENTS_TOPIC) == {}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()
        proc.wait()
    with socket.socket() as probe:  # the broker is gone: its port is free again
        assert probe.connect_ex(("127.0.0.1", port)) != 0
