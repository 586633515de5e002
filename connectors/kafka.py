"""Kafka helpers (kafka-python): topic specs, producer and consumer factories, offsets, reading, subscribing.

Shared by the relay (event store -> ``taskledger.events.v1``), the ``taskledger subscribe`` command and
the tests. Works against any Kafka-API broker; two quirks of the dev broker (tansu) shape the code:

* ``ListOffsets(latest)`` reports *the base offset of the last record batch + 1*, not the end of the
  log (measured: 30 records in 3 batches of 10 -> 21). The fetch response's high watermark is exact, so
  :func:`end_offsets` reads it by fetching the last batch. On a real Kafka broker the result is the same.
  Consequence for ``auto_offset_reset="latest"``: a *new* group may first receive the tail of the last
  batch already in the log (harmless under at-least-once; group-less readers seek to the true end).
* Group joins take about ``session_timeout_ms / 2``; with kafka-python's defaults (10 s session, 3 s
  heartbeat) a join did not complete within 20 s. :func:`consumer` therefore uses 2 s / 0.5 s. A real
  Kafka cluster refuses sessions below ``group.min.session.timeout.ms`` (6 s by default): pass
  ``session_timeout_ms=10000, heartbeat_interval_ms=3000`` there.

Producer choice: idempotence ON with up to 5 requests in flight. Verified on tansu: InitProducerId
(v3+) hands out producer ids, a re-sent batch is refused as DUPLICATE_SEQUENCE_NUMBER (which
kafka-python counts as success) and a sequence gap as OUT_OF_ORDER_SEQUENCE_NUMBER, so retries can
neither duplicate nor reorder records of a partition; per-key order holds with retries.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.partitioner.default import DefaultPartitioner, murmur2
from kafka.structs import OffsetAndMetadata

from connectors.errors import ConnectorError

try:  # the contract owns the names; fall back to the same literals while it is not importable
    from domain.contract import ALERTS_TOPIC, EVENTS_TOPIC, STATUS_TOPIC
except ImportError:  # pragma: no cover - only before domain/contract.py exists
    EVENTS_TOPIC = "taskledger.events.v1"
    ALERTS_TOPIC = "taskledger.alerts.v1"
    STATUS_TOPIC = "taskledger.task-status.v1"

__all__ = [
    "ALERTS_TOPIC",
    "EVENTS_TOPIC",
    "STATUS_TOPIC",
    "KafkaConnectorError",
    "TopicSpec",
    "consumer",
    "end_offsets",
    "ensure_topics",
    "format_event",
    "producer",
    "read_all",
    "subscribe",
    "topic_specs",
]

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 6
SESSION_TIMEOUT_MS = 2000
HEARTBEAT_INTERVAL_MS = 500
_CLIENT_ID = "taskledger"


class KafkaConnectorError(ConnectorError):
    """A Kafka operation of taskledger failed; the message says what to check."""


# -- topics ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TopicSpec:
    """A topic as taskledger creates it. The partition count is fixed for the topic's life: adding
    partitions later moves keys to other partitions and breaks per-task order."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    replication_factor: int = 1


def topic_specs(partitions: int = DEFAULT_PARTITIONS) -> list[TopicSpec]:
    """The three published topics. Events and alerts are kept forever (the log is the contract);
    task status is compacted to the latest status per task."""
    keep_forever = {"cleanup.policy": "delete", "retention.ms": "-1"}
    return [
        TopicSpec(EVENTS_TOPIC, partitions, dict(keep_forever)),
        TopicSpec(ALERTS_TOPIC, partitions, dict(keep_forever)),
        TopicSpec(STATUS_TOPIC, partitions, {"cleanup.policy": "compact"}),
    ]


def _admin(bootstrap: str) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(bootstrap_servers=bootstrap, client_id=f"{_CLIENT_ID}-admin")
    except KafkaError as error:
        raise KafkaConnectorError(f"cannot reach Kafka at {bootstrap}: {error}; is the broker running?") from error


def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec]) -> list[str]:
    """Create the topics of ``specs`` that do not exist yet, with their configs; return the names
    created. A topic created concurrently by someone else counts as existing."""
    admin = _admin(bootstrap)
    try:
        existing = set(admin.list_topics())
        created: list[str] = []
        for spec in specs:
            if spec.name in existing:
                continue
            topic = NewTopic(spec.name, spec.partitions, spec.replication_factor, topic_configs=dict(spec.config))
            try:  # one request per topic: an "already exists" race must not hide the others' outcome
                admin.create_topics([topic])
            except TopicAlreadyExistsError:
                continue
            except KafkaError as error:
                raise KafkaConnectorError(f"cannot create topic {spec.name} on {bootstrap}: {error}") from error
            created.append(spec.name)
        if created:
            log.info("created topics %s on %s", created, bootstrap)
        return created
    finally:
        admin.close()


# -- clients ---------------------------------------------------------------------------------------
def producer(bootstrap: str, **overrides: Any) -> KafkaProducer:
    """A producer for the published topics: bytes key and value, acks from all replicas, idempotent
    (see the module docstring), unlimited retries within ``delivery_timeout_ms`` (120 s): a record
    whose future fails was not written and must be sent again by the caller. Never creates topics."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": f"{_CLIENT_ID}-producer",
        "acks": "all",
        "enable_idempotence": True,
        "retries": sys.maxsize,
        "max_in_flight_requests_per_connection": 5,
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "compression_type": None,
        "allow_auto_create_topics": False,
    }
    config.update(overrides)
    return KafkaProducer(**config)


def consumer(
    bootstrap: str, *, group: str | None, from_beginning: bool, topics: list[str], **overrides: Any
) -> KafkaConsumer:
    """A consumer subscribed to ``topics``. With a ``group``, offsets are committed automatically and
    a known group resumes where it stopped; ``from_beginning`` only decides where a group without
    committed offsets (or a group-less consumer) starts. Values and keys are bytes."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": f"{_CLIENT_ID}-consumer",
        "group_id": group,
        "auto_offset_reset": "earliest" if from_beginning else "latest",
        "enable_auto_commit": group is not None,
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
        "allow_auto_create_topics": False,
        # The dev broker does not answer a waiting fetch early when records arrive: a short wait
        # keeps command-to-consumer lag low (measured p50 ~135 ms at 500 ms, ~10 ms at 10-50 ms).
        "fetch_max_wait_ms": 50,
    }
    config.update(overrides)
    return KafkaConsumer(*topics, **config)


def _reader(bootstrap: str, **overrides: Any) -> KafkaConsumer:
    """A group-less consumer for manual assignment (offset look-ups, full reads)."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": f"{_CLIENT_ID}-reader",
        "group_id": None,
        "enable_auto_commit": False,
        "allow_auto_create_topics": False,
        "fetch_max_wait_ms": 20,
    }
    config.update(overrides)
    try:
        return KafkaConsumer(**config)
    except KafkaError as error:
        raise KafkaConnectorError(f"cannot reach Kafka at {bootstrap}: {error}; is the broker running?") from error


def _partitions(reader: KafkaConsumer, topic: str) -> list[TopicPartition]:
    reader.topics()  # refresh metadata: partitions_for_topic only reads the cache
    return [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())]


def _true_ends(reader: KafkaConsumer, tps: list[TopicPartition], timeout_s: float) -> dict[TopicPartition, int]:
    """High watermarks of ``tps``: the ListOffsets answer where it is 0, else the fetch high watermark
    read by fetching from just before the listed end (tansu lists the last batch's base offset + 1)."""
    listed = reader.end_offsets(tps)
    ends = {tp: 0 for tp in tps if listed[tp] <= 0}
    pending = [tp for tp in tps if listed[tp] > 0]
    if not pending:
        return ends
    reader.assign(pending)
    for tp in pending:
        reader.seek(tp, listed[tp] - 1)
    deadline = time.monotonic() + timeout_s
    while True:
        reader.poll(timeout_ms=50, max_records=1, update_offsets=False)
        waiting = [tp for tp in pending if reader.highwater(tp) is None]
        if not waiting:
            break
        if time.monotonic() > deadline:
            raise KafkaConnectorError(f"no high watermark for {waiting} within {timeout_s} s")
    ends.update({tp: int(reader.highwater(tp)) for tp in pending})
    reader.assign([])
    return ends


class EndOffsets:
    """A long-lived reader for repeated high-watermark checks (a new consumer per check costs
    ~100 ms of connection and metadata; a reused one answers in ~5 ms)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._reader: KafkaConsumer | None = None

    def __call__(self, topic: str, timeout_s: float = 10.0) -> dict[int, int]:
        try:
            if self._reader is None:
                self._reader = _reader(self.bootstrap)
            tps = _partitions(self._reader, topic)
            if not tps:
                return {}
            return {tp.partition: end for tp, end in _true_ends(self._reader, tps, timeout_s).items()}
        except Exception:
            self.close()  # a broken connection (e.g. the broker restarted): reconnect next time
            raise

    def close(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.close()


class CachedMurmur2Partitioner(DefaultPartitioner):
    """kafka-python's default partitioner with each key's murmur2 hash cached (the pure-Python hash
    costs ~6 us a key, as much as building the whole message). Partition ids are 0..n-1, so
    ``h % n`` is the default's choice for every key; n is read per call."""

    CACHE_LIMIT = 200_000

    def __init__(self) -> None:
        self._hash: dict[bytes, int] = {}

    def partition(
        self, topic: str, key: Any, serialized_key: bytes | None, value: Any, serialized_value: Any, cluster: Any
    ) -> int:
        if serialized_key is None:
            return super().partition(topic, key, serialized_key, value, serialized_value, cluster)
        h = self._hash.get(serialized_key)
        if h is None:
            if len(self._hash) >= self.CACHE_LIMIT:
                self._hash.clear()
            h = self._hash[serialized_key] = murmur2(serialized_key) & 0x7FFFFFFF
        partitions = cluster.partitions_for_topic(topic)
        if partitions is None:
            raise ValueError(f"Topic {topic} not found in ClusterMetadata")
        return h % len(partitions)


def end_offsets(bootstrap: str, topic: str, timeout_s: float = 10.0) -> dict[int, int]:
    """Partition -> high watermark (the offset the next record will get; 0 for an empty partition);
    ``{}`` when the topic does not exist."""
    reader = _reader(bootstrap)
    try:
        tps = _partitions(reader, topic)
        if not tps:
            return {}
        return {tp.partition: end for tp, end in _true_ends(reader, tps, timeout_s).items()}
    finally:
        reader.close()


def read_all(bootstrap: str, topic: str, timeout_s: float = 30) -> list[ConsumerRecord]:
    """Every record of ``topic`` up to the end offsets seen at the start, without a group; ordered by
    partition then offset. ``[]`` for a missing or empty topic."""
    deadline = time.monotonic() + timeout_s
    reader = _reader(bootstrap, max_partition_fetch_bytes=8 * 1024 * 1024)
    try:
        tps = _partitions(reader, topic)
        if not tps:
            return []
        ends = {tp: end for tp, end in _true_ends(reader, tps, timeout_s).items() if end > 0}
        if not ends:
            return []
        records: dict[TopicPartition, list[ConsumerRecord]] = {tp: [] for tp in ends}
        reader.assign(list(ends))
        reader.seek_to_beginning(*ends)
        remaining = set(ends)
        while remaining:
            if time.monotonic() > deadline:
                got = sum(len(r) for r in records.values())
                raise KafkaConnectorError(
                    f"read_all({topic}): {got} of {sum(ends.values())} records read within {timeout_s} s"
                )
            for tp, batch in reader.poll(timeout_ms=100).items():
                records[tp].extend(r for r in batch if r.offset < ends[tp])
                if reader.position(tp) >= ends[tp]:
                    remaining.discard(tp)
                    reader.pause(tp)
        return [r for tp in sorted(records, key=lambda t: t.partition) for r in records[tp]]
    finally:
        reader.close()


# -- subscribe -------------------------------------------------------------------------------------
def format_event(event: dict[str, Any]) -> str:
    """``position  occurred_at  type  aggregate_id v<version>  actor`` for one contract message."""
    actor = event.get("actor")
    if isinstance(actor, dict):
        actor = ":".join(str(actor.get(k, "?")) for k in ("role", "agency", "user"))
    return (
        f"{event.get('position', '-')}  {event.get('occurred_at', '-')}  {event.get('type', '-')}  "
        f"{event.get('aggregate_id', '-')} v{event.get('version', '-')}  {actor or '-'}"
    )


def _subscriber(bootstrap: str, group: str | None, from_beginning: bool) -> KafkaConsumer:
    """Group: subscribe (committed offsets win). No group: assign every partition and seek to the
    beginning or to the true end (tansu's "latest" would replay the tail of the last batch)."""
    if group is not None:
        return consumer(
            bootstrap,
            group=group,
            from_beginning=from_beginning,
            topics=[EVENTS_TOPIC],
            enable_auto_commit=False,
        )
    reader = _reader(bootstrap, fetch_max_wait_ms=200)
    tps = _partitions(reader, EVENTS_TOPIC)
    if not tps:
        reader.close()
        raise KafkaConnectorError(
            f"topic {EVENTS_TOPIC} does not exist on {bootstrap}; start the relay (it creates the topics) first"
        )
    if from_beginning:
        reader.assign(tps)
        reader.seek_to_beginning(*tps)
    else:
        ends = _true_ends(reader, tps, 10.0)
        reader.assign(tps)
        for tp, end in ends.items():
            reader.seek(tp, end)
    return reader


def subscribe(
    bootstrap: str,
    *,
    group: str | None,
    from_beginning: bool,
    types: list[str],
    as_json: bool,
    out: TextIO | None = None,
    max_messages: int | None = None,
    idle_timeout_s: float | None = None,
) -> int:
    """Print the events of ``taskledger.events.v1`` as they arrive; return how many were printed.

    ``types`` keeps only those payload types (empty = all). ``as_json`` prints each message value as
    is, one per line; otherwise :func:`format_event`. Stops after ``max_messages`` printed, after
    ``idle_timeout_s`` without any message, or on Ctrl-C. With a group, the offsets of the messages
    handled (printed or filtered out) are committed, so the next run resumes after them. ``out``
    defaults to the current ``sys.stdout``."""
    out = sys.stdout if out is None else out
    wanted = frozenset(types)
    reader = _subscriber(bootstrap, group, from_beginning)
    handled: dict[TopicPartition, OffsetAndMetadata] = {}
    printed = 0
    last_seen = time.monotonic()
    last_commit = last_seen

    def commit() -> None:
        if group is not None and handled:
            reader.commit(dict(handled))
            handled.clear()

    try:
        while max_messages is None or printed < max_messages:
            now = time.monotonic()
            if idle_timeout_s is not None and now - last_seen >= idle_timeout_s:
                break
            batches = reader.poll(timeout_ms=200)
            if batches:
                last_seen = time.monotonic()
            for tp, records in batches.items():
                for record in records:
                    if max_messages is not None and printed >= max_messages:
                        break
                    handled[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
                    if _print_record(record, wanted, as_json, out):
                        printed += 1
            out.flush()
            if now - last_commit >= 1.0:
                commit()
                last_commit = now
    except KeyboardInterrupt:
        pass
    finally:
        try:
            commit()
        finally:
            reader.close()
    return printed


def _print_record(record: ConsumerRecord, wanted: frozenset[str], as_json: bool, out: TextIO) -> bool:
    if record.value is None:
        return False
    try:
        event = orjson.loads(record.value)
    except orjson.JSONDecodeError:
        log.warning(
            "skipping a message that is not JSON at %s-%s@%s",
            record.topic,
            record.partition,
            record.offset,
        )
        return False
    if not isinstance(event, dict) or (wanted and event.get("type") not in wanted):
        return False
    if as_json:
        out.write(record.value.decode("utf-8").rstrip("\n") + "\n")
    else:
        out.write(format_event(event) + "\n")
    return True
