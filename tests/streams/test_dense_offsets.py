"""Holes in a dense topic's offsets (``streams.transport.DenseOffsets``): records that faust's consumer was not
given are read again, never committed unread.

The pure part (what the consumer does with each record) is checked without a broker; the consumer itself on
the real dev broker, with a fetcher made to jump ahead as faust's start-up race makes it (a SIGKILLed worker's
restart lost 3 of 7,796 events that way, ``test_acceptance.py``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connectors.broker import DevBroker
from connectors.kafka import TopicSpec, ensure_topics
from streams.transport import ACCEPT, DELIVER, DROP, RESEEK, DenseOffsets
from tests.kafka_fixtures import fresh_broker  # noqa: F401  (fixture)
from tests.streams.support import ROOT

TP0 = ("events", 0)
TP1 = ("events", 1)


def test_the_expected_record_is_delivered_and_an_earlier_one_dropped() -> None:
    guard = DenseOffsets()
    assert guard.admit(TP0, 7) == DELIVER  # nothing expected yet (no committed offset): the first record goes
    assert guard.delivered_if(TP0, 7, guard.generation(TP0))
    assert guard.next[TP0] == 8
    assert guard.admit(TP0, 8) == DELIVER
    assert guard.admit(TP0, 5) == DROP  # delivered already
    guard.seeked(TP0, 3)  # sought back to 3; a record fetched before the seek is past it: seek (again), drop it
    assert (guard.admit(TP0, 8), guard.admit(TP0, 9), guard.admit(TP0, 3)) == (RESEEK, DROP, DELIVER)


def test_a_hole_is_read_again_and_the_rest_of_that_fetch_dropped() -> None:
    guard = DenseOffsets()
    guard.seeked(TP0, 10)
    guard.new_fetch()
    assert guard.admit(TP0, 15) == RESEEK  # 10..14 were not given: read from 10 again
    guard.seeked(TP0, 10)  # what the consumer does on RESEEK
    assert [guard.admit(TP0, o) for o in (16, 17)] == [DROP, DROP]  # fetched before the re-seek took effect
    assert guard.admit(TP1, 0) == DELIVER  # other partitions are not affected
    guard.new_fetch()
    assert guard.admit(TP0, 10) == DELIVER
    assert guard.delivered_if(TP0, 10, guard.generation(TP0))
    assert guard.attempts == {}  # the missing offset arrived: the attempts are forgotten


def test_a_hole_that_cannot_be_read_is_accepted_after_max_reseeks_attempts() -> None:
    guard = DenseOffsets(max_reseeks=3)
    guard.seeked(TP0, 10)
    verdicts = []
    for _ in range(4):
        guard.new_fetch()
        verdicts.append(guard.admit(TP0, 15))
        if verdicts[-1] == RESEEK:
            guard.seeked(TP0, 10)
    assert verdicts == [RESEEK, RESEEK, RESEEK, ACCEPT]
    assert guard.delivered_if(TP0, 15, guard.generation(TP0))
    assert (guard.next[TP0], guard.attempts) == (16, {})


def test_a_delivery_suspended_across_a_seek_does_not_write_its_position_back() -> None:
    guard = DenseOffsets()
    guard.seeked(TP0, 100)
    generation = guard.generation(TP0)  # taken before the hand-off, which suspends ...
    guard.seeked(TP0, 40)  # ... while the partition is sought to its committed offset
    assert not guard.delivered_if(TP0, 100, generation)
    assert guard.next[TP0] == 40
    guard.forget([TP0])
    assert (guard.next, guard.generations) == ({}, {})


def produce(bootstrap: str, topic: str, first: int, count: int) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for n in range(first, first + count):
            producer.send(topic, key=b"k", value=str(n).encode(), partition=0)
        producer.flush()
    finally:
        producer.close()


def committed(bootstrap: str, group: str, topic: str) -> int | None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="taskledger-test-dense")
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    except Exception:  # noqa: BLE001 - the group's coordinator is not ready yet
        return None
    finally:
        admin.close()
    return next((meta.offset for tp, meta in offsets.items() if tp.topic == topic), None)


def wait(predicate, timeout: float, what: str, log: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}; probe log:\n{log.read_text(errors='replace')[-5000:]}")


@pytest.mark.parametrize("dense", [True, False], ids=["dense", "faust's-own"])
def test_records_the_fetcher_skipped_are_read_again_before_anything_past_them_is_committed(
    fresh_broker: DevBroker,  # noqa: F811
    tmp_path: Path,
    dense: bool,
) -> None:
    """Offsets 0..9, then the fetcher jumps from 10 to 15, then offsets 10..29 are produced. With the topic
    dense, the consumer sees 15 where 10 was due, reads 10.. again and commits 30 with every offset given to
    the agent. The control, faust's own handling (the same consumer, the topic not declared dense): 10..14
    are never given to the agent and 30 is committed all the same -- the loss this guards against."""
    bootstrap = fresh_broker.bootstrap
    topic = f"probe.{'dense' if dense else 'plain'}"
    ensure_topics(bootstrap, [TopicSpec(topic, 1, {"cleanup.policy": "delete", "retention.ms": "-1"})])
    produce(bootstrap, topic, 0, 10)
    out, log = tmp_path / "offsets.txt", tmp_path / "probe.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKLEDGER_")} | {"PYTHONPATH": str(ROOT)}
    args = [bootstrap, topic, str(out), str(tmp_path / "faust"), "1" if dense else "0", "9", "15"]
    with log.open("ab") as sink:
        probe = subprocess.Popen(
            [sys.executable, "-m", "tests.streams.hole_probe", *args], cwd=str(ROOT), env=env, stdout=sink,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait(lambda: out.exists() and "skipped" in out.read_text(), 90, "offsets 0..9 and the jump", log)
        produce(bootstrap, topic, 10, 20)
        wait(lambda: committed(bootstrap, f"probe-{topic}", topic) == 30, 90, "offset 30 committed", log)
        probe.send_signal(signal.SIGTERM)
        assert probe.wait(30) == 0, log.read_text(errors="replace")[-4000:]
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()
    given = [int(line) for line in out.read_text().split() if line.isdigit()]
    text = log.read_text(errors="replace")
    assert given[:10] == list(range(10))
    if dense:
        assert sorted(set(given)) == list(range(30))
        assert "probe.dense[0]: offset 15 arrived where 10 was due; reading from 10 again" in text
    else:
        assert sorted(set(given)) == [*range(10), *range(15, 30)]
        assert "arrived where" not in text
