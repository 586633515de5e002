"""The projector's pure helpers: the published JSON, the clock shared with the parent, the due wakeups."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

import orjson
import pytest
from faust.types import TP

from projections.rows import instant
from streams.projector import dumps, shared_clock, touched_tasks
from streams.timers import due_tasks, unconsumed

TASK = "6f1d7c2e-4b8a-4d3f-9e0c-1a2b3c4d5e6f"


def test_a_status_row_is_published_as_json_with_utc_instants_and_plain_dates() -> None:
    row = {
        "task_id": UUID(TASK),
        "as_of": datetime(2026, 4, 30, 10, 0, tzinfo=UTC) + timedelta(hours=7) - timedelta(hours=7),
        "received_at": instant("2026-04-27T09:30:00+07:00"),  # the row builders give UTC instants
        "clock_met_at": [instant("2026-04-27T09:30:00.250000+07:00"), None],
        "deadline": date(2026, 6, 30),
        "percent": 40,
        "completed_at": None,
    }
    assert orjson.loads(dumps(row)) == {
        "task_id": TASK,
        "as_of": "2026-04-30T10:00:00Z",
        "received_at": "2026-04-27T02:30:00Z",
        "clock_met_at": ["2026-04-27T02:30:00.250000Z", None],
        "deadline": "2026-06-30",
        "percent": 40,
        "completed_at": None,
    }


def test_a_stopped_clock_gives_the_child_the_parents_instant_exactly() -> None:
    clock = shared_clock("2026-04-30T10:00:00+07:00@0", origin_wall=time.time() - 3600)
    assert clock() == datetime(2026, 4, 30, 3, 0, tzinfo=UTC)


def test_a_child_started_later_reads_the_parents_accelerated_clock() -> None:
    """The parent started its 60x clock 10 s (wall) ago: the child's clock reads 600 s past the start, not 0."""
    start = datetime(2026, 4, 30, 3, 0, tzinfo=UTC)
    before = time.time()
    clock = shared_clock(f"{start.isoformat()}@60", origin_wall=before - 10)
    elapsed = (clock() - start).total_seconds()
    assert 600 <= elapsed <= 600 + 60 * (time.time() - before) + 1e-3


def test_only_task_envelopes_are_evaluated() -> None:
    envelopes = [
        {"aggregate_type": "Task", "aggregate_id": TASK},
        {"aggregate_type": "Directive", "aggregate_id": "11111111-1111-4111-8111-111111111111"},
        {"aggregate_type": "Task", "aggregate_id": TASK},
    ]
    assert touched_tasks(envelopes) == {UUID(TASK)}


def test_due_tasks_are_those_whose_wakeup_has_passed_earliest_first_and_bounded() -> None:
    states = {
        b"a": {"wake": "2026-04-28T03:00:00+00:00"},
        b"b": {"wake": "2026-04-28T02:59:59.999999+00:00"},
        b"c": {"wake": "2026-04-28T03:00:00.000001+00:00"},  # one microsecond in the future
        b"d": {"wake": None},  # nothing left to raise
        b"e": None,
        b"f": {"wake": "2026-04-27T01:00:00+00:00"},
    }
    now = datetime(2026, 4, 28, 10, 0, tzinfo=UTC) - timedelta(hours=7)
    assert due_tasks(states, now) == ["f", "b", "a"]
    assert due_tasks(states, now, limit=2) == ["f", "b"]


class _Consumer:
    """The three things ``unconsumed`` reads from faust's consumer (its assignment, the high watermark of
    each partition from the last fetch, the committed offsets faust keeps): plain data, no broker."""

    def __init__(self, high: dict[TP, int], committed: dict[TP, int]) -> None:
        self.high, self._committed_offset = high, committed

    def assignment(self) -> set[TP]:
        return set(self.high)

    def highwater(self, tp: TP) -> int:
        return self.high[tp]


def test_the_watchdog_sees_partitions_whose_records_wait_unconsumed() -> None:
    events = [TP("taskledger.events.v1", p) for p in range(4)]
    changelog = TP("taskledger-worker-task-state-changelog", 0)
    consumer = _Consumer(
        {events[0]: 8, events[1]: 5, events[2]: 3, events[3]: -1, changelog: 9},
        {events[0]: 7, events[1]: 5, events[2]: 0},
    )
    seen = {events[2]: 2}  # partition 2: offsets 0..2 consumed since the start
    # partition 0: committed 7 (next to read), record 7 waits; partition 1: at its end; 2: consumed to the end;
    # 3: never fetched; the changelog is not the events topic
    assert unconsumed(consumer, seen, "taskledger.events.v1") == {events[0]: (7, 8)}
    assert unconsumed(consumer, {events[0]: 7, **seen}, "taskledger.events.v1") == {}


def test_the_memoised_partitioner_agrees_with_the_producers_own() -> None:
    """The projector names the partition of each status / alert message itself (memoised per task key);
    it must be the one kafka-python's DefaultPartitioner (the Java client's murmur2 rule) would pick."""
    from kafka.partitioner.default import DefaultPartitioner

    from connectors.settings import Settings
    from streams.projector import Projector

    class Cluster:  # the two metadata reads DefaultPartitioner makes
        def __init__(self, count: int) -> None:
            self.count = count

        def topics(self) -> set[str]:
            return {"t"}

        def partitions_for_topic(self, topic: str) -> set[int]:
            return set(range(self.count))

        available_partitions_for_topic = partitions_for_topic

    class Producer:
        def __init__(self, count: int) -> None:
            self.count = count

        def partitions_for(self, topic: str) -> set[int]:
            return set(range(self.count))

    projector = Projector(Settings(), 0.0)
    keys = [str(UUID(int=i * 7919 + 1)).encode() for i in range(500)]
    for count in (6, 3, 12):
        projector.producer = Producer(count)
        at = projector._partitioner("t")
        expected = [DefaultPartitioner().partition("t", k, k, None, None, Cluster(count)) for k in keys]
        assert [at(k) for k in keys] == expected
        assert [at(k) for k in keys] == expected  # memoised: same answers
    assert len(set(expected)) == 12  # the keys spread over every partition


def test_a_worker_batch_below_one_is_refused_naming_the_setting() -> None:
    import pydantic

    from connectors.settings import Settings

    with pytest.raises(pydantic.ValidationError) as refused:
        Settings(worker_batch=0)
    (error,) = refused.value.errors()
    assert error["loc"] == ("worker_batch",)
    assert error["type"] == "greater_than_equal"
    assert Settings(worker_batch=500).worker_batch == 500
