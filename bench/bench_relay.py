"""Relay throughput (event store -> Kafka), side by side with a raw kafka-python producer sending the
same bytes to the same broker, and the lag from a command to a consumer.

Run from the repository root::

    python -m bench.bench_relay [--events N] [--backend sqlite|postgres] [--json]

One run, one fresh dev broker (tansu, memory storage, a free port; stopped at the end), one fresh
store (SQLite: a temporary file; PostgreSQL: a new schema, dropped at the end):

1. load   ~N events through ``TaskLedger.execute_batch`` (tasks of 6 commands: assign, receive,
          report 40 %, approve, report 80 %, approve), fixed clock, one directive signed by a dev
          PKI. Not timed for the relay figure.
2. relay  ``Relay(app, bootstrap).run(until_caught_up=True)``, timed -> events/s. The topic must then
          hold at least the stored count (sum of the end offsets).
3. raw    the bytes the relay produced (read back with ``read_all``, key + value, put back in the
          relay's send order, i.e. by ``position``) sent again by a plain ``connectors.kafka.producer``
          (the relay's settings: acks=all, idempotence, linger 5 ms, 256 KiB batches) to another
          topic of the same partition count, then one flush, timed -> msg/s. For context: the same
          producer flushing every 2,000 (the relay's cadence), acks=1 without idempotence, and plain
          ``KafkaProducer()`` defaults (kafka-python 3.0.12: acks=all, idempotence, linger 0, 16 KiB).
          Relay and raw runs alternate (``--repeat`` rounds; every further relay run republishes the
          whole store under another relay name); the headline ratio is the median of the rounds.
4. where the relay's time goes: one more relay run whose ``select_notifications``, ``head``,
          ``message`` (envelope build + encode), ``publish`` (send), ``producer.flush``, ``_record``
          (tracking insert) and ``ensure_broker`` calls are timed with ``time.perf_counter``.
5. variants of the relay (bench subclasses; connectors/relay.py is not changed) that test what
          would make it faster, and a cProfile of the relay when the ratio misses 50 % (``--profile``).
6. lag    the relay follows the store in a background thread; a group-less consumer assigned to
          every partition at the true end records when each event_id arrives (``--lag-runs``:
          the relay's ``idle_sleep_s`` 0.05, the default, and 0.01, without the periodic broker
          check, and the consumer's ``fetch_max_wait_ms`` 10 and 500, kafka-python's default);
          ``TaskLedger.execute`` runs single commands at a steady rate
          (``--lag-rate`` per s for ``--lag-seconds``), each timed (perf_counter) before the call;
          lag = arrival - submission, keyed by ``event_id_for(aggregate_id, version)``.

Results: a table (stderr with --json, which prints the JSON on stdout) and
bench/results/relay-<backend>.json.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import Notification
from kafka import KafkaProducer, TopicPartition
from kafka.partitioner.default import DefaultPartitioner, murmur2

from connectors import kafka as k
from connectors.broker import DevBroker, free_port, start_dev_broker
from connectors.eventstore import events_table, persistence_env, query
from connectors.pki import init_dev_pki, read_trusted_roots, sign_document
from connectors.relay import Relay, RelayError
from connectors.settings import Settings
from domain import commands as c
from domain.actors import Actor
from domain.application import TaskLedger
from domain.contract import EVENTS_TOPIC, STORED_TOPICS, event_id_for
from domain.events import task_id_for
from domain.signatures import document_digest
from domain.values import Confidentiality

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET = 0.50
PARTITIONS = 6  # the relay's default; the raw topics get the same count
RELAY_BATCH = 2000  # the relay's default batch
EVENTS_PER_TASK = 6
RAW_TOPIC_CONFIG = {"cleanup.policy": "delete", "retention.ms": "-1"}

# Fixed business time and PKI dates (as tests/conftest.py: the clock never moves).
START = datetime(2026, 4, 24, 8, 0, tzinfo=UTC)
PKI_AT = datetime(2026, 1, 1, tzinfo=UTC)
SIGNED_AT = datetime(2026, 4, 1, tzinfo=UTC)
OFFICE = Actor.parse("central_office:VPTW:an")
ASSIGNEE = Actor.parse("assignee:HN:binh")
APPROVER = Actor.parse("approver:HN:chi")

# Variables that would silently change what is measured (cipher, compressor, another store, cache
# settings; eventsourcing lets os.environ override the application's env): dropped in this process.
_SCRUBBED_PREFIXES = (
    "PERSISTENCE_MODULE",
    "SQLITE_",
    "POSTGRES_",
    "CIPHER_",
    "COMPRESSOR_",
    "AGGREGATE_CACHE",
    "DEEPCOPY_FROM_AGGREGATE_CACHE",
    "IS_SNAPSHOTTING_ENABLED",
    "TASKLEDGER_",
)


def say(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ store
@contextmanager
def fresh_store(backend: str, workdir: Path, database_url: str) -> Iterator[dict[str, Any]]:
    """The eventsourcing environment of an empty store and a description of it."""
    if backend == "sqlite":
        import sqlite3

        env = persistence_env(Settings(home=workdir / "store", database_url=None, cipher_key=None))  # type: ignore[call-arg]
        yield {"env": env, "info": {"sqlite_version": sqlite3.sqlite_version, "file": "temporary file"}}
        return
    import psycopg
    from psycopg import sql

    schema = f"bench_relay_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        server = conn.execute("SELECT version()").fetchone()[0]  # type: ignore[index]
        settings = {n: conn.execute(f"SHOW {n}").fetchone()[0] for n in ("synchronous_commit", "fsync")}  # type: ignore[index]
    try:
        env = persistence_env(
            Settings(database_url=database_url, postgres_schema=schema, cipher_key=None)  # type: ignore[call-arg]
        )
        yield {"env": env, "info": {"server": server, "schema": schema, **settings}}
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def stored_counts(app: TaskLedger) -> tuple[int, int]:
    """(stored events, of which public: the ones the relay publishes, topic in STORED_TOPICS)."""
    table, _ = events_table(app)
    topics = ", ".join(f"'{t}'" for t in sorted(STORED_TOPICS))
    rows = query(app, f"SELECT COUNT(*) AS n, SUM(CASE WHEN topic IN ({topics}) THEN 1 ELSE 0 END) AS p FROM {table}")
    row = rows[0]
    total, public = (row["n"], row["p"]) if isinstance(row, dict) else (row[0], row[1])
    return int(total), int(public or 0)


# --------------------------------------------------------------------------------- workload
def open_ledger(env: dict[str, str], workdir: Path) -> tuple[TaskLedger, UUID]:
    """A ledger with a fixed clock and one signed, regular directive (dev PKI)."""
    pki = init_dev_pki(workdir / "pki", now=PKI_AT)
    app = TaskLedger(env=env, clock=lambda: START, trusted_roots=read_trusted_roots([pki.trusted_roots]))
    document = b"document of 57-NQ/TW"
    bundle = sign_document(
        document, key_pem=pki.signer_key.read_bytes(), cert_chain_pem=pki.signer_cert.read_bytes(), now=SIGNED_AT
    )
    directive = app.execute(
        OFFICE,
        c.RegisterDirective(
            symbol="57-NQ/TW",
            title="Resolution 57-NQ/TW",
            summary="Breakthroughs in science, technology and innovation",
            issued_on=date(2026, 4, 22),
            signer="To Lam",
            issuing_body="Politburo",
            presenting_body="Central Party Office",
            confidentiality=Confidentiality.REGULAR,
            document_sha256=document_digest(document),
            signature=bundle,
        ),
    ).aggregate_id
    return app, directive


def task_commands(directive_id: UUID, key: str, i: int) -> list[tuple[Actor, c.Command]]:
    """One task's 6 commands (as tests/connectors/test_relay.load); the task id is deterministic."""
    cid = f"{key}{i}"
    task_id = task_id_for(cid)
    return [
        (
            OFFICE,
            c.AssignTask(directive_id=directive_id, content=f"task {i}", assignee="HN", monitor="BKT", command_id=cid),
        ),
        (ASSIGNEE, c.ReceiveTask(task_id=task_id)),
        (ASSIGNEE, c.ReportProgress(task_id=task_id, percent=40, note="half way")),
        (APPROVER, c.ApproveProgress(task_id=task_id)),
        (ASSIGNEE, c.ReportProgress(task_id=task_id, percent=80, note="nearly")),
        (APPROVER, c.ApproveProgress(task_id=task_id)),
    ]


def load(app: TaskLedger, directive_id: UUID, events: int, batch: int, quiet: bool) -> dict[str, Any]:
    """~``events`` events through execute_batch, ``batch`` commands per save; a counter on stderr."""
    tasks = max(1, -(-events // EVENTS_PER_TASK))
    total = tasks * EVENTS_PER_TASK
    pending: list[tuple[Actor, c.Command]] = []
    done = 0
    t0 = time.perf_counter()
    tty = sys.stderr.isatty()
    last_line = 0.0

    def show(final: bool = False) -> None:
        nonlocal last_line
        now = time.perf_counter()
        if quiet or (not final and now - last_line < (0.2 if tty else 2.0)):
            return
        last_line = now
        line = f"  loading {done:>7}/{total} events  {now - t0:5.1f} s  {done / max(now - t0, 1e-9):7.0f} ev/s"
        sys.stderr.write(("\r" + line + "\x1b[K") if tty else line + "\n")
        if final and tty:
            sys.stderr.write("\n")
        sys.stderr.flush()

    for i in range(tasks):
        pending += task_commands(directive_id, "t", i)
        if len(pending) >= batch:
            done += len(app.execute_batch(pending))
            pending = []
            show()
    if pending:
        done += len(app.execute_batch(pending))
    seconds = time.perf_counter() - t0
    show(final=True)
    return {
        "tasks": tasks,
        "commands": done,
        "seconds": round(seconds, 3),
        "events_per_s": round(done / seconds, 1),
        "batch": batch,
    }


# ------------------------------------------------------------------------------ relay runs
class TimedRelay(Relay):
    """The relay with perf_counter counters around the calls that make up its loop. Only instance
    attributes are wrapped (the recorder's two queries, the producer's flush); they are removed by
    ``unwrap``."""

    PARTS = ("select_notifications", "head", "message", "send", "flush", "tracking_insert", "ensure_broker")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.t: dict[str, float] = dict.fromkeys((*self.PARTS, "publish"), 0.0)
        self.calls: dict[str, int] = dict.fromkeys(self.t, 0)
        recorder = self.app.recorder
        self._wrapped = [
            (recorder, "select_notifications", "select_notifications"),
            (recorder, "max_notification_id", "head"),
        ]
        for obj, attr, part in self._wrapped:
            setattr(obj, attr, self._timed(getattr(obj, attr), part))
        self._wrap_producer()

    def _timed(self, fn: Callable[..., Any], part: str) -> Callable[..., Any]:
        t, calls, clock = self.t, self.calls, time.perf_counter

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                t[part] += clock() - t0
                calls[part] += 1

        return timed

    def _wrap_producer(self) -> None:
        self.producer.flush = self._timed(self.producer.flush, "flush")  # type: ignore[method-assign]

    def _new_producer(self) -> None:
        super()._new_producer()
        self._wrap_producer()

    def run(self, **kwargs: Any) -> Any:
        """The relay's run, with the garbage collector's passes timed (gc.callbacks) per generation."""
        self.gc = {g: [0, 0.0] for g in (0, 1, 2)}
        started: list[float] = [0.0]

        def on_gc(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                entry = self.gc[info["generation"]]
                entry[0] += 1
                entry[1] += time.perf_counter() - started[0]

        gc.callbacks.append(on_gc)
        try:
            return super().run(**kwargs)
        finally:
            gc.callbacks.remove(on_gc)

    def unwrap(self) -> None:
        for obj, attr, _ in self._wrapped:
            if attr in vars(obj):
                delattr(obj, attr)

    def message(self, n: Notification) -> tuple[bytes, bytes]:
        t0 = time.perf_counter()
        try:
            return super().message(n)
        finally:
            self.t["message"] += time.perf_counter() - t0
            self.calls["message"] += 1

    def publish(self, notifications: list[Notification]) -> None:
        t0 = time.perf_counter()
        m0, f0 = self.t["message"], self.t["flush"]
        try:
            super().publish(notifications)
        finally:
            spent = time.perf_counter() - t0
            self.t["publish"] += spent
            self.t["send"] += spent - (self.t["message"] - m0) - (self.t["flush"] - f0)
            self.calls["publish"] += 1
            self.calls["send"] += len(notifications)

    def _record(self, position: int) -> None:
        t0 = time.perf_counter()
        try:
            super()._record(position)
        finally:
            self.t["tracking_insert"] += time.perf_counter() - t0
            self.calls["tracking_insert"] += 1

    def ensure_broker(self, position: int) -> int:
        t0 = time.perf_counter()
        try:
            return super().ensure_broker(position)
        finally:
            self.t["ensure_broker"] += time.perf_counter() - t0
            self.calls["ensure_broker"] += 1

    def breakdown(self, total: float, events: int) -> dict[str, Any]:
        parts = {p: self.t[p] for p in self.PARTS}
        parts["other (loop, list, stats)"] = max(0.0, total - sum(parts.values()))
        out = {
            name: {
                "seconds": round(s, 4),
                "share": round(s / total, 4) if total else 0.0,
                "us_per_event": round(s / events * 1e6, 2) if events else 0.0,
                "calls": self.calls.get(name, 0),
            }
            for name, s in parts.items()
        }
        for gen, (n, s) in self.gc.items():  # included in the parts above (GC runs inside them)
            out[f"  incl. gc gen{gen} passes"] = {
                "seconds": round(s, 4),
                "share": round(s / total, 4) if total else 0.0,
                "us_per_event": round(s / events * 1e6, 2) if events else 0.0,
                "calls": n,
            }
        return out


# -- variants of the relay: candidate changes to connectors/relay.py, tried here first -----------------------
class NoFlushWaitRelay(Relay):
    """Pipelined acknowledgements: ``publish`` sends a batch without ``flush()``; the position of a
    batch is recorded once all of its futures are done (checked before each next batch, and by a
    flush when the relay reaches the head). At-least-once is kept: the tracking record still
    follows the acks, and a failed future raises before anything later is recorded."""

    def __init__(self, *args: Any, max_unacked_batches: int = 4, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inflight: list[tuple[int, list[Any]]] = []  # (last position of the batch, its futures)
        self.max_unacked = max_unacked_batches

    def run(
        self,
        *,
        until_caught_up: bool = False,
        idle_sleep_s: float = 0.05,
        on_progress: Callable[[Any], None] | None = None,
        max_seconds: float | None = None,
    ) -> Any:
        position = self.recorded_position()
        cursor = self.ensure_broker(position)
        self.stats.position = position
        while not self._stopping:
            notifications = self.app.recorder.select_notifications(start=cursor + 1, limit=self.batch)
            self.stats.head = max(self.head(), self.stats.head)
            if not notifications:
                position = self._settle(position, wait=True)
                self.stats.position = max(position, cursor)
                if until_caught_up and cursor >= self.stats.head:
                    break
                time.sleep(idle_sleep_s)
                continue
            public = [n for n in notifications if n.topic in STORED_TOPICS]  # as Relay.publish
            futures = [
                self.producer.send(EVENTS_TOPIC, key=key, value=value) for key, value in map(self.message, public)
            ]
            cursor = notifications[-1].id
            self.inflight.append((cursor, futures))
            self.stats.published += len(notifications)
            position = self._settle(position, wait=len(self.inflight) > self.max_unacked)
            self.stats.position = position
        return self.stats

    def _settle(self, position: int, *, wait: bool) -> int:
        """Record the last batch whose futures (and all earlier ones) are acknowledged."""
        if wait and self.inflight:
            self.producer.flush()
        done_upto = None
        while self.inflight and all(f.is_done for f in self.inflight[0][1]):
            last, futures = self.inflight.pop(0)
            failed = [f for f in futures if f.failed()]
            if failed:
                raise RelayError(f"{len(failed)} of {len(futures)} events not acknowledged")
            done_upto = last
        if done_upto is not None and done_upto > position:
            self._record(done_upto)
            position = done_upto
        return position


class CachedMurmur2Partitioner(DefaultPartitioner):
    """kafka-python's DefaultPartitioner with the murmur2 hash of each key cached (pure Python, ~6 us a
    key). Partition ids of a topic are 0..n-1, so ``sorted(all)[h % n] == h % n``: same choice as the
    default for every key, and a partition count change is still honoured (n is read per call)."""

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


class GcFrozenRelay(Relay):
    """``gc.freeze()`` when the run starts: the objects that exist then (modules, pydantic models, the
    ledger: ~140,000 tracked objects) are left out of every later collection; full (gen2) passes over
    them cost ~60 ms each, several times per 50,000 events."""

    def run(self, **kwargs: Any) -> Any:
        gc.freeze()
        try:
            return super().run(**kwargs)
        finally:
            gc.unfreeze()


class RecommendedRelay(GcFrozenRelay):
    """Both measured gains together: gc.freeze() at start and the cached-murmur2 partitioner."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        overrides = {"partitioner": CachedMurmur2Partitioner(), **(kwargs.pop("producer_overrides", None) or {})}
        super().__init__(*args, producer_overrides=overrides, **kwargs)


class GcPausedRelay(Relay):
    """Diagnostic only: the cyclic garbage collector paused during the run (how much GC costs)."""

    def run(self, **kwargs: Any) -> Any:
        gc.disable()
        try:
            return super().run(**kwargs)
        finally:
            gc.enable()


def run_relay(
    app: TaskLedger,
    bootstrap: str,
    name: str,
    relay_cls: type[Relay] = Relay,
    profile: cProfile.Profile | None = None,
    **kwargs: Any,
) -> tuple[Relay, float, int]:
    """One relay run to the head, timed; returns (relay, seconds, published)."""
    relay = relay_cls(app, bootstrap, name=name, **kwargs)
    gc.collect()
    t0 = time.perf_counter()
    if profile is not None:
        profile.enable()
    stats = relay.run(until_caught_up=True)
    if profile is not None:
        profile.disable()
    seconds = time.perf_counter() - t0
    relay.close()
    if isinstance(relay, TimedRelay):
        relay.unwrap()
    if stats.published <= 0:
        raise SystemExit(f"relay run {name!r} published nothing")
    return relay, seconds, stats.published


# --------------------------------------------------------------------------------- raw runs
RAW_VARIANTS: dict[str, dict[str, Any]] = {
    # name -> (producer factory arguments, flush every n messages (0: once at the end))
    "raw": {"factory": "project", "config": {}, "flush_every": 0, "label": "raw producer(), same settings, 1 flush"},
    "raw_flush2000": {
        "factory": "project",
        "config": {},
        "flush_every": RELAY_BATCH,
        "label": "raw producer(), flush every 2,000",
    },
    "raw_cached_partitioner": {
        "factory": "project",
        "config": "cached-partitioner",
        "flush_every": 0,
        "label": "raw producer(partitioner=CachedMurmur2)",
    },
    "raw_acks1": {
        "factory": "plain",
        "config": {"acks": 1, "enable_idempotence": False},
        "flush_every": 0,
        "label": "raw KafkaProducer(acks=1, no idempotence)",
    },
    "raw_defaults": {"factory": "plain", "config": {}, "flush_every": 0, "label": "raw KafkaProducer() defaults"},
}


def raw_topic(variant: str) -> str:
    return f"bench.{variant.replace('_', '-')}.v1"


def raw_send(bootstrap: str, variant: str, messages: list[tuple[bytes, bytes]]) -> tuple[float, int]:
    """Send ``messages`` (key, value) to the variant's topic; time from the first send to the last ack."""
    spec = RAW_VARIANTS[variant]
    if spec["config"] == "cached-partitioner":
        producer = k.producer(bootstrap, partitioner=CachedMurmur2Partitioner())
    elif spec["factory"] == "project":
        producer = k.producer(bootstrap, **spec["config"])
    else:
        producer = KafkaProducer(bootstrap_servers=bootstrap, **spec["config"])
    topic, every = raw_topic(variant), spec["flush_every"]
    send = producer.send
    gc.collect()
    try:
        t0 = time.perf_counter()
        if every:
            futures: list[Any] = []
            for start in range(0, len(messages), every):
                futures += [send(topic, key=key, value=value) for key, value in messages[start : start + every]]
                producer.flush()
        else:
            futures = [send(topic, key=key, value=value) for key, value in messages]
            producer.flush()
        seconds = time.perf_counter() - t0
    finally:
        producer.close(timeout=10)
    failed = sum(1 for f in futures if f.failed())
    if failed:
        raise SystemExit(f"{variant}: the broker refused {failed} of {len(futures)} messages")
    return seconds, len(futures)


class _Cluster:
    """The one ClusterMetadata call the partitioner makes."""

    def __init__(self, partitions: int) -> None:
        self.ids = set(range(partitions))

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self.ids


def relay_bytes(bootstrap: str, expected: int) -> list[tuple[bytes, bytes]]:
    """What the relay put on the topic, in its send order (by position): (key, value). Also checks that
    the partition of every record is the one ``CachedPartitionRelay`` computes for its key."""
    records = k.read_all(bootstrap, EVENTS_TOPIC, timeout_s=300)
    cached, cluster = CachedMurmur2Partitioner(), _Cluster(PARTITIONS)
    by_position: dict[int, tuple[bytes, bytes]] = {}
    for r in records:
        by_position.setdefault(orjson.loads(r.value)["position"], (r.key, r.value))
        if cached.partition(EVENTS_TOPIC, r.key, r.key, None, r.value, cluster) != r.partition or (
            (murmur2(r.key) & 0x7FFFFFFF) % PARTITIONS != r.partition
        ):
            raise SystemExit(f"record {r.key!r} is in partition {r.partition}; the cached partitioners disagree")
    if len(by_position) != expected:
        raise SystemExit(f"the topic holds {len(by_position)} distinct positions, the store {expected}")
    return [by_position[p] for p in sorted(by_position)]


# -------------------------------------------------------------------------------------- lag
class LagRelay(Relay):
    """The plain relay, noting for every event when its batch was selected and when it was acked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.marks: dict[str, tuple[float, float]] = {}  # event_id -> (selected, acknowledged)
        self.checks: list[float] = []  # durations of ensure_broker (start + the periodic broker check), ms
        self.holds: list[float] = []  # of which broker_holds (end_offsets + COUNT(*)), ms
        self.counts: list[float] = []  # of which _published_count (COUNT(*)), ms

    def _published_count(self, position: int) -> int:
        t0 = time.perf_counter()
        try:
            return super()._published_count(position)
        finally:
            self.counts.append((time.perf_counter() - t0) * 1000)

    def broker_holds(self, position: int) -> bool:
        t0 = time.perf_counter()
        try:
            return super().broker_holds(position)
        finally:
            self.holds.append((time.perf_counter() - t0) * 1000)

    def ensure_broker(self, position: int) -> int:
        t0 = time.perf_counter()
        try:
            return super().ensure_broker(position)
        finally:
            self.checks.append((time.perf_counter() - t0) * 1000)

    def publish(self, notifications: list[Notification]) -> None:
        selected = time.perf_counter()
        super().publish(notifications)
        acked = time.perf_counter()
        for n in notifications:
            self.marks[str(event_id_for(UUID(str(n.originator_id)), n.originator_version))] = (selected, acked)


def start_consumer(
    bootstrap: str, received: dict[str, float], stop: threading.Event, fetch_max_wait_ms: int
) -> tuple[threading.Thread, threading.Event]:
    """A group-less consumer assigned to every partition at the true end; event_id -> arrival time."""
    ready = threading.Event()
    ends = k.end_offsets(bootstrap, EVENTS_TOPIC)

    def consume() -> None:
        reader = k.consumer(bootstrap, group=None, from_beginning=False, topics=[], fetch_max_wait_ms=fetch_max_wait_ms)
        try:
            tps = [TopicPartition(EVENTS_TOPIC, p) for p in sorted(ends)]
            reader.assign(tps)
            for tp in tps:
                reader.seek(tp, ends[tp.partition])
            reader.poll(timeout_ms=50)
            ready.set()
            while not stop.is_set():
                batches = reader.poll(timeout_ms=100)
                now = time.perf_counter()
                for records in batches.values():
                    for r in records:
                        received.setdefault(orjson.loads(r.value)["event_id"], now)
        finally:
            reader.close()

    thread = threading.Thread(target=consume, name="bench-consumer", daemon=True)
    thread.start()
    return thread, ready


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered) + 0.5) - 1))]

    return {
        "p50": round(q(0.50), 2),
        "p95": round(q(0.95), 2),
        "p99": round(q(0.99), 2),
        "max": round(ordered[-1], 2),
        "mean": round(statistics.fmean(ordered), 2),
    }


def measure_lag(
    app: TaskLedger,
    directive_id: UUID,
    bootstrap: str,
    *,
    idle_sleep_s: float,
    rate: float,
    seconds: float,
    key: str,
    fetch_max_wait_ms: int,
    check_every_s: float,
    quiet: bool,
) -> dict[str, Any]:
    """Relay (follow mode) + consumer threads; single commands at a steady rate; lag per event."""
    received: dict[str, float] = {}
    stop_consumer = threading.Event()
    consumer_thread, consumer_ready = start_consumer(bootstrap, received, stop_consumer, fetch_max_wait_ms)
    # the default name: resumes at the position recorded so far
    relay = LagRelay(app, bootstrap, check_every_s=check_every_s)
    relay_ready = threading.Event()
    relay_cpu: list[float] = []

    def follow() -> None:
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        try:
            relay.run(idle_sleep_s=idle_sleep_s, on_progress=lambda _s: relay_ready.set())
        finally:
            relay_cpu.extend((time.thread_time() - cpu0, time.perf_counter() - wall0))

    relay_thread = threading.Thread(target=follow, name="bench-relay", daemon=True)
    relay_thread.start()
    if not (consumer_ready.wait(30) and relay_ready.wait(30)):
        raise SystemExit("lag: the relay or the consumer did not start within 30 s")
    time.sleep(0.3)

    sent: dict[str, tuple[float, float]] = {}  # event_id -> (submitted, committed)
    count = int(rate * seconds)
    interval = 1.0 / rate
    commands = (cmd for i in range(count // EVENTS_PER_TASK + 1) for cmd in task_commands(directive_id, key, i))
    behind = 0
    t_start = time.perf_counter()
    for n in range(count):
        due = t_start + n * interval
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        elif now - due > interval:
            behind += 1
        actor, command = next(commands)
        submitted = time.perf_counter()
        result = app.execute(actor, command)
        committed = time.perf_counter()
        sent[str(event_id_for(result.aggregate_id, result.version))] = (submitted, committed)
        if not quiet and (n + 1) % max(1, int(rate)) == 0:
            say(f"  lag idle_sleep={idle_sleep_s:g}s: {n + 1}/{count} commands, {len(received)} received")
    achieved = count / (time.perf_counter() - t_start)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(e in received for e in sent):
        time.sleep(0.05)
    relay.stop()
    relay_thread.join(30)
    relay.close()
    stop_consumer.set()
    consumer_thread.join(30)

    missing = [e for e in sent if e not in received]
    from_submit = [(received[e] - s) * 1000 for e, (s, _c) in sent.items() if e in received]
    from_commit = [(received[e] - cm) * 1000 for e, (_s, cm) in sent.items() if e in received]
    execute_ms = [(cm - s) * 1000 for s, cm in sent.values()]
    marks = relay.marks
    to_select = [(marks[e][0] - cm) * 1000 for e, (_s, cm) in sent.items() if e in marks]
    to_ack = [(marks[e][1] - marks[e][0]) * 1000 for e in sent if e in marks]
    to_consumer = [(received[e] - marks[e][1]) * 1000 for e in sent if e in marks and e in received]
    return {
        "idle_sleep_s": idle_sleep_s,
        "check_every_s": check_every_s,
        "rate_target_per_s": rate,
        "rate_achieved_per_s": round(achieved, 1),
        "commands": count,
        "late_commands": behind,
        "received": len(from_submit),
        "missing": len(missing),
        "lag_ms_from_submit": percentiles(from_submit),
        "lag_ms_from_commit": percentiles(from_commit),
        "execute_ms": percentiles(execute_ms),
        "split_ms": {
            "commit_to_relay_select": percentiles(to_select),
            "relay_select_to_ack": percentiles(to_ack),
            "ack_to_consumer": percentiles(to_consumer),
        },
        "consumer_fetch_max_wait_ms": fetch_max_wait_ms,
        "relay_thread_cpu_percent": round(relay_cpu[0] / relay_cpu[1] * 100, 1) if len(relay_cpu) == 2 else None,
        "relay_broker_checks_ms": [round(x, 1) for x in relay.checks],
        "of_which_broker_holds_ms": [round(x, 1) for x in relay.holds],
        "of_which_count_ms": [round(x, 1) for x in relay.counts],
    }


# ------------------------------------------------------------------------------------- main
def profile_relay(app: TaskLedger, bootstrap: str, backend: str) -> dict[str, Any]:
    """cProfile one relay run (main thread only: kafka-python's sender thread is not in it)."""
    prof = cProfile.Profile()
    _relay, seconds, published = run_relay(app, bootstrap, "relay:bench-profile", profile=prof)
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(35)
    path = RESULTS_DIR / f"profile-relay-{backend}.txt"
    path.write_text(
        f"cProfile of Relay.run(until_caught_up=True): {published} events in {seconds:.2f} s under the profiler "
        f"(main thread only)\n\n" + out.getvalue()
    )
    return {"file": str(path.relative_to(RESULTS_DIR.parent.parent)), "seconds_under_profiler": round(seconds, 3)}


def lag_label(lag: dict[str, Any]) -> str:
    return f"{lag['idle_sleep_s']:g}s/{lag['consumer_fetch_max_wait_ms']}ms/{lag['check_every_s']:g}s"


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def table(result: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    r = result
    add(
        f"\nrelay bench — backend {r['backend']}, {r['events_stored']:,} events stored "
        f"({r['events_public']:,} public; topic after the first run: {r['topic_messages_after_first_run']:,}), "
        f"broker tansu on "
        f"{r['broker']}, {r['repeat']} round(s)"
    )
    add(
        f"load (execute_batch, not timed for the relay): {fmt_rate(r['load']['events_per_s'])} ev/s "
        f"in {r['load']['seconds']} s"
    )
    add("")
    add(f"{'measurement':<46} {'median msg/s':>13}   rounds")
    for m in r["throughput"].values():
        rounds = " / ".join(fmt_rate(x) for x in m["rounds_per_s"])
        add(f"{m['label']:<46} {fmt_rate(m['median_per_s']):>13}   {rounds}")
    ratio = r["ratio"]
    add(
        f"{'RATIO relay / raw (median of rounds)':<46} {ratio['median'] * 100:12.1f} %   "
        + " / ".join(f"{x * 100:.1f} %" for x in ratio["rounds"])
        + f"   target >= 50 %: {'PASS' if ratio['median'] >= TARGET else 'FAIL'}"
    )
    add(f"{'relay extra cost over raw':<46} {ratio['extra_us_per_event']:10.1f} us/event")
    b = r["breakdown"]
    add("")
    add(
        f"where the relay's time goes (instrumented run: {fmt_rate(b['events_per_s'])} ev/s, "
        f"{b['seconds']:.2f} s for {b['events']:,} events):"
    )
    add(f"  {'part':<28} {'s':>8} {'share':>7} {'us/event':>9} {'calls':>7}")
    for name, p in b["parts"].items():
        add(f"  {name:<28} {p['seconds']:8.3f} {p['share'] * 100:6.1f}% {p['us_per_event']:9.2f} {p['calls']:>7}")
    if r.get("variants"):
        add("")
        add("relay variants (bench subclasses, same store, same broker; each republishes the store):")
        for v in r["variants"].values():
            add(
                f"  {v['label']:<60} {fmt_rate(v['events_per_s']):>8} ev/s  "
                f"{v['ratio_to_raw'] * 100:5.1f} % of raw  {(v['vs_default'] - 1) * 100:+5.1f} % vs as is   "
                + " / ".join(fmt_rate(x) for x in v["rounds_per_s"])
            )
    if r.get("profile"):
        add(f"\ncProfile: {r['profile']['file']}")
    if r.get("lag"):
        add("")
        add("lag command -> consumer (ms; from just before app.execute to the consumer's poll returning it):")
        add(
            f"  {'idle/fetch_wait/check':<21} {'rate/s':>7} {'recv':>6} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}"
            f"   (from commit p50/p99)   execute p50   relay thread CPU"
        )
        for lag in r["lag"]:
            s, cm = lag["lag_ms_from_submit"], lag["lag_ms_from_commit"]
            add(
                f"  {lag_label(lag):<21} "
                f"{lag['rate_achieved_per_s']:7.1f} {lag['received']:>6} "
                f"{s['p50']:7.1f} {s['p95']:7.1f} {s['p99']:7.1f} {s['max']:7.1f}"
                f"   ({cm['p50']:.1f} / {cm['p99']:.1f})            {lag['execute_ms']['p50']:.2f}"
                f"          {lag['relay_thread_cpu_percent']} %"
            )
        add("  split, p50 / p99 (ms):    commit -> relay select | select -> broker ack | ack -> consumer")
        for lag in r["lag"]:
            sp = lag["split_ms"]
            add(
                f"  {lag_label(lag):<21}   "
                + " | ".join(
                    f"{sp[part]['p50']:6.1f} / {sp[part]['p99']:6.1f}"
                    for part in ("commit_to_relay_select", "relay_select_to_ack", "ack_to_consumer")
                )
            )
    add("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="events to load (default 50,000)")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--json", action="store_true", help="print the JSON result on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--repeat", type=int, default=3, help="relay/raw rounds (median reported)")
    parser.add_argument("--load-batch", type=int, default=1000, help="commands per execute_batch while loading")
    parser.add_argument(
        "--variants",
        choices=("auto", "always", "never"),
        default="always",
        help="run the relay variants (auto: only when the ratio misses 50 %%)",
    )
    parser.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="cProfile a relay run (auto: only when the ratio misses 50 %%)",
    )
    parser.add_argument("--lag-rate", type=float, default=200.0, help="commands per second for the lag run")
    parser.add_argument("--lag-seconds", type=float, default=10.0)
    parser.add_argument(
        "--lag-runs",
        default="0.05:10:5,0.01:10:5,0.01:10:3600,0.05:500:5",
        help="lag runs, comma-separated IDLE_SLEEP_S:FETCH_MAX_WAIT_MS:CHECK_EVERY_S (the relay's "
        "idle_sleep_s and check_every_s, default 0.05 and 5; the consumer's fetch_max_wait_ms, "
        "500 is kafka-python's default)",
    )
    parser.add_argument("--no-lag", action="store_true")
    args = parser.parse_args(argv)

    for name in list(os.environ):
        if name.startswith(_SCRUBBED_PREFIXES):
            del os.environ[name]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="taskledger-bench-relay-"))
    broker: DevBroker | None = None
    started = time.perf_counter()
    try:
        broker = start_dev_broker(free_port(), log_path=workdir / "broker.log")
        bootstrap = broker.bootstrap
        say(f"broker ready on {bootstrap}; backend {args.backend}")
        with fresh_store(args.backend, workdir, args.database_url) as store:
            app, directive = open_ledger(store["env"], workdir)
            opened = [app]

            def reopen() -> TaskLedger:
                """A new ledger on the same store (as ``taskledger relay`` opens its own)."""
                opened.append(TaskLedger(env=store["env"], clock=lambda: START, trusted_roots=app.trusted_roots))
                return opened[-1]

            try:
                result = bench(app, directive, bootstrap, store["info"], args, reopen)
            finally:
                for ledger in opened:
                    ledger.close()
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    path = RESULTS_DIR / f"relay-{args.backend}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    text = table(result) + f"results: {path.relative_to(RESULTS_DIR.parent.parent)}  ({result['wall_seconds']} s)\n"
    if args.json:
        sys.stderr.write(text)
        print(json.dumps(result, indent=2))
    else:
        print(text)
    return 0


def bench(
    app: TaskLedger,
    directive: UUID,
    bootstrap: str,
    store_info: dict[str, Any],
    args: argparse.Namespace,
    reopen: Callable[[], TaskLedger],
) -> dict[str, Any]:
    quiet = args.quiet
    say(f"loading ~{args.events:,} events through execute_batch ({args.load_batch} commands per save)")
    loaded = load(app, directive, args.events, args.load_batch, quiet)
    # The relay runs on a ledger of its own, as ``taskledger relay`` does in its own process: the loading
    # ledger's aggregate cache (up to 10,000 aggregates) would otherwise sit in this process's heap and
    # make every garbage collection of the relay slower (measured: about -20 %).
    app.repository.cache.clear()  # type: ignore[union-attr]
    app = reopen()
    gc.collect()
    count, public = stored_counts(app)
    head = app.recorder.max_notification_id() or 0

    # topics exist before anything is timed (the relay would create its own in its first run)
    k.ensure_topics(bootstrap, k.topic_specs(PARTITIONS))
    k.ensure_topics(bootstrap, [k.TopicSpec(raw_topic(v), PARTITIONS, dict(RAW_TOPIC_CONFIG)) for v in RAW_VARIANTS])

    # 2-4: rounds of relay vs raw, interleaved
    rates: dict[str, list[float]] = {"relay": [], **{v: [] for v in RAW_VARIANTS}}
    messages: list[tuple[bytes, bytes]] = []
    on_topic_first = 0
    for rnd in range(args.repeat):
        name = "relay:" + EVENTS_TOPIC if rnd == 0 else f"relay:bench-round-{rnd}"
        _relay, seconds, processed = run_relay(app, bootstrap, name)
        assert processed == count, f"the relay went through {processed} notifications, the store holds {count}"
        rates["relay"].append(public / seconds)
        if rnd == 0:
            on_topic = on_topic_first = sum(k.end_offsets(bootstrap, EVENTS_TOPIC).values())
            assert on_topic >= public, f"the topic holds {on_topic} messages, the store {public} public events"
            messages = relay_bytes(bootstrap, public)
        say(f"  round {rnd + 1}: relay {public / seconds:,.0f} ev/s ({seconds:.2f} s)")
        for variant in RAW_VARIANTS:
            secs, sent = raw_send(bootstrap, variant, messages)
            rates[variant].append(sent / secs)
            say(f"  round {rnd + 1}: {variant:<14} {sent / secs:,.0f} msg/s ({secs:.2f} s)")
    for variant in RAW_VARIANTS:
        held = sum(k.end_offsets(bootstrap, raw_topic(variant)).values())
        assert held == args.repeat * len(messages), f"{raw_topic(variant)} holds {held} messages"
    labels = {
        "relay": "relay Relay.run(until_caught_up=True)",
        **{v: spec["label"] for v, spec in RAW_VARIANTS.items()},
    }
    throughput = {
        name: {
            "label": labels[name],
            "median_per_s": round(statistics.median(rs), 1),
            "rounds_per_s": [round(x, 1) for x in rs],
        }
        for name, rs in rates.items()
    }
    round_ratios = [a / b for a, b in zip(rates["relay"], rates["raw"], strict=True)]
    ratio = statistics.median(round_ratios)
    relay_rate, raw_rate = throughput["relay"]["median_per_s"], throughput["raw"]["median_per_s"]
    ratio_info = {
        "median": round(ratio, 4),
        "rounds": [round(x, 4) for x in round_ratios],
        "of_medians": round(relay_rate / raw_rate, 4),
        "extra_us_per_event": round((1 / relay_rate - 1 / raw_rate) * 1e6, 2),
        "target": TARGET,
        "pass": ratio >= TARGET,
    }
    say(f"  ratio relay/raw: {ratio * 100:.1f} % (rounds: {', '.join(f'{x * 100:.1f}' for x in round_ratios)})")

    # 4: breakdown
    timed, seconds, _processed = run_relay(app, bootstrap, "relay:bench-timed", TimedRelay)
    published = public
    assert isinstance(timed, TimedRelay)
    breakdown = {
        "events": published,
        "seconds": round(seconds, 3),
        "events_per_s": round(published / seconds, 1),
        "parts": timed.breakdown(seconds, published),
    }
    say(f"  instrumented relay: {published / seconds:,.0f} ev/s")

    result: dict[str, Any] = {
        "backend": args.backend,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "platform": platform.platform(),
        },
        "store": store_info,
        "broker": f"tansu (memory) {bootstrap}",
        "partitions": PARTITIONS,
        "events_stored": count,
        "events_public": public,
        "topic_messages_after_first_run": on_topic_first,
        "head": head,
        "message_bytes_mean": round(statistics.fmean(len(v) for _k, v in messages), 1),
        "repeat": args.repeat,
        "load": loaded,
        "throughput": throughput,
        "ratio": ratio_info,
        "breakdown": breakdown,
    }
    del messages

    # 5: variants, profile
    if args.variants == "always" or (args.variants == "auto" and not ratio_info["pass"]):
        result["variants"] = run_variants(app, bootstrap, public, raw_rate, args.repeat, quiet)
    if args.profile == "always" or (args.profile == "auto" and not ratio_info["pass"]):
        say("  profiling a relay run (cProfile)")
        result["profile"] = profile_relay(app, bootstrap, args.backend)

    # 6: lag
    if not args.no_lag:
        result["lag"] = []
        for i, spec in enumerate(x for x in args.lag_runs.split(",") if x.strip()):
            fields = spec.split(":")
            idle = float(fields[0])
            wait = int(fields[1]) if len(fields) > 1 else 10
            check = float(fields[2]) if len(fields) > 2 else 5.0
            say(
                f"lag run: relay idle_sleep_s={idle:g} check_every_s={check:g}, consumer fetch_max_wait_ms={wait}, "
                f"{args.lag_rate:g} commands/s for {args.lag_seconds:g} s"
            )
            result["lag"].append(
                measure_lag(
                    app,
                    directive,
                    bootstrap,
                    idle_sleep_s=idle,
                    rate=args.lag_rate,
                    seconds=args.lag_seconds,
                    key=f"lag{i}-",
                    check_every_s=check,
                    fetch_max_wait_ms=wait,
                    quiet=quiet,
                )
            )
    result["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


VARIANTS: dict[str, tuple[str, type[Relay], dict[str, Any]]] = {
    # the plain relay once more, next to the variants, so they compare under the same conditions
    "default": ("Relay() as is (again, for reference)", Relay, {}),
    "batch_500": ("Relay(batch=500)", Relay, {"batch": 500}),
    "batch_10000": ("Relay(batch=10000)", Relay, {"batch": 10_000}),
    "pipelined_acks": ("pipelined acks (no flush per batch; record when acked)", NoFlushWaitRelay, {}),
    "cached_partitioner": (
        "producer_overrides partitioner=CachedMurmur2Partitioner()",
        Relay,
        {"producer_overrides": "cached-partitioner"},
    ),
    "gc_frozen": ("gc.freeze() when the run starts", GcFrozenRelay, {}),
    "recommended": ("cached partitioner + gc.freeze() (both)", RecommendedRelay, {}),
    "gc_paused": ("diagnostic: gc disabled during the run", GcPausedRelay, {}),
}


def run_variants(
    app: TaskLedger, bootstrap: str, public: int, raw_rate: float, repeat: int, quiet: bool
) -> dict[str, Any]:
    """Every variant ``repeat`` times, interleaved; the median rate of each."""
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for rnd in range(repeat):
        for name, (label, cls, kwargs) in VARIANTS.items():
            if kwargs.get("producer_overrides") == "cached-partitioner":  # a new partitioner per run
                kwargs = {**kwargs, "producer_overrides": {"partitioner": CachedMurmur2Partitioner()}}
            _relay, seconds, _processed = run_relay(app, bootstrap, f"relay:bench-{name}-{rnd}", cls, **kwargs)
            rates[name].append(public / seconds)
            if not quiet:
                say(f"  variant round {rnd + 1}: {label}: {public / seconds:,.0f} ev/s")
    out: dict[str, Any] = {}
    for name, (label, _cls, _kwargs) in VARIANTS.items():
        rate = statistics.median(rates[name])
        out[name] = {
            "label": label,
            "events_per_s": round(rate, 1),
            "rounds_per_s": [round(x, 1) for x in rates[name]],
            "ratio_to_raw": round(rate / raw_rate, 4),
            "vs_default": round(rate / statistics.median(rates["default"]), 4),
        }
    return out


if __name__ == "__main__":
    sys.exit(main())
