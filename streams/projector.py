"""The projector: the worker's blocking half, in a child process of its own.

Why a process: evaluating a task (fold + the domain's clocks, status and alerts) and writing ClickHouse
are CPU-bound Python; on the Faust event loop's process they share one GIL with consuming and producing,
so the two halves add up instead of overlapping (bench/README.md, "stream worker"). The Faust app
(``streams.agents``) consumes, keeps the durable tables and commits offsets; the projector, started with
``spawn`` and fed through a pipe, owns everything else:

* the ledger, read-only (``TaskLedger`` folds, through ``streams.evaluate.Folds``), and the evaluation:
  itself, or sharded over ``TASKLEDGER_WORKER_EVALUATORS`` evaluator processes (``streams.evaluators``:
  the evaluation is most of the CPU, and one process uses one core);
* the analytical store (chdb: the only process that opens the directory, so ``taskledger sql`` reads
  through it) and its ``BatchWriter`` sinks;
* the publications: task status (``taskledger.task-status.v1``, compacted) and new alerts
  (``taskledger.alerts.v1``), with the relay's kafka-python producer (acks=all, idempotent, the Java
  client's murmur2 partitioner, so a task's status always lands on the same partition);
* the set of alert ids already raised per task (loaded once from Faust's ``task-state`` table, which the
  app updates from every answer, so a restarted worker recovers it).

A request is handled completely before its reply: rows inserted and flushed, messages produced and
flushed. The app acks the batch's offsets only after the reply (at-least-once: a batch lost with a crash
is consumed and applied again; every sink is idempotent). Requests are answered in order.

The child opens its stores (and the endpoint) as soon as it starts. Requests: ``("open", {task: [alert
ids]})`` (the raised ids, once the app's tables are recovered), ``("batch", [message values])``,
``("tick", [task ids])``, ``("close", None)``; replies ``("ok", result)`` or ``("error", text)``.
The child dies with its parent (``PR_SET_PDEATHSIG`` on Linux, and end of file on the pipe)."""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import signal
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson

from connectors.settings import Settings

log = logging.getLogger(__name__)

PARTITION_CACHE = 200_000  # task keys whose partition is memoised per topic (cleared when full)


def _json_default(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not part of a published row")


def dumps(row: dict[str, Any]) -> bytes:
    """A status / alert row as the JSON of the published message: instants UTC ISO 8601 ``Z``, dates
    ``YYYY-MM-DD``, UUIDs canonical -- orjson's native encoders (``OPT_UTC_Z``; a Python ``default`` for
    every datetime cost the projector 4 % of its time). The row builders (``projections.rows``) give every
    instant in UTC (``instant``), which is what makes the ``Z`` form exact."""
    return orjson.dumps(row, default=_json_default, option=orjson.OPT_UTC_Z)


def touched_tasks(envelopes: list[dict[str, Any]]) -> set[UUID]:
    return {UUID(e["aggregate_id"]) for e in envelopes if e.get("aggregate_type") == "Task"}


def shared_clock(spec: str | None, origin_wall: float) -> Any:
    """The clock of ``TASKLEDGER_CLOCK`` as the parent started it at wall time ``origin_wall``: a child
    started later reads the same instants (``make_clock`` alone would restart the spec at its own start)."""
    from connectors.settings import make_clock

    if not spec:
        return make_clock(None)
    instant, _, speed = spec.partition("@")
    start = datetime.fromisoformat(instant)
    if start.tzinfo is None:
        raise ValueError("TASKLEDGER_CLOCK: the instant must carry a time zone offset")
    factor = float(speed or 1)
    now = start + timedelta(seconds=(time.time() - origin_wall) * factor)
    return make_clock(f"{now.isoformat()}@{speed or 1}")


# -- the child ------------------------------------------------------------------------------------------------
@dataclass
class Projector:
    """The child's state and its unit of work (see the module docstring)."""

    settings: Settings
    clock_origin: float
    ledger: Any = None
    client: Any = None
    writers: dict[str, Any] = field(default_factory=dict)
    producer: Any = None
    folds: Any = None
    policy: Any = None
    raised: dict[str, set[str]] = field(default_factory=dict)
    partitions: dict[tuple[str, tuple[int, ...]], dict[bytes, int]] = field(default_factory=dict)
    evaluators: Any = None  # streams.evaluators.Evaluators when TASKLEDGER_WORKER_EVALUATORS > 0
    lock: threading.Lock = field(default_factory=threading.Lock)  # chdb is used by requests and by readers

    def open(self) -> None:
        """Open the ledger, the analytical store (migrated), the writers and the producer."""
        from connectors import kafka as k
        from connectors.clickhouse import connect, migrate
        from connectors.eventstore import open_ledger
        from projections.schema import ALERT_COLUMNS, EVENT_COLUMNS, STATUS_COLUMNS
        from projections.writer import BatchWriter
        from streams.evaluate import Folds

        self.ledger = open_ledger(self.settings, clock=shared_clock(self.settings.clock, self.clock_origin))
        self.client = _connect_when_free(connect, self.settings)
        migrate(self.client)
        inf = float("inf")  # flushed explicitly at the end of every request
        self.writers = {
            "task_events": BatchWriter(self.client, "task_events", EVENT_COLUMNS, 10_000, inf),
            "task_status": BatchWriter(self.client, "task_status", STATUS_COLUMNS, 10_000, inf),
            "task_alerts": BatchWriter(self.client, "task_alerts", ALERT_COLUMNS, 10_000, inf),
        }
        self.producer = k.producer(self.settings.bootstrap, client_id="taskledger-worker-projector")
        self.folds = Folds()
        self.policy = self.settings.alert_policy()
        if self.settings.worker_evaluators > 0:
            from streams.evaluators import Evaluators

            self.evaluators = Evaluators(self.settings, self.clock_origin, self.settings.worker_evaluators)
            self.evaluators.start()

    def load_raised(self, raised: dict[str, list[str]]) -> dict[str, Any]:
        """The alert ids already raised, per task, as recovered in the app's ``task-state`` table."""
        self.raised = {task: set(ids) for task, ids in raised.items()}
        return {"pid": os.getpid(), "raised_tasks": len(self.raised)}

    def batch(self, values: list[bytes]) -> dict[str, Any]:
        from projections.rows import event_row

        envelopes = [orjson.loads(v) for v in values]
        touched = touched_tasks(envelopes)
        as_of = self.ledger.clock()
        # evaluators (if any) work on the tasks while this process builds the event rows
        asked = self.evaluators.submit(touched, as_of) if self.evaluators is not None else None
        try:
            with self.lock:
                self.writers["task_events"].add(event_row(e) for e in envelopes)
        except Exception:
            if asked:  # read their answers all the same: the next request must not find them in the pipes
                try:
                    self.evaluators.collect(asked, lambda task: frozenset())
                except Exception as error:  # noqa: BLE001 - the row's error is the one to report
                    log.warning("projector: evaluators failed too: %s", error)
            raise
        return self._apply(touched, len(envelopes), as_of, asked)

    def tick(self, task_ids: list[str]) -> dict[str, Any]:
        return self._apply({UUID(t) for t in task_ids}, 0, self.ledger.clock())

    def _apply(
        self, task_ids: set[UUID], events: int, as_of: datetime, asked: list[int] | None = None
    ) -> dict[str, Any]:
        """Evaluate, write and flush, publish and flush; return what the app keeps in its tables."""
        from domain.contract import ALERTS_TOPIC, STATUS_TOPIC
        from streams.evaluate import evaluate_tasks

        def seen(task: str) -> frozenset[str]:
            return frozenset(self.raised.get(task, ()))

        if self.evaluators is None:
            result = evaluate_tasks(self.ledger, task_ids, as_of, seen, self.folds, self.policy)
        else:
            if asked is None:
                asked = self.evaluators.submit(task_ids, as_of)
            result = self.evaluators.collect(asked, seen)
        with self.lock:
            self.writers["task_status"].add(result.statuses.values())
            self.writers["task_alerts"].add(a for rows in result.new_alerts.values() for a in rows)
            for writer in self.writers.values():
                writer.flush()
        send = self.producer.send
        status_at = self._partitioner(STATUS_TOPIC)
        futures = [
            send(STATUS_TOPIC, key=(key := t.encode()), value=dumps(r), partition=status_at(key))
            for t, r in result.statuses.items()
        ]
        new_ids: dict[str, list[str]] = {}
        alert_at = self._partitioner(ALERTS_TOPIC)
        for task, rows in result.new_alerts.items():
            if rows:
                key = task.encode()
                partition = alert_at(key)
                futures += [send(ALERTS_TOPIC, key=key, value=dumps(r), partition=partition) for r in rows]
                new_ids[task] = [r["alert_id"] for r in rows]
        self.producer.flush()
        for future in futures:
            future.get(timeout=0)  # raises if a record was not written: the batch is not acked
        for task, ids in new_ids.items():  # raised = published: marked only now
            self.raised.setdefault(task, set()).update(ids)
        return {
            "events": events,
            "statuses": len(result.statuses),
            "alerts": sum(len(ids) for ids in new_ids.values()),
            "tasks": {
                task: {
                    "version": row["version"],
                    "status": row["status"],
                    "wake": result.wakeups.get(task),
                    "raised": sorted(self.raised.get(task, ())),
                }
                for task, row in result.statuses.items()
            },
            "cached": len(self.folds) if self.evaluators is None else sum(self.evaluators.cached.values()),
        }

    def _partitioner(self, topic: str) -> Any:
        """``key -> partition`` for ``topic``: the Java client's murmur2 rule (kafka-python's
        ``DefaultPartitioner``, which the producer would apply), memoised per key and per partition count.
        Given explicitly, the producer skips its own partitioner, which sorts the topic's partitions on
        every send (measured: 3.5 % of the projector's time)."""
        from kafka.partitioner.default import murmur2

        partitions = sorted(self.producer.partitions_for(topic))
        cache = self.partitions.setdefault((topic, tuple(partitions)), {})
        count = len(partitions)

        def partition(key: bytes) -> int:
            found = cache.get(key)
            if found is None:
                if len(cache) >= PARTITION_CACHE:
                    cache.clear()
                found = cache[key] = partitions[(murmur2(key) & 0x7FFFFFFF) % count]
            return found

        return partition

    def query(self, statement: str) -> tuple[list[str], list[tuple]]:
        """One read-only statement on the analytical store (for readers served by this process)."""
        from connectors.sql import run_sql

        with self.lock:
            return run_sql(self.client, statement)

    def close(self) -> None:
        for name, writer in self.writers.items():
            try:
                writer.close()
            except Exception as error:  # noqa: BLE001 - report, keep closing
                log.warning("projector: final flush of %s failed: %s", name, error)
        for resource in (self.evaluators, self.producer, self.client, self.ledger):
            if resource is not None:
                try:
                    resource.close()
                except Exception as error:  # noqa: BLE001
                    log.warning("projector: closing %s failed: %s", type(resource).__name__, error)


def _connect_when_free(connect: Any, settings: Settings, wait_s: float = 30.0) -> Any:
    """Open the analytical store, waiting while a previous owner (a projector killed with its worker)
    still holds the chdb directory."""
    from connectors.clickhouse import ClickHouseError

    deadline = time.monotonic() + wait_s
    while True:
        try:
            return connect(settings=settings)
        except ClickHouseError as error:
            if "another process owns" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: end of file on the pipe still ends the child
        pass


def child_main(conn: Any, settings: Settings, clock_origin: float, parent_pid: int) -> None:
    """The child's loop: one request at a time, in order, until ``close`` or the pipe's end. Every chdb call
    (requests and the endpoint's readers) runs on one thread, ``chdb``."""
    from concurrent.futures import ThreadPoolExecutor

    _die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from connectors.logs import configure

    configure()
    projector = Projector(settings, clock_origin)
    chdb = ThreadPoolExecutor(1, "chdb")

    def submit(fn: Any) -> Any:
        return chdb.submit(fn).result()

    from connectors.olap_server import serve_owner

    server = None
    try:
        try:
            chdb.submit(projector.open).result()  # at once: the endpoint serves even before any event
        except Exception as error:  # noqa: BLE001 - every request is answered with the reason
            log.error("projector: cannot open the stores: %s", error)
            failed = f"{type(error).__name__}: {error}"
        else:
            failed = None
            server = serve_owner(settings, submit)
        while True:
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                log.warning("projector: the worker is gone; stopping")
                return
            if kind == "close":
                conn.send(("ok", None))
                return
            if failed is not None:
                conn.send(("error", f"the projector could not open its stores: {failed}"))
                continue
            try:
                handler = {"open": projector.load_raised, "batch": projector.batch, "tick": projector.tick}[kind]
                conn.send(("ok", chdb.submit(handler, payload).result()))
            except Exception as error:  # noqa: BLE001 - reported to the parent, which stops the worker
                conn.send(("error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))
    finally:
        if server is not None:
            server.close()
            log.info("olap: endpoint stopped")
        chdb.submit(projector.close).result()
        chdb.shutdown()


# -- the parent -----------------------------------------------------------------------------------------------
class ProjectorError(RuntimeError):
    """The projector failed a request or died: the worker must stop (its batch is not acked)."""


class ProjectorClient:
    """The app's handle on the child: ``await call(kind, payload)``; requests are pipelined (several may
    be in flight) and answered in order by a reader thread."""

    def __init__(self, settings: Settings, clock_origin: float) -> None:
        self.settings = settings
        self.clock_origin = clock_origin
        self.process: Any = None
        self._conn: Any = None
        self._pending: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = deque()
        self._send_lock = threading.Lock()
        # requests are written to the pipe by a thread: a write blocks while the child is busy with the
        # previous request (the pipe holds 64 KiB), and must not block faust's event loop meanwhile
        self._outbox: queue.SimpleQueue[tuple[str, Any] | None] = queue.SimpleQueue()
        self._reader: threading.Thread | None = None
        self._sender: threading.Thread | None = None
        self._failed: str | None = None

    def start(self) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        parent_conn, child_conn = context.Pipe(duplex=True)
        self.process = context.Process(
            target=child_main,
            args=(child_conn, self.settings, self.clock_origin, os.getpid()),
            name="taskledger-projector",
            daemon=False,
        )
        self.process.start()
        child_conn.close()
        self._conn = parent_conn
        self._reader = threading.Thread(target=self._read, name="taskledger-projector-replies", daemon=True)
        self._reader.start()
        self._sender = threading.Thread(target=self._send, name="taskledger-projector-requests", daemon=True)
        self._sender.start()
        log.info("worker: projector process %d started", self.process.pid)

    def _read(self) -> None:
        while True:
            try:
                status, payload = self._conn.recv()
            except (EOFError, OSError):
                self._fail("the projector process exited")
                return
            if not self._pending:
                continue  # the reply to ``close``
            loop, future = self._pending.popleft()
            if status == "ok":
                loop.call_soon_threadsafe(_settle, future, payload, None)
            else:
                self._fail(f"the projector failed: {payload}")
                loop.call_soon_threadsafe(_settle, future, None, ProjectorError(payload))
                return

    def _send(self) -> None:
        while (request := self._outbox.get()) is not None:
            try:
                self._conn.send(request)
            except (OSError, ValueError) as error:
                self._fail(f"cannot reach the projector: {error}")
                return

    def _fail(self, why: str) -> None:
        if self._failed is None:
            self._failed = why
        while self._pending:
            loop, future = self._pending.popleft()
            loop.call_soon_threadsafe(_settle, future, None, ProjectorError(why))

    def submit(self, kind: str, payload: Any) -> asyncio.Future[Any]:
        """Send a request now; the returned future resolves with its result (requests keep their order)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._failed is not None:
            future.set_exception(ProjectorError(self._failed))
            return future
        with self._send_lock:  # the order of _pending is the order of the requests in the outbox
            self._pending.append((loop, future))
            self._outbox.put((kind, payload))
        return future

    def close(self, timeout: float = 60.0) -> None:
        """Ask the child to flush and stop; wait for it (then kill it if it does not stop)."""
        if self.process is None:
            return
        if self.process.is_alive() and self._failed is None:
            with self._send_lock:
                self._outbox.put(("close", None))  # after every request already queued
        self._outbox.put(None)  # the sender stops once it has written the rest
        self.process.join(timeout)
        if self.process.is_alive():
            log.warning("worker: the projector did not stop in %.0f s; killing it", timeout)
            self.process.kill()
            self.process.join(5)
        try:
            self._conn.close()
        except OSError:
            pass


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
