"""Stream worker throughput (Kafka -> Faust -> ClickHouse), next to a consume-only Faust ceiling on the same
topic, the ClickHouse sink against a raw batched chdb insert of the same rows, and the freshness from a
command to ClickHouse at a steady rate.

Run from the repository root::

    python -m bench.bench_streams [--events N] [--json] [--profile]

One run, one fresh dev broker (tansu, memory storage, a free port; stopped at the end), one fresh SQLite
store in a temporary ``TASKLEDGER_HOME`` (the worker reads it, as ``taskledger worker`` does):

1. load   ~N events through ``TaskLedger.execute_batch`` (``bench.bench_relay.load``: tasks of 6 commands:
          assign, receive, report 40 %, approve, report 80 %, approve; fixed clock; one directive signed by a
          dev PKI), then ``Relay.run(until_caught_up=True)`` to ``taskledger.events.v1`` (6 partitions). Not timed.
2. worker ONE ``python -m streams.run`` subprocess (its own chdb directory; clock fixed at ``AS_OF@0``, a week
          after the history, so every task has clocks to evaluate and alerts to raise). Its log lines
          "worker: batch of N events (total T events, S statuses, A alerts)" are read by a thread every 20 ms
          and stamped with ``perf_counter``. Headline: events/s from the first batch line to the line whose
          total reaches the topic's count (excludes start-up and group join); also from the spawn (with them).
          The worker is then stopped (SIGTERM), which flushes and closes chdb.
3. ceiling a minimal Faust app (same broker settings as ``streams.app``; its own group) whose only agent does
          ``async for batch in stream.take(BATCH, within=WITHIN_S): count += len(batch)`` with the worker's
          ``streams.agents.BATCH`` and ``WITHIN_S``, timed the same way on the same topic: the consume-only
          ceiling of a stock Faust app on this machine and broker; then the same with the worker's own app
          (``streams.transport.WorkerApp``: faust's consumer with a cheaper per-message hand-off, and
          ``streams.app.TUNING``) and primitive, ``stream.noack_take`` and ``stream.ack`` of every event.
4. sink   a subprocess opens the worker's chdb directory (chdb: one process per directory) and inserts the
          same rows into empty copies (``CREATE TABLE .. AS``) of the three tables, timed, 3 rounds interleaved:
          (a) ``projections.writer.BatchWriter`` fed and flushed at the worker's cadence (per worker batch: its
          event rows, its status rows, its alert rows, then the three flushes, as the projector's ``_apply``);
          (a') the same writers fed everything, then flushed (10,000-row inserts);
          (b) raw ``client.insert(table, rows, column_names=...)`` in batches of 10,000 (value lists built
          beforehand, not timed); (b') raw at the worker's cadence. Headline: (a)/(b), rows/s over rows/s.
          Rows: event rows rebuilt from the topic with ``projections.rows.event_row`` (the worker's builder);
          status and alert rows read back from the worker's tables (UUIDs as text, as the builders give them).
          The cadence comes from the log lines (events per batch, status and alert deltas).
5. fresh  the worker restarted on the same home, chdb and group (clock ``AS_OF@1``), the relay following the
          store in a thread of this process (defaults), single commands through ``TaskLedger.execute`` at a
          steady rate (``--fresh-rate`` per s for ``--fresh-seconds``), each stamped (perf_counter) before the
          call. chdb belongs to the worker process, so visibility is observed through the worker's
          publications: it sends a task's status to ``taskledger.task-status.v1`` only AFTER the batch's
          ClickHouse flush (``streams.projector.Projector._apply`` flushes the three writers, then
          publishes). A group-less consumer on that topic: the event (task, version) is visible when a status
          of the task with version >= that version arrives. This is an upper bound of the ClickHouse
          freshness (it adds the worker's publish and the consumer's fetch, ~10 ms). The same consumer also
          reads ``taskledger.events.v1``, which splits the figure into command -> topic (relay) and
          topic -> ClickHouse (worker). When the worker serves its read-only ClickHouse-HTTP endpoint
          (``connectors.olap_server``, ``$TASKLEDGER_HOME/olap-endpoint.json``), a thread also polls it every
          ``--poll-ms`` (``SELECT event_id FROM task_events WHERE position > <start>``): visibility measured in
          ClickHouse itself (resolution: the poll interval plus the query; the queries share the worker's chdb
          thread, so they also cost the worker a little).

``--profile`` runs the worker of step 2 under cProfile instead (bench wrapper: one profiler in the Faust event
loop thread, one around every request in the projector process) and writes
``bench/results/profile-streams-worker.txt``; its rate is slower and is not written to streams.json.

Results: a table (stderr with --json, which prints the JSON on stdout) and bench/results/streams.json.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
from kafka import TopicPartition

from bench.bench_relay import (
    _SCRUBBED_PREFIXES,
    EVENTS_PER_TASK,
    PKI_AT,
    START,
    fresh_store,
    load,
    open_ledger,
    percentiles,
    stored_counts,
    task_commands,
)
from connectors import kafka as k
from connectors.broker import DevBroker, free_port, start_dev_broker
from connectors.relay import Relay
from domain.application import TaskLedger
from domain.contract import EVENTS_TOPIC, STATUS_TOPIC

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
PARTITIONS = 6
AS_OF = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)  # a week after the history (START), Fri 10:00 local
TARGET_RATE = 10_000.0
TARGET_SINK = 0.50
TARGET_P50_MS, TARGET_P99_MS = 1000.0, 3000.0
RAW_BATCH = 10_000
CONTEXT = {  # the figures, measured earlier on the same broker (not re-measured here)
    "naive per-event faust agent (table update + forward)": 3_000,
    "faust stream.take() consume-only ceiling (issue)": 14_000,
    "quix-streams, same job": 52_000,
}
LINE = re.compile(r"(worker|ceiling): batch of (\d+) events \(total (\d+) events, (\d+) statuses, (\d+) alerts")


def say(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ subprocesses
class LogWatch:
    """Tails a worker log every 20 ms; every batch line -> (perf_counter when seen, n, events, statuses,
    alerts)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[tuple[float, int, int, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-logwatch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        offset, rest = 0, b""
        while not self._stop.is_set():
            try:
                with self.path.open("rb") as f:
                    f.seek(offset)
                    chunk = f.read()
            except FileNotFoundError:
                chunk = b""
            now = time.perf_counter()
            if chunk:
                offset += len(chunk)
                *complete, rest = (rest + chunk).split(b"\n")
                for raw in complete:
                    m = LINE.search(raw.decode(errors="replace"))
                    if m:
                        self.lines.append((now, *(int(m.group(i)) for i in range(2, 6))))  # type: ignore[arg-type]
            self._stop.wait(0.02)

    @property
    def total(self) -> int:
        return self.lines[-1][2] if self.lines else 0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def worker_env(home: Path, bootstrap: str, olap: Path, clock: str, trusted_roots: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(_SCRUBBED_PREFIXES)}
    env.update(
        PYTHONPATH=str(ROOT),
        TASKLEDGER_HOME=str(home),
        TASKLEDGER_KAFKA_BOOTSTRAP=bootstrap,
        TASKLEDGER_CLICKHOUSE_URL=f"chdb://{olap}",
        TASKLEDGER_CLOCK=clock,
        TASKLEDGER_TRUSTED_ROOTS=str(trusted_roots),
    )
    return env


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *args], cwd=str(log.parent), env=env, stdout=out, stderr=subprocess.STDOUT
        )


def stop(process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise SystemExit(f"{what} ignored SIGTERM; log:\n{log.read_text(errors='replace')[-4000:]}") from None
    if code != 0:
        raise SystemExit(f"{what} exited with {code}; log:\n{log.read_text(errors='replace')[-4000:]}")


def _descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents.setdefault(int(stat[stat.rindex(")") + 2 :].split()[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        out += children
        todo += children
    return out


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of the threads of ``pid`` and of its child processes (the worker may run
    its projector in one), summed by thread name."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for proc in (pid, *_descendants(pid)):
        try:
            tasks = list(Path(f"/proc/{proc}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                stat = (task / "stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            seconds = (int(fields[11]) + int(fields[12])) / tick
            # Python threads all show as "python" (executor threads, faust's consumer thread)
            if task.name == str(proc):
                key = "main (event loop)" if proc == pid else "child process main"
            else:
                key = "python threads" if name == "python" else name
            if proc != pid and not key.startswith("child"):
                key = f"child {key}"
            out[key] = out.get(key, 0.0) + seconds
    return {name: round(s, 2) for name, s in sorted(out.items(), key=lambda kv: -kv[1])}


def wait_total(
    watch: LogWatch, process: subprocess.Popen[bytes], expected: int, timeout: float, log: Path, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while watch.total < expected:
        if process.poll() is not None:
            raise SystemExit(
                f"{what} exited with {process.returncode}; log:\n{log.read_text(errors='replace')[-4000:]}"
            )
        if time.monotonic() > deadline:
            raise SystemExit(
                f"{what}: {watch.total}/{expected} events after {timeout:.0f} s; log:\n"
                f"{log.read_text(errors='replace')[-4000:]}"
            )
        time.sleep(0.05)


def timed_consumer(
    args: list[str], env: dict[str, str], log: Path, expected: int, what: str, timeout: float
) -> dict[str, Any]:
    """Spawn a consumer process (worker or ceiling), time it through its log to ``expected`` events, stop it."""
    watch = LogWatch(log)
    t_spawn = time.perf_counter()
    process = spawn(args, env, log)
    cpu: dict[str, float] = {}
    try:
        wait_total(watch, process, expected, timeout, log, what)
        cpu = thread_cpu(process.pid)
    finally:
        if process.poll() is None:
            stop(process, log, what)
        watch.stop()
    lines = watch.lines
    first = lines[0]
    last = next(x for x in lines if x[2] >= expected)
    steady_events = last[2] - first[2]  # the first batch's events arrived before its line: excluded
    steady_s = last[0] - first[0]
    batches = [x for x in lines if x[0] <= last[0]]
    return {
        "events": last[2],
        "statuses": last[3],
        "alerts": last[4],
        "batches": len(batches),
        "mean_batch": round(last[2] / len(batches), 1),
        "startup_s": round(first[0] - t_spawn, 3),
        "steady_s": round(steady_s, 3),
        "steady_events": steady_events,
        "events_per_s": round(steady_events / steady_s, 1) if steady_s > 0 else None,
        "statuses_per_s": round((last[3] - first[3]) / steady_s, 1) if steady_s > 0 else None,
        "with_startup_s": round(last[0] - t_spawn, 3),
        "events_per_s_with_startup": round(last[2] / (last[0] - t_spawn), 1),
        "cpu_s_by_thread": cpu,
        "cpu_s": round(sum(cpu.values()), 2),
        "cadence": [[n, s, a] for (_t, n, _e, s, a) in _deltas(batches)],
    }


def _deltas(lines: list[tuple[float, int, int, int, int]]) -> list[tuple[float, int, int, int, int]]:
    """Per batch: (t, events, events total, statuses of the batch, alerts of the batch)."""
    out, s0, a0 = [], 0, 0
    for t, n, e, s, a in lines:
        out.append((t, n, e, s - s0, a - a0))
        s0, a0 = s, a
    return out


# ---------------------------------------------------------------------------- ceiling (child)
def ceiling_main(bootstrap: str, app_id: str, datadir: str, mode: str = "take") -> int:
    """A consume-only Faust app: the broker settings of ``streams.app.make_app``, one agent that counts.
    ``mode`` ``take``: stock ``faust.App`` and ``stream.take`` (the issue's ceiling); ``noack_take``: the
    worker's own app (``streams.transport.WorkerApp``, ``streams.app.TUNING``) and primitive,
    ``stream.noack_take`` then ``stream.ack`` of every event."""
    import logging

    import faust

    from streams.agents import BATCH, WITHIN_S
    from streams.app import app_config
    from streams.run import run_app
    from streams.transport import WorkerApp

    log = logging.getLogger("bench.ceiling")
    take, within = BATCH, WITHIN_S
    # take: stock faust (the ceiling); noack_take: the worker's own app class, transport and tuning
    stock = mode == "take"
    config = app_config(bootstrap, datadir, tuning=not stock, topic_partitions=PARTITIONS)
    app = faust.App(app_id, **config) if stock else WorkerApp(app_id, **config)
    if not stock:
        app.dense_topics = frozenset({EVENTS_TOPIC})  # as streams.app.make_app
    topic = app.topic(EVENTS_TOPIC, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    total = [0]

    @app.agent(topic, name="bench-ceiling")
    async def count(stream: Any) -> None:
        batches = stream.take(take, within=within) if mode == "take" else stream.noack_take(take, within=within)
        async for batch in batches:
            total[0] += len(batch)
            if mode != "take":
                for event in batch:
                    await stream.ack(event)
            log.info("ceiling: batch of %d events (total %d events, 0 statuses, 0 alerts)", len(batch), total[0])

    return run_app(app)


# ----------------------------------------------------------------------- profiled worker (child)
PROJECTOR_PROFILE_ENV = "BENCH_STREAMS_PROJECTOR_PROFILE"


def profiled_projector_main(*args: Any) -> None:
    """The projector process (``streams.projector.child_main``) with cProfile around every ``batch`` and
    ``tick`` request (they run in its ``chdb`` thread: fold, evaluation, chdb inserts, publications); the
    statistics go to the file named by ``$BENCH_STREAMS_PROJECTOR_PROFILE`` when it stops."""
    from streams import projector

    prof, spent = cProfile.Profile(), [0.0]

    def wrap(original: Any) -> Any:
        def profiled(self: Any, payload: Any) -> Any:
            t0 = time.perf_counter()
            prof.enable()
            try:
                return original(self, payload)
            finally:
                prof.disable()
                spent[0] += time.perf_counter() - t0

        return profiled

    projector.Projector.batch = wrap(projector.Projector.batch)  # type: ignore[method-assign]
    projector.Projector.tick = wrap(projector.Projector.tick)  # type: ignore[method-assign]
    try:
        projector.child_main(*args)
    finally:
        text = io.StringIO()
        text.write(f"projector: batch + tick requests, {spent[0]:.2f} s under the profiler\n\n")
        stats = pstats.Stats(prof, stream=text)
        stats.sort_stats("cumulative").print_stats(50)
        stats.sort_stats("tottime").print_stats(35)
        Path(os.environ[PROJECTOR_PROFILE_ENV]).write_text(text.getvalue())


def profiled_worker_main(out: str) -> int:
    """``streams.run.run_worker`` with cProfile in the Faust event loop thread, and the projector process
    started as ``profiled_projector_main`` (spawn imports it by name from this module)."""
    from streams import projector
    from streams.run import run_worker

    os.environ[PROJECTOR_PROFILE_ENV] = out + ".projector"
    projector.child_main = profiled_projector_main  # type: ignore[assignment]  # ProjectorClient.start's target
    loop_prof = cProfile.Profile()
    sys.argv = sys.argv[:1]
    loop_prof.enable()
    try:
        code = run_worker()
    finally:
        loop_prof.disable()
        text = io.StringIO()
        for _ in range(100):  # the projector writes its profile once it has stopped
            if Path(out + ".projector").exists():
                break
            time.sleep(0.1)
        projector_text = Path(out + ".projector").read_text() if Path(out + ".projector").exists() else "(none)\n"
        text.write("==================== PROJECTOR PROCESS (batch + tick requests)\n" + projector_text)
        text.write("==================== FAUST EVENT LOOP THREAD\n")
        stats = pstats.Stats(loop_prof, stream=text)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(35)
        Path(out).write_text(text.getvalue())
    return code


# ------------------------------------------------------------------------------- sink (child)
def sink_main(olap: str, bootstrap: str, cadence_file: str, rounds: int) -> int:
    """Insert the worker's rows into empty copies of its tables: BatchWriter vs raw client.insert."""
    from connectors.clickhouse import connect
    from projections.rows import event_row
    from projections.schema import ALERT_COLUMNS, EVENT_COLUMNS, STATUS_COLUMNS
    from projections.writer import BatchWriter

    cadence: list[list[int]] = json.loads(Path(cadence_file).read_text())
    columns = {"task_events": EVENT_COLUMNS, "task_status": STATUS_COLUMNS, "task_alerts": ALERT_COLUMNS}
    client = connect(f"chdb://{olap}")
    try:
        rows: dict[str, list[dict[str, Any]]] = {
            "task_events": [event_row(orjson.loads(r.value)) for r in k.read_all(bootstrap, EVENTS_TOPIC, 300)]
        }
        for table in ("task_status", "task_alerts"):
            cols = columns[table]
            result = client.query(f"SELECT {', '.join(cols)} FROM {table}")
            rows[table] = [
                {c: (str(v) if isinstance(v, UUID) else v) for c, v in zip(cols, r, strict=True)}
                for r in result.result_rows
            ]
        # per worker batch: how many rows of each table (cycling through the rows if the table merged some away)
        plan = [dict(zip(columns, batch, strict=True)) for batch in cadence]

        def sliced(table: str) -> list[list[dict[str, Any]]]:
            source, out, i = rows[table], [], 0
            for batch in plan:
                n = batch[table]
                out.append([source[(i + j) % len(source)] for j in range(n)] if source else [])
                i += n
            return out

        batches = {t: sliced(t) for t in columns}
        flat = {t: [r for b in batches[t] for r in b] for t in columns}
        values = {t: [[r[c] for c in columns[t]] for r in flat[t]] for t in columns}
        batch_values = {t: [[[r[c] for c in columns[t]] for r in b] for b in batches[t]] for t in columns}
        copies = {t: f"bench_sink_{t}" for t in columns}
        for t, copy in copies.items():
            client.command(f"DROP TABLE IF EXISTS {copy}")
            client.command(f"CREATE TABLE {copy} AS {t}")

        def clear() -> None:
            for copy in copies.values():
                client.command(f"TRUNCATE TABLE {copy}")

        def writer_cadence() -> None:
            inf = float("inf")
            writers = {t: BatchWriter(client, copies[t], columns[t], 10_000, inf) for t in columns}
            for i in range(len(plan)):
                for t in columns:
                    writers[t].add(batches[t][i])
                for w in writers.values():
                    w.flush()

        def writer_bulk() -> None:
            inf = float("inf")
            for t in columns:
                w = BatchWriter(client, copies[t], columns[t], 10_000, inf)
                w.add(flat[t])
                w.flush()

        def raw_bulk() -> None:
            for t in columns:
                v = values[t]
                for s in range(0, len(v), RAW_BATCH):
                    client.insert(copies[t], v[s : s + RAW_BATCH], column_names=columns[t])

        def raw_cadence() -> None:
            for i in range(len(plan)):
                for t in columns:
                    if batch_values[t][i]:
                        client.insert(copies[t], batch_values[t][i], column_names=columns[t])

        runs = {
            "writer_cadence": writer_cadence,
            "writer_bulk": writer_bulk,
            "raw_bulk": raw_bulk,
            "raw_cadence": raw_cadence,
        }
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        held: dict[str, int] = {}
        for fn in runs.values():  # warm-up, not timed (first inserts into new tables)
            clear()
            fn()
        for _ in range(rounds):
            for name, fn in runs.items():
                clear()
                t0 = time.perf_counter()
                fn()
                seconds[name].append(time.perf_counter() - t0)
                held[name] = sum(
                    int(client.query(f"SELECT count() FROM {c}").result_rows[0][0]) for c in copies.values()
                )  # less than inserted only if a merge ran already
        for copy in copies.values():
            client.command(f"DROP TABLE IF EXISTS {copy}")
        print(
            json.dumps(
                {
                    "rows": {t: len(flat[t]) for t in columns},
                    "distinct_rows_read": {t: len(rows[t]) for t in columns},
                    "worker_batches": len(plan),
                    "rows_held_after_last_round": held,
                    "seconds": {name: [round(s, 4) for s in v] for name, v in seconds.items()},
                }
            )
        )
    finally:
        client.close()
    return 0


# ---------------------------------------------------------------------------------- freshness
def start_reader(bootstrap: str, stop_: threading.Event) -> tuple[threading.Thread, threading.Event, dict[str, Any]]:
    """Group-less consumer at the true end of the status and events topics: arrival times."""
    seen: dict[str, Any] = {"status": {}, "events": {}}  # task -> [(arrival, version)], event_id -> arrival
    ready = threading.Event()
    ends = {t: k.end_offsets(bootstrap, t) for t in (STATUS_TOPIC, EVENTS_TOPIC)}

    def consume() -> None:
        reader = k.consumer(bootstrap, group=None, from_beginning=False, topics=[], fetch_max_wait_ms=10)
        try:
            tps = [TopicPartition(t, p) for t, parts in ends.items() for p in sorted(parts)]
            reader.assign(tps)
            for tp in tps:
                reader.seek(tp, ends[tp.topic][tp.partition])
            reader.poll(timeout_ms=50)
            ready.set()
            status, events = seen["status"], seen["events"]
            while not stop_.is_set():
                batches = reader.poll(timeout_ms=100)
                now = time.perf_counter()
                for tp, records in batches.items():
                    for r in records:
                        value = orjson.loads(r.value)
                        if tp.topic == STATUS_TOPIC:
                            status.setdefault(r.key.decode(), []).append((now, int(value["version"])))
                        else:
                            events.setdefault(value["event_id"], now)
        finally:
            reader.close()

    thread = threading.Thread(target=consume, name="bench-reader", daemon=True)
    thread.start()
    return thread, ready, seen


def start_poller(
    home: Path, since: int, every_s: float, stop_: threading.Event
) -> tuple[threading.Thread | None, dict[str, Any]]:
    """Poll the worker's read-only ClickHouse-HTTP endpoint (``connectors.olap_server``, discovered through
    ``$TASKLEDGER_HOME/olap-endpoint.json``) for the event ids stored after position ``since``: event_id ->
    when a query first returned it (perf_counter at the response)."""
    polled: dict[str, Any] = {"events": {}, "query_ms": [], "errors": 0, "url": None}
    discovery = home / "olap-endpoint.json"
    if not discovery.exists():
        return None, polled
    url = json.loads(discovery.read_text())["url"]
    polled["url"] = url
    sql = f"SELECT event_id FROM task_events WHERE position > {int(since)} FORMAT TabSeparated".encode()

    def poll() -> None:
        import urllib.request

        events, query_ms = polled["events"], polled["query_ms"]
        while not stop_.is_set():
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(urllib.request.Request(url, data=sql, method="POST"), timeout=10) as r:
                    body = r.read()
            except Exception:  # noqa: BLE001 - counted; the worker may be busy or stopping
                polled["errors"] += 1
                stop_.wait(every_s)
                continue
            now = time.perf_counter()
            query_ms.append((now - t0) * 1000)
            for line in body.split(b"\n"):
                if line:
                    events.setdefault(line.decode(), now)
            stop_.wait(max(0.0, every_s - (now - t0)))

    thread = threading.Thread(target=poll, name="bench-olap-poller", daemon=True)
    thread.start()
    return thread, polled


def visible_at(arrivals: list[tuple[float, int]] | None, version: int) -> float | None:
    for when, v in arrivals or ():
        if v >= version:
            return when
    return None


def measure_freshness(
    app: TaskLedger,
    directive: UUID,
    bootstrap: str,
    env: dict[str, str],
    log: Path,
    rate: float,
    seconds: float,
    quiet: bool,
    home: Path,
    poll_s: float,
) -> dict[str, Any]:
    from domain.contract import event_id_for

    stop_reader, stop_poller = threading.Event(), threading.Event()
    reader, reader_ready, seen = start_reader(bootstrap, stop_reader)
    poller: threading.Thread | None = None
    polled: dict[str, Any] = {"events": {}, "query_ms": [], "errors": 0, "url": None}
    relay = Relay(app, bootstrap)
    relay_ready = threading.Event()
    relay_thread = threading.Thread(
        target=lambda: relay.run(on_progress=lambda _s: relay_ready.set()), name="bench-relay", daemon=True
    )
    relay_thread.start()
    watch = LogWatch(log)
    worker = spawn(["-m", "streams.run"], env, log)
    try:
        if not (reader_ready.wait(30) and relay_ready.wait(30)):
            raise SystemExit("freshness: the relay or the reader did not start within 30 s")
        # warm-up: one task; the steady phase starts once the worker published its status
        t_spawn = time.perf_counter()
        warm = app.execute(*task_commands(directive, "warm", 0)[0])
        deadline = time.monotonic() + 120
        while visible_at(seen["status"].get(str(warm.aggregate_id)), warm.version) is None:
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    f"freshness: the restarted worker did not publish the warm-up status; log:\n"
                    f"{log.read_text(errors='replace')[-4000:]}"
                )
            time.sleep(0.05)
        ready_s = time.perf_counter() - t_spawn
        time.sleep(1.0)
        poller, polled = start_poller(home, app.recorder.max_notification_id() or 0, poll_s, stop_poller)
        if poller is None:
            say("  no olap endpoint (connectors.olap_server) found: the status topic is the only proxy")
        say(f"  worker restarted and caught up in {ready_s:.1f} s; {rate:g} commands/s for {seconds:g} s")
        sent: dict[tuple[str, int], tuple[float, float]] = {}
        count = int(rate * seconds)
        interval = 1.0 / rate
        commands = (cmd for i in range(count // EVENTS_PER_TASK + 1) for cmd in task_commands(directive, "f", i))
        behind = 0
        cpu0 = thread_cpu(worker.pid)
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
            sent[(str(result.aggregate_id), result.version)] = (submitted, time.perf_counter())
            if not quiet and (n + 1) % int(rate * 5) == 0:
                say(f"  {n + 1}/{count} commands, worker total {watch.total}")
        elapsed = time.perf_counter() - t_start
        cpu1 = thread_cpu(worker.pid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(visible_at(seen["status"].get(t), v) is None for t, v in sent):
            time.sleep(0.05)
        wanted = {str(event_id_for(UUID(t), v)) for t, v in sent}
        while poller is not None and time.monotonic() < deadline and not wanted <= polled["events"].keys():
            time.sleep(0.05)
    finally:
        relay.stop()
        relay_thread.join(30)
        relay.close()
        if worker.poll() is None:
            stop(worker, log, "the worker (freshness)")
        stop_reader.set()
        reader.join(30)
        stop_poller.set()
        if poller is not None:
            poller.join(30)
        watch.stop()
    to_ch, to_topic, topic_to_ch, execute_ms = [], [], [], []
    missing = 0
    for (task, version), (submitted, committed) in sent.items():
        execute_ms.append((committed - submitted) * 1000)
        visible = visible_at(seen["status"].get(task), version)
        if visible is None:
            missing += 1
            continue
        to_ch.append((visible - submitted) * 1000)
        on_topic = seen["events"].get(str(event_id_for(UUID(task), version)))
        if on_topic is not None:
            to_topic.append((on_topic - submitted) * 1000)
            topic_to_ch.append((visible - on_topic) * 1000)
    polled_ms = [
        (polled["events"][e] - submitted) * 1000
        for (task, version), (submitted, _c) in sent.items()
        if (e := str(event_id_for(UUID(task), version))) in polled["events"]
    ]
    sizes = [n for (_t, n, _e, _s, _a) in watch.lines]
    worker_cpu = {name: round(cpu1.get(name, 0.0) - cpu0.get(name, 0.0), 2) for name in cpu1}
    return {
        "rate_target_per_s": rate,
        "rate_achieved_per_s": round(count / elapsed, 1),
        "commands": count,
        "late_commands": behind,
        "visible": len(to_ch),
        "missing": missing,
        "restart_to_ready_s": round(ready_s, 2),
        "freshness_ms": percentiles(to_ch),
        "split_ms": {"command_to_topic": percentiles(to_topic), "topic_to_clickhouse": percentiles(topic_to_ch)},
        "olap_endpoint": {
            "url": polled["url"],
            "poll_every_s": poll_s,
            "visible": len(polled_ms),
            "freshness_ms": percentiles(polled_ms),
            "query_ms": percentiles(polled["query_ms"]),
            "polls": len(polled["query_ms"]),
            "errors": polled["errors"],
        },
        "execute_ms": percentiles(execute_ms),
        "worker_batches": len(sizes),
        "worker_batch_events": percentiles([float(s) for s in sizes]),
        "worker_cpu_percent": round(sum(worker_cpu.values()) / elapsed * 100, 1),
        "worker_cpu_s_by_thread": {n: s for n, s in sorted(worker_cpu.items(), key=lambda kv: -kv[1]) if s > 0},
    }


# ------------------------------------------------------------------------------------- bench
def bench(args: argparse.Namespace, workdir: Path, bootstrap: str) -> dict[str, Any]:
    quiet = args.quiet
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "platform": platform.platform(),
        },
        "broker": f"tansu (memory) {bootstrap}",
        "partitions": PARTITIONS,
        "as_of": AS_OF.isoformat(),
        "context_issue_events_per_s": CONTEXT,
    }
    # TASKLEDGER_WORKER_EVALUATORS of the worker (both runs): the worker's default unless --evaluators
    evaluators = {} if args.evaluators is None else {"TASKLEDGER_WORKER_EVALUATORS": str(args.evaluators)}
    result["worker_evaluators"] = args.evaluators if args.evaluators is not None else "default"
    with fresh_store("sqlite", workdir, "") as store:
        home = workdir / "store"
        app, directive = open_ledger(store["env"], workdir)
        trusted_roots = workdir / "pki" / "trusted_roots.pem"
        assert trusted_roots.exists(), trusted_roots
        say(f"loading ~{args.events:,} events through execute_batch ({args.load_batch} commands per save)")
        result["load"] = load(app, directive, args.events, args.load_batch, quiet)
        app.close()
        app = TaskLedger(env=store["env"], clock=lambda: START, trusted_roots=app.trusted_roots)
        try:
            count, public = stored_counts(app)
            k.ensure_topics(bootstrap, k.topic_specs(PARTITIONS))
            relay = Relay(app, bootstrap)
            t0 = time.perf_counter()
            relay.run(until_caught_up=True)
            relay.close()
            relay_s = time.perf_counter() - t0
            on_topic = sum(k.end_offsets(bootstrap, EVENTS_TOPIC).values())
            assert on_topic >= public, f"the topic holds {on_topic} messages, the store {public} public events"
            result.update(
                events_stored=count,
                events_public=public,
                events_on_topic=on_topic,
                relay={"seconds": round(relay_s, 2), "events_per_s": round(public / relay_s, 1)},
            )
            say(f"relayed {public:,} events in {relay_s:.1f} s; the topic holds {on_topic:,}")

            # 2: the worker
            olap = workdir / "olap"
            log = workdir / "worker.log"
            env = worker_env(home, bootstrap, olap, AS_OF.isoformat() + "@0", trusted_roots) | evaluators
            args_worker = (
                ["-m", "bench.bench_streams", "--_profiled-worker", str(workdir / "profile.txt")]
                if args.profile
                else ["-m", "streams.run"]
            )
            say(f"worker: one subprocess{' under cProfile' if args.profile else ''}, clock {AS_OF.isoformat()}@0")
            worker = timed_consumer(args_worker, env, log, on_topic, "the worker", args.timeout)
            result["worker"] = worker
            say(
                f"  worker: {worker['events_per_s']:,.0f} ev/s after the first batch "
                f"({worker['events_per_s_with_startup']:,.0f} with start-up), {worker['statuses']:,} statuses, "
                f"{worker['alerts']:,} alerts, {worker['batches']} batches"
            )
            if args.profile:
                path = RESULTS_DIR / "profile-streams-worker.txt"
                path.write_text(
                    f"cProfile of the stream worker: {worker['events']} events, "
                    f"{worker['events_per_s']} ev/s under the profiler (steady part)\n\n"
                    + (workdir / "profile.txt").read_text()
                )
                result["profile"] = str(path.relative_to(ROOT))

            # 3: consume-only ceilings: stream.take (the issue's) and noack_take + ack (the worker's primitive)
            from streams.agents import BATCH, WITHIN_S

            for mode, key in (("take", "ceiling"), ("noack_take", "ceiling_noack")):
                say(f"ceiling: consume-only faust app ({mode} with the worker's batch and wait, count only)")
                ceiling = timed_consumer(
                    [
                        "-m",
                        "bench.bench_streams",
                        "--_ceiling",
                        bootstrap,
                        f"bench-ceiling-{uuid.uuid4().hex[:8]}",
                        str(workdir / key),
                        mode,
                    ],
                    worker_env(home, bootstrap, workdir / "unused", "", trusted_roots),
                    workdir / f"{key}.log",
                    on_topic,
                    f"the {mode} ceiling app",
                    args.timeout,
                )
                ceiling["take"] = {"mode": mode, "max": BATCH, "within_s": WITHIN_S}
                for drop in ("statuses", "alerts", "statuses_per_s", "cadence"):
                    ceiling.pop(drop, None)
                result[key] = ceiling
                share = result[f"worker_of_{key}"] = round(worker["events_per_s"] / ceiling["events_per_s"], 4)
                say(f"  ceiling: {ceiling['events_per_s']:,.0f} ev/s; worker = {share * 100:.1f} %")

            # 4: sink vs raw (a subprocess: chdb lets one process open the directory)
            cadence_file = workdir / "cadence.json"
            cadence_file.write_text(json.dumps(worker["cadence"]))
            say(f"sink: BatchWriter vs raw client.insert, same rows, {args.sink_rounds} rounds")
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.bench_streams",
                    "--_sink",
                    str(olap),
                    bootstrap,
                    str(cadence_file),
                    str(args.sink_rounds),
                ],
                cwd=str(ROOT),
                env=worker_env(home, bootstrap, olap, "", trusted_roots),
                capture_output=True,
                check=False,
                timeout=1800,
            )
            if out.returncode != 0:
                raise SystemExit(f"sink subprocess failed:\n{out.stderr.decode(errors='replace')[-4000:]}")
            result["sink"] = sink_summary(json.loads(out.stdout.decode().strip().splitlines()[-1]))
            say(
                f"  sink (a) {result['sink']['rows_per_s']['writer_cadence']:,.0f} rows/s, (b) "
                f"{result['sink']['rows_per_s']['raw_bulk']:,.0f} rows/s: {result['sink']['ratio'] * 100:.1f} %"
            )
            del worker["cadence"]

            # 5: freshness
            if not args.no_fresh:
                say("freshness: worker restarted (same home, chdb, group; clock @1), relay in a thread")
                fresh_env = worker_env(home, bootstrap, olap, AS_OF.isoformat() + "@1", trusted_roots) | evaluators
                result["freshness"] = measure_freshness(
                    app,
                    directive,
                    bootstrap,
                    fresh_env,
                    workdir / "worker-fresh.log",
                    args.fresh_rate,
                    args.fresh_seconds,
                    quiet,
                    home,
                    args.poll_ms / 1000,
                )
            result["olap_server_available"] = (ROOT / "connectors" / "olap_server.py").exists()
        finally:
            app.close()
    result["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


def sink_summary(raw: dict[str, Any]) -> dict[str, Any]:
    total = sum(raw["rows"].values())
    med = {name: statistics.median(v) for name, v in raw["seconds"].items()}
    rounds = [a / b for a, b in zip(raw["seconds"]["raw_bulk"], raw["seconds"]["writer_cadence"], strict=True)]
    return {
        **raw,
        "rows_total": total,
        "rows_per_s": {name: round(total / s, 1) for name, s in med.items()},
        "ratio": round(statistics.median(rounds), 4),  # (a)/(b) as rates = b seconds / a seconds
        "ratio_rounds": [round(x, 4) for x in rounds],
        "ratio_writer_bulk_to_raw_bulk": round(med["raw_bulk"] / med["writer_bulk"], 4),
        "ratio_raw_cadence_to_raw_bulk": round(med["raw_bulk"] / med["raw_cadence"], 4),
        "target": TARGET_SINK,
        "pass": statistics.median(rounds) >= TARGET_SINK,
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def table(r: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    w, c = r["worker"], r["ceiling"]
    add(
        f"\nstream worker bench — {r['events_on_topic']:,} events on {EVENTS_TOPIC} ({r['partitions']} partitions), "
        f"{r['broker']}, load average {r['machine']['load_average']}"
    )
    add(
        f"load {r['load']['events_per_s']:,.0f} ev/s, relay {r['relay']['events_per_s']:,.0f} ev/s (not timed here); "
        f"worker evaluators: {r.get('worker_evaluators', 'default')}"
    )
    add("")
    add(f"{'measurement':<62} {'value':>12}   target")
    add(
        f"{'1. worker events/s (first batch -> last; status+alerts+sink)':<62} {w['events_per_s']:>12,.0f}   "
        f">= {TARGET_RATE:,.0f}: {verdict(w['events_per_s'] >= TARGET_RATE)}"
        + ("  (under cProfile)" if r.get("profile") else "")
    )
    add(
        f"{'   with start-up and group join (' + str(w['startup_s']) + ' s before the 1st batch)':<62} "
        f"{w['events_per_s_with_startup']:>12,.0f}"
    )
    add(
        f"{'   statuses/s; statuses, alerts written':<62} {w['statuses_per_s']:>12,.0f}   "
        f"{w['statuses']:,} statuses, {w['alerts']:,} alerts, {w['batches']} batches (mean {w['mean_batch']})"
    )
    add(
        f"{'   worker CPU s by thread':<62} {w['cpu_s']:>12}   "
        + ", ".join(f"{n} {s}" for n, s in list(w["cpu_s_by_thread"].items())[:5])
    )
    add(
        f"{'   faust consume-only ceiling (stream.take, count only)':<62} {c['events_per_s']:>12,.0f}   "
        f"(start-up {c['startup_s']} s)"
    )
    add(f"{'   worker / ceiling':<62} {r['worker_of_ceiling'] * 100:>11.1f} %")
    if "ceiling_noack" in r:
        add(
            f"{'   consume-only ceiling, worker app (noack_take + ack)':<62} "
            f"{r['ceiling_noack']['events_per_s']:>12,.0f}   worker = {r['worker_of_ceiling_noack'] * 100:.1f} %"
        )
    for label, value in CONTEXT.items():
        add(f"{'   (issue, for context) ' + label:<62} {value:>12,}")
    s = r["sink"]
    rps = s["rows_per_s"]
    add(
        f"{'2. sink rows (events, statuses, alerts)':<62} {s['rows_total']:>12,}   "
        + ", ".join(f"{t} {n:,}" for t, n in s["rows"].items())
    )
    add(
        f"{'   (a) BatchWriter, worker cadence (' + str(s['worker_batches']) + ' flushes) rows/s':<62} "
        f"{rps['writer_cadence']:>12,.0f}"
    )
    add(f"{'   (a_) BatchWriter, 10,000-row inserts rows/s':<62} {rps['writer_bulk']:>12,.0f}")
    add(f"{'   (b) raw client.insert, 10,000-row batches rows/s':<62} {rps['raw_bulk']:>12,.0f}")
    add(f"{'   (b_) raw client.insert, worker cadence rows/s':<62} {rps['raw_cadence']:>12,.0f}")
    add(
        f"{'   RATIO (a)/(b) (median of rounds)':<62} {s['ratio'] * 100:>11.1f} %   >= 50 %: {verdict(s['pass'])}   "
        + " / ".join(f"{x * 100:.1f}" for x in s["ratio_rounds"])
    )
    add(
        f"{'   (a_)/(b): the writer itself; (b_)/(b): the cadence':<62} "
        f"{s['ratio_writer_bulk_to_raw_bulk'] * 100:>11.1f} %   {s['ratio_raw_cadence_to_raw_bulk'] * 100:.1f} %"
    )
    f = r.get("freshness")
    if f:
        fr = f["freshness_ms"]
        ok = fr["p50"] <= TARGET_P50_MS and fr["p99"] <= TARGET_P99_MS
        add(
            f"{'3. freshness command -> ClickHouse (ms), ' + str(f['rate_achieved_per_s']) + ' ev/s':<62} "
            f"p50 {fr['p50']:,.0f}  p95 {fr['p95']:,.0f}  p99 {fr['p99']:,.0f}  max {fr['max']:,.0f}   "
            f"p50 <= 1 s, p99 <= 3 s: {verdict(ok)}"
        )
        add(
            f"{'   visible / commands (missing)':<62} {f['visible']:>12,}   of {f['commands']:,} "
            f"({f['missing']} missing)"
        )
        for part, label in (
            ("command_to_topic", "command -> events topic (relay)"),
            ("topic_to_clickhouse", "events topic -> ClickHouse (worker)"),
        ):
            p = f["split_ms"][part]
            add(
                f"{'   ' + label:<62} p50 {p['p50']:,.0f}  p95 {p['p95']:,.0f}  p99 {p['p99']:,.0f}  "
                f"max {p['max']:,.0f}"
            )
        o = f["olap_endpoint"]
        if o["visible"]:
            p = o["freshness_ms"]
            add(
                f"{'   polled in ClickHouse via the worker endpoint (every ' + str(o['poll_every_s']) + ' s)':<62} "
                f"p50 {p['p50']:,.0f}  p95 {p['p95']:,.0f}  p99 {p['p99']:,.0f}  max {p['max']:,.0f}   "
                f"({o['visible']:,} seen; query p50 {o['query_ms']['p50']:.0f} ms)"
            )
        b = f["worker_batch_events"] or {"p50": 0, "max": 0}
        add(
            f"{'   worker batches; events per batch p50 / max; worker CPU':<62} {f['worker_batches']:>12}   "
            f"{b['p50']:.0f} / {b['max']:.0f}; {f['worker_cpu_percent']} % of a CPU"
        )
    add("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--_ceiling":
        return ceiling_main(*argv[1:5])
    if argv and argv[0] == "--_sink":
        return sink_main(argv[1], argv[2], argv[3], int(argv[4]))
    if argv and argv[0] == "--_profiled-worker":
        return profiled_worker_main(argv[1])
    parser = argparse.ArgumentParser(prog="python -m bench.bench_streams", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=60_000, help="events to load (default 60,000)")
    parser.add_argument("--load-batch", type=int, default=1000, help="commands per execute_batch while loading")
    parser.add_argument("--sink-rounds", type=int, default=3, help="rounds of the sink measurements (median)")
    parser.add_argument("--fresh-rate", type=float, default=200.0, help="commands (events) per second")
    parser.add_argument("--fresh-seconds", type=float, default=20.0)
    parser.add_argument("--no-fresh", action="store_true", help="skip the freshness run")
    parser.add_argument(
        "--poll-ms", type=float, default=50.0, help="freshness: poll interval of the worker's olap endpoint"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the worker under cProfile (bench/results/profile-streams-worker.txt; the results "
        "go to streams-profiled.json)",
    )
    parser.add_argument(
        "--evaluators", type=int, default=None, help="TASKLEDGER_WORKER_EVALUATORS of the worker (default: its own)"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds a consumer may take to catch up")
    parser.add_argument("--json", action="store_true", help="print the JSON result on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)

    for name in list(os.environ):
        if name.startswith(_SCRUBBED_PREFIXES):
            del os.environ[name]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="taskledger-bench-streams-"))
    broker: DevBroker | None = None
    started = time.perf_counter()
    try:
        broker = start_dev_broker(free_port(), log_path=workdir / "broker.log")
        say(f"broker ready on {broker.bootstrap}; PKI at {PKI_AT.date()}")
        result = bench(args, workdir, broker.bootstrap)
    finally:
        if broker is not None:
            broker.stop()
        if os.environ.get("BENCH_KEEP_WORKDIR"):
            say(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    path = RESULTS_DIR / ("streams-profiled.json" if args.profile else "streams.json")
    path.write_text(json.dumps(result, indent=2) + "\n")
    text = table(result) + f"results: {path.relative_to(ROOT)}  ({result['wall_seconds']} s)\n"
    if args.json:
        sys.stderr.write(text)
        print(json.dumps(result, indent=2))
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
