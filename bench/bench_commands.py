"""Command throughput of TaskLedger, side by side with a raw ``eventsourcing`` save of the same events.

Run from the repository root::

    python -m bench.bench_commands [--backend sqlite|postgres|both] [--tasks N] [--json]

For each backend, two pairs of measurements, each measurement on its own fresh, empty store
(SQLite: a file in a temporary directory; PostgreSQL: a new schema, dropped at the end):

(a) single  ``TaskLedger.execute(actor, cmd)``: one command, one atomic save
(c) raw     ``Application.save(event)``: the very events (a) stored, one save each
(b) bulk    ``TaskLedger.execute_batch(...)``: the same commands, ``--batch`` commands per save
(d) raw     ``Application.save(*events)``: the very events (b) stored, in the same batches

A pair runs interleaved: a chunk of commands through the ledger (timed), the events it
stored read back from its store (not timed), then the raw save of exactly those events
(timed); so both sides see the same machine conditions (other processes, disk, PostgreSQL).

The workload: one signed regular directive (dev PKI, real clock), then N tasks spread over
``--agencies`` agencies, each: AssignTask, ReceiveTask, ReportProgress(50), ApproveProgress,
ReportProgress(100), ApproveProgress, CompleteTask, i.e. 7 commands and 7 events per task,
task after task. Commands carry a command_id (the idempotent path) and are built (pydantic)
inside the timed part, as a request handler would.

Targets (the issue's acceptance): (a)/(c) >= 50 % and (b)/(d) >= 50 %.
A path that misses its target is profiled (cProfile, ``--profile auto``); the report goes
to bench/results/profile-<backend>-<path>.txt.

Results: a table on stdout (on stderr with --json, which prints JSON on stdout), and the
last results of each backend in bench/results/commands-<backend>.json.
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
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from connectors.eventstore import persistence_env
from connectors.pki import init_dev_pki, sign_document
from connectors.settings import Settings
from domain import commands as c
from domain.actors import Actor, Role
from domain.application import TaskLedger
from domain.events import task_id_for
from domain.signatures import document_digest
from domain.values import Confidentiality

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
EVENTS_PER_TASK = 7
TARGET = 0.50

# Variables that would silently change what is measured (cipher, compressor, another store,
# cache settings): the bench configures the store itself and drops these from its own process.
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


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------- progress
class Progress:
    """A one-line counter on stderr: redrawn in place on a TTY, every ~10 % otherwise."""

    def __init__(self, label: str, total: int, enabled: bool = True) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.tty = sys.stderr.isatty()
        self.t0 = time.perf_counter()
        self.next_mark = 0.1

    def update(self, done: int, ledger_rate: float, raw_rate: float) -> None:
        if not self.enabled:
            return
        line = (
            f"  {self.label:<22} {done:>7}/{self.total} events  {time.perf_counter() - self.t0:6.1f} s   "
            f"ledger {ledger_rate:8.0f} ev/s   raw {raw_rate:8.0f} ev/s   "
            f"ratio {ledger_rate / raw_rate * 100 if raw_rate else 0:5.1f} %"
        )
        if self.tty:
            sys.stderr.write("\r" + line + "\x1b[K")
            sys.stderr.flush()
        elif done >= self.next_mark * self.total or done == self.total:
            while done >= self.next_mark * self.total:
                self.next_mark += 0.1
            sys.stderr.write(line + "\n")

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


# ----------------------------------------------------------------------------------- stores
@dataclass
class Backend:
    """Makes fresh, empty stores for one backend and removes them at the end."""

    name: str
    database_url: str = DEFAULT_DATABASE_URL
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    _tmp: Path | None = None
    _schemas: list[str] = field(default_factory=list)

    @contextmanager
    def store(self, label: str) -> Iterator[dict[str, str]]:
        """The eventsourcing environment of a fresh store (SQLite file / PostgreSQL schema)."""
        if self.name == "sqlite":
            if self._tmp is None:
                self._tmp = Path(tempfile.mkdtemp(prefix="taskledger-bench-"))
            home = self._tmp / label
            try:
                yield persistence_env(Settings(home=home, database_url=None, cipher_key=None))
            finally:
                shutil.rmtree(home, ignore_errors=True)
        else:
            schema = f"bench_{self.run_id}_{label}"
            self._execute(f'CREATE SCHEMA "{schema}"')
            self._schemas.append(schema)
            try:
                yield persistence_env(Settings(database_url=self.database_url, postgres_schema=schema, cipher_key=None))
            finally:
                self._drop(schema)

    def _execute(self, sql: str) -> Any:
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description is not None else None

    def _drop(self, schema: str) -> None:
        if schema in self._schemas:
            self._execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            self._schemas.remove(schema)

    def describe(self) -> dict[str, Any]:
        if self.name == "sqlite":
            import sqlite3

            return {
                "sqlite_version": sqlite3.sqlite_version,
                "file": "temporary file (journal_mode=WAL)",
            }
        version = self._execute("SELECT version()")[0][0]
        settings = {
            name: self._execute(f"SHOW {name}")[0][0]
            for name in ("synchronous_commit", "fsync", "wal_sync_method", "shared_buffers")
        }
        return {"server": version, "url": self.database_url, **settings}

    def close(self) -> None:
        for schema in list(self._schemas):
            try:
                self._drop(schema)
            except Exception as error:  # noqa: BLE001 - best effort at exit
                print(f"warning: could not drop schema {schema}: {error}", file=sys.stderr)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


class RawApplication(Application[UUID]):
    """A plain eventsourcing application: the baseline saves events with it, nothing else."""

    name = "taskledger"  # same table names as the ledger


# --------------------------------------------------------------------------------- workload
@dataclass(frozen=True)
class Workload:
    tasks: int
    agencies: int
    batch: int
    directive_id: UUID
    office: Actor
    staff: tuple[Actor, ...]
    leads: tuple[Actor, ...]
    deadline: date

    @property
    def commands(self) -> int:
        return self.tasks * EVENTS_PER_TASK

    def items(self, run: str) -> Iterator[tuple[Actor, c.Command]]:
        """The 7N (actor, command) pairs, task after task; commands are built here (pydantic)."""
        for i in range(self.tasks):
            k = i % self.agencies
            staff, lead = self.staff[k], self.leads[k]
            key = f"{run}-{i}"
            task_id = task_id_for(f"{key}-assign")
            yield (
                self.office,
                c.AssignTask.build(
                    directive_id=self.directive_id,
                    content=f"Bench task {i}: carry out the directive in agency {staff.agency}",
                    assignee=staff.agency,
                    monitor="BKTTW",
                    deadline=self.deadline,
                    command_id=f"{key}-assign",
                ),
            )
            yield staff, c.ReceiveTask.build(task_id=task_id, command_id=f"{key}-receive")
            yield (
                staff,
                c.ReportProgress.build(
                    task_id=task_id,
                    percent=50,
                    note="half of it is done",
                    command_id=f"{key}-report-50",
                ),
            )
            yield lead, c.ApproveProgress.build(task_id=task_id, command_id=f"{key}-approve-50")
            yield (
                staff,
                c.ReportProgress.build(
                    task_id=task_id,
                    percent=100,
                    note="all of it is done",
                    command_id=f"{key}-report-100",
                ),
            )
            yield lead, c.ApproveProgress.build(task_id=task_id, command_id=f"{key}-approve-100")
            yield (
                staff,
                c.CompleteTask.build(
                    task_id=task_id,
                    result="done as directed",
                    products="report no. 1",
                    command_id=f"{key}-complete",
                ),
            )


@dataclass
class Signed:
    """The signed directive document and the trusted roots, made once per run."""

    trusted_roots: tuple[Any, ...]
    document_sha256: str
    bundle: dict[str, Any]


def make_signed(directory: Path) -> Signed:
    from connectors.pki import read_trusted_roots

    pki = init_dev_pki(directory / "pki", now=_now() - timedelta(minutes=5))
    document = b"Directive BENCH-01/CT-TW: every agency reports on its tasks.\n"
    bundle = sign_document(document, key_pem=pki.signer_key.read_bytes(), cert_chain_pem=pki.signer_cert.read_bytes())
    return Signed(read_trusted_roots([pki.trusted_roots]), document_digest(document), bundle)


def make_workload(tasks: int, agencies: int, batch: int) -> Workload:
    codes = [f"AG{n:02d}" for n in range(1, agencies + 1)]
    return Workload(
        tasks=tasks,
        agencies=agencies,
        batch=batch,
        directive_id=UUID(int=0),  # set per store by register_directive
        office=Actor(Role.CENTRAL_OFFICE, "VPTW", "office-1"),
        staff=tuple(Actor(Role.ASSIGNEE, code, f"{code.lower()}-staff") for code in codes),
        leads=tuple(Actor(Role.APPROVER, code, f"{code.lower()}-lead") for code in codes),
        deadline=date.today() + timedelta(days=120),
    )


def open_ledger(env: dict[str, str], signed: Signed) -> TaskLedger:
    return TaskLedger(env=env, clock=_now, trusted_roots=signed.trusted_roots)


def register_directive(app: TaskLedger, workload: Workload, signed: Signed) -> Workload:
    result = app.execute(
        workload.office,
        c.RegisterDirective.build(
            symbol="BENCH-01/CT-TW",
            title="Bench directive",
            summary="Throughput benchmark",
            issued_on=date.today() - timedelta(days=1),
            signer="Bench signer",
            issuing_body="BCHTW",
            presenting_body="VPTW",
            confidentiality=Confidentiality.REGULAR,
            document_sha256=signed.document_sha256,
            signature=signed.bundle,
            command_id="bench-register",
        ),
    )
    return replace(workload, directive_id=result.aggregate_id)


# ------------------------------------------------------------------------------ measurements
@dataclass
class Measure:
    label: str
    events: int = 0
    seconds: float = 0.0
    saves: int = 0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "events": self.events,
            "saves": self.saves,
            "seconds": round(self.seconds, 4),
            "events_per_s": round(self.rate, 1),
        }


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def _take(items: Iterator[Any], n: int) -> list[Any]:
    out = []
    for item in items:
        out.append(item)
        if len(out) == n:
            break
    return out


class LogReader:
    """Reads back, in recorded order, the events a store received since the last read."""

    def __init__(self, app: Application[UUID]) -> None:
        self.app, self.last = app, 0

    def new_events(self) -> list[Any]:
        events = []
        while True:
            notifications = self.app.recorder.select_notifications(start=self.last + 1, limit=1000)
            if not notifications:
                return events
            events += [self.app.mapper.to_domain_event(n) for n in notifications]
            self.last = notifications[-1].id


def _is_task_event(event: Any) -> bool:
    return type(event).__qualname__.startswith("Task.")


def run_pair(
    backend: Backend,
    workload: Workload,
    signed: Signed,
    path: str,
    chunk: int,
    rep: int,
    quiet: bool,
) -> tuple[Measure, Measure, float]:
    """The ledger path ('single' or 'bulk') and its raw baseline, interleaved chunk by chunk.

    Two fresh stores: the ledger runs a chunk of commands (timed; commands are built inside
    the timed part), the events it stored are read back (not timed), then the raw application
    saves exactly those events (timed): one save per event for 'single', one save per batch
    (the same batch) for 'bulk'. Interleaving lets both see the same machine conditions.
    Returns (ledger, raw, mean distinct aggregates per save)."""
    single = path == "single"
    tag = f" #{rep + 1}" if rep else ""
    ledger = Measure(("(a) TaskLedger.execute" if single else "(b) TaskLedger.execute_batch") + tag)
    raw = Measure(("(c) raw save per event" if single else "(d) raw save per batch") + tag)
    aggregates: list[int] = []
    with backend.store(f"{path}{rep}") as env, backend.store(f"raw_{path}{rep}") as raw_env:
        app = open_ledger(env, signed)
        baseline = RawApplication(env=raw_env)
        try:
            wl = register_directive(app, workload, signed)
            log = LogReader(app)
            setup = log.new_events()  # calendar + directive: same starting content, not timed
            baseline.save(*setup)
            items = wl.items(path)
            size = chunk if single else wl.batch
            progress = Progress(f"[{backend.name}] {path}{tag}", wl.commands, not quiet)
            gc.collect()
            while True:
                t0 = time.perf_counter()
                batch = _take(items, size)  # builds the commands (pydantic)
                if not batch:
                    break
                if single:
                    for actor, command in batch:
                        app.execute(actor, command)
                    ledger.saves += len(batch)
                else:
                    app.execute_batch(batch)
                    ledger.saves += 1
                ledger.seconds += time.perf_counter() - t0
                ledger.events += len(batch)

                events = log.new_events()
                if len(events) != len(batch) or not all(map(_is_task_event, events)):
                    raise RuntimeError(f"{path}: {len(batch)} commands stored {len(events)} events")
                t0 = time.perf_counter()
                if single:
                    for event in events:
                        baseline.save(event)
                    raw.saves += len(events)
                else:
                    baseline.save(*events)
                    raw.saves += 1
                    aggregates.append(len({e.originator_id for e in events}))
                raw.seconds += time.perf_counter() - t0
                raw.events += len(events)
                progress.update(ledger.events, ledger.rate, raw.rate)
            progress.close()
            _check_store(app, wl, path)
            _check_store(baseline, wl, f"raw {path}")
        finally:
            app.close()
            baseline.close()
    return ledger, raw, (sum(aggregates) / len(aggregates) if aggregates else 1.0)


def _check_store(app: Application[UUID], workload: Workload, label: str) -> None:
    """The store holds the 2 setup events and the 7N task events, N of them Task.Assigned
    (read back from its notification log, so the check needs nothing outside the bench)."""
    events = LogReader(app).new_events()
    work = [e for e in events if _is_task_event(e)]
    assigned = sum(type(e).__qualname__ == "Task.Assigned" for e in work)
    if len(events) - len(work) != 2 or len(work) != workload.commands or assigned != workload.tasks:
        raise RuntimeError(
            f"{label}: stored {len(events) - len(work)} setup events, {len(work)} task events "
            f"({assigned} tasks); expected 2, {workload.commands} ({workload.tasks})"
        )


def _median_pair(ledgers: list[Measure], raws: list[Measure]) -> tuple[Measure, Measure]:
    """The pair (ledger run, its interleaved raw run) with the median ratio (lower middle if even)."""
    pairs = sorted(zip(ledgers, raws, strict=True), key=lambda p: p[0].rate / p[1].rate)
    return pairs[(len(pairs) - 1) // 2]


def bench_backend(
    backend: Backend,
    workload: Workload,
    signed: Signed,
    quiet: bool,
    repeat_single: int = 1,
    repeat_bulk: int = 3,
    chunk: int = 500,
) -> dict[str, Any]:
    n = workload.commands
    if not quiet:
        print(
            f"[{backend.name}] {workload.tasks} tasks x {EVENTS_PER_TASK} commands = {n} events; "
            f"bulk pair (batch {workload.batch}) x{repeat_bulk}, single pair x{repeat_single}",
            file=sys.stderr,
            flush=True,
        )
    load_before = os.getloadavg()
    runs: dict[str, list[Measure]] = {"single": [], "raw_single": [], "bulk": [], "raw_batch": []}
    aggregates_per_batch = 0.0
    for rep in range(repeat_bulk):  # the short, noise-sensitive pair first
        ledger, raw, aggregates_per_batch = run_pair(backend, workload, signed, "bulk", chunk, rep, quiet)
        runs["bulk"].append(ledger)
        runs["raw_batch"].append(raw)
    for rep in range(repeat_single):
        ledger, raw, _ = run_pair(backend, workload, signed, "single", chunk, rep, quiet)
        runs["single"].append(ledger)
        runs["raw_single"].append(raw)

    chosen = {}
    chosen["single"], chosen["raw_single"] = _median_pair(runs["single"], runs["raw_single"])
    chosen["bulk"], chosen["raw_batch"] = _median_pair(runs["bulk"], runs["raw_batch"])
    single_ratio = chosen["single"].rate / chosen["raw_single"].rate
    bulk_ratio = chosen["bulk"].rate / chosen["raw_batch"].rate
    return {
        "backend": backend.name,
        "store": backend.describe(),
        "tasks": workload.tasks,
        "agencies": workload.agencies,
        "events": n,
        "batch": workload.batch,
        "aggregates_per_batch": round(aggregates_per_batch, 1),
        "interleave_chunk": chunk,
        "repeat_single": repeat_single,
        "repeat_bulk": repeat_bulk,
        **{key: m.to_dict() for key, m in chosen.items()},
        "single_ratio": round(single_ratio, 4),
        "bulk_ratio": round(bulk_ratio, 4),
        # what the ledger adds to each event, over the raw save of it (1/rate - 1/raw rate)
        "single_overhead_us_per_event": round((1 / chosen["single"].rate - 1 / chosen["raw_single"].rate) * 1e6, 1),
        "bulk_overhead_us_per_event": round((1 / chosen["bulk"].rate - 1 / chosen["raw_batch"].rate) * 1e6, 1),
        "target": TARGET,
        "single_ok": single_ratio >= TARGET,
        "bulk_ok": bulk_ratio >= TARGET,
        "all_runs_events_per_s": {key: [round(m.rate, 1) for m in measures] for key, measures in runs.items()},
        "all_runs_ratios": {
            "single": [round(a.rate / c.rate, 4) for a, c in zip(runs["single"], runs["raw_single"], strict=True)],
            "bulk": [round(b.rate / d.rate, 4) for b, d in zip(runs["bulk"], runs["raw_batch"], strict=True)],
        },
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


# -------------------------------------------------------------------------------- profiling
def _is(path_end: str, name: str, min_line: int = 0) -> Callable[[tuple[str, int, str]], bool]:
    return lambda k: k[2] == name and k[0].endswith(path_end) and k[1] >= min_line


# (label, matcher on cProfile's (file, line, function) key); nested labels are indented.
PROFILE_BUCKETS: tuple[tuple[str, Callable[[tuple[str, int, str]], bool]], ...] = (
    ("TaskLedger._handle (load + decide + event)", _is("domain/application.py", "_handle")),
    (
        "  Repository.get (cache, fast-forward, deepcopy)",
        _is("eventsourcing/application.py", "get", 200),
    ),
    ("    copy.deepcopy (copy out of the aggregate cache)", _is("copy.py", "deepcopy")),
    (
        "    EventStore.get (SELECT: fast-forward / not found)",
        _is("eventsourcing/persistence.py", "get"),
    ),
    (
        "  TaskLedger._context (clock, calendars, validated)",
        _is("domain/application.py", "_context"),
    ),
    (
        "    TaskLedger.calendars (calendar re-read each 1 s)",
        _is("domain/application.py", "calendars"),
    ),
    ("  Aggregate.trigger_event (new event + apply)", lambda k: k[2] == "trigger_event"),
    (
        "Application.save (collect, map, INSERT, commit)",
        _is("eventsourcing/application.py", "save", 700),
    ),
    (
        "  ProcessingEvent.collect_events (Protocol isinstance)",
        _is("eventsourcing/application.py", "collect_events"),
    ),
    ("  Mapper.to_stored_event (serialise events)", lambda k: k[2] == "to_stored_event"),
    ("  recorder insert_events (SQL + commit)", lambda k: k[2] == "insert_events"),
    ("UnitOfWork.pending", _is("domain/application.py", "pending")),
)


def profile_path(backend: Backend, workload: Workload, signed: Signed, tasks: int, path: str) -> dict[str, Any]:
    """cProfile of one TaskLedger path ('single' or 'bulk') and of its raw baseline, on fresh stores.
    Commands are built before profiling; their pydantic build is profiled on its own."""
    wl = replace(workload, tasks=tasks)
    profiler = cProfile.Profile()
    with backend.store(f"profile_{path}") as env:
        app = open_ledger(env, signed)
        try:
            wl = register_directive(app, wl, signed)
            items = list(wl.items(f"profile-{path}"))
            sizes = [len(b) for b in _chunks(items, wl.batch)] if path == "bulk" else []
            gc.collect()
            profiler.enable()
            t0 = time.perf_counter()
            if path == "single":
                for actor, command in items:
                    app.execute(actor, command)
                top = _is("domain/application.py", "execute")
            else:
                for batch in _chunks(items, wl.batch):
                    app.execute_batch(batch)
                top = _is("domain/application.py", "execute_batch")
            wall = time.perf_counter() - t0
            profiler.disable()
            events = LogReader(app).new_events()
            setup, events = events[:2], events[2:]
        finally:
            app.close()
    build_profiler = cProfile.Profile()
    build_profiler.enable()
    built = sum(1 for _ in wl.items("profile-build"))
    build_profiler.disable()

    raw_profiler = cProfile.Profile()
    with backend.store(f"profile_raw_{path}") as env:
        raw = RawApplication(env=env)
        try:
            raw.save(*setup)
            gc.collect()
            raw_profiler.enable()
            t0 = time.perf_counter()
            if sizes:
                done = 0
                for size in sizes:
                    raw.save(*events[done : done + size])
                    done += size
            else:
                for event in events:
                    raw.save(event)
            raw_wall = time.perf_counter() - t0
            raw_profiler.disable()
        finally:
            raw.close()

    stats = pstats.Stats(profiler)
    raw_stats = pstats.Stats(raw_profiler)
    build_stats = pstats.Stats(build_profiler)
    commands = len(items)

    def cumulative(source: pstats.Stats, match: Callable[[tuple[str, int, str]], bool]) -> float:
        return sum(v[3] for k, v in source.stats.items() if match(k))  # type: ignore[attr-defined]

    total = cumulative(stats, top) or 1e-9
    rows = [("TaskLedger." + ("execute" if path == "single" else "execute_batch") + " (total)", total)]
    rows += [(name, cumulative(stats, match)) for name, match in PROFILE_BUCKETS]
    rows.append(
        (
            "pydantic Command.build (profiled on its own)",
            cumulative(build_stats, _is("domain/commands.py", "build")) * commands / max(built, 1),
        )
    )
    raw_total = cumulative(raw_stats, _is("eventsourcing/application.py", "save", 700))
    rows.append(("raw Application.save, same events (baseline)", raw_total))
    buckets = [
        {
            "what": name,
            "us_per_event": round(ct / commands * 1e6, 1),
            "share_of_total": round(ct / total, 3),
        }
        for name, ct in rows
    ]

    text = io.StringIO()
    text.write(
        f"cProfile of the {path} path on {backend.name}: {commands} commands/events"
        + (f" in batches of {wl.batch}" if sizes else ", one save each")
        + f"; under the profiler {wall:.2f} s ({commands / wall:.0f} ev/s), "
        f"raw baseline {raw_wall:.2f} s ({len(events) / raw_wall:.0f} ev/s).\n"
        "cProfile inflates small Python calls (deepcopy, pydantic) more than C calls (SQL, commit).\n\n"
        "Buckets (cumulative time per event; share of the TaskLedger total):\n"
    )
    for b in buckets:
        text.write(f"  {b['what']:<56} {b['us_per_event']:>9.1f} us  {b['share_of_total'] * 100:6.1f} %\n")
    for title, source, key in (
        (f"TaskLedger {path} path, by cumulative time", stats, "cumulative"),
        (f"TaskLedger {path} path, by own time", stats, "tottime"),
        (f"raw baseline of the {path} path, by cumulative time", raw_stats, "cumulative"),
    ):
        text.write(f"\n===== {title} =====\n")
        source.stream = text  # type: ignore[attr-defined]
        source.sort_stats(key).print_stats(35)
    return {
        "backend": backend.name,
        "path": path,
        "commands": commands,
        "profiled_wall_s": round(wall, 3),
        "profiled_raw_wall_s": round(raw_wall, 3),
        "buckets": buckets,
        "report": text.getvalue(),
    }


# ----------------------------------------------------------------------------------- output
def table(results: list[dict[str, Any]]) -> str:
    lines = []
    head = f"{'backend':<9} {'measurement':<48} {'events':>7} {'saves':>6} {'seconds':>8} {'events/s':>9}"
    lines += [head, "-" * len(head)]
    rows = (
        ("single", "(a) TaskLedger.execute, 1 command per save"),
        ("raw_single", "(c) raw Application.save, 1 event per save"),
        ("bulk", "(b) TaskLedger.execute_batch, {batch} per save"),
        ("raw_batch", "(d) raw Application.save, {batch} per save"),
    )
    for r in results:
        for key, title in rows:
            m = r[key]
            lines.append(
                f"{r['backend']:<9} {title.format(batch=r['batch']):<48} {m['events']:>7} {m['saves']:>6} "
                f"{m['seconds']:>8.2f} {m['events_per_s']:>9.0f}"
            )
        for name, path in (("single (a)/(c)", "single"), ("bulk   (b)/(d)", "bulk")):
            verdict = "PASS" if r[f"{path}_ok"] else "FAIL"
            lines.append(
                f"{r['backend']:<9} {'ratio ' + name:<48} {r[f'{path}_ratio'] * 100:>7.2f} %  "
                f"target >= {TARGET * 100:.0f} %  {verdict}   "
                f"(+{r[f'{path}_overhead_us_per_event']:.0f} us/event over raw)"
            )
        lines.append(
            f"{'':<9} (pair with the median ratio of {r['repeat_single']} single / {r['repeat_bulk']} bulk run(s); "
            f"{r['aggregates_per_batch']} aggregates per bulk save; load average "
            f"{r['load_average_before'][0]:.2f} -> {r['load_average_after'][0]:.2f} on {r['cpus']} CPUs)"
        )
        lines.append("")
    return "\n".join(lines)


def profile_summary(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        for prof in r.get("profiles", []):
            lines.append(
                f"{r['backend']}: cProfile of the {prof['path']} path, {prof['commands']} commands "
                f"(per event; share of the TaskLedger total) - full report: {prof['report_file']}"
            )
            for b in prof["buckets"]:
                lines.append(f"  {b['what']:<56} {b['us_per_event']:>9.1f} us  {b['share_of_total'] * 100:6.1f} %")
            lines.append("")
    return "\n".join(lines)


def write_results(result: dict[str, Any], profiles: list[dict[str, Any]]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    result["profiles"] = []
    for prof in profiles:
        name = f"profile-{result['backend']}-{prof['path']}.txt"
        (RESULTS_DIR / name).write_text(prof["report"])
        result["profiles"].append(
            {
                **{k: v for k, v in prof.items() if k != "report"},
                "report_file": f"bench/results/{name}",
            }
        )
    path = RESULTS_DIR / f"commands-{result['backend']}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def _scrub_environment() -> list[str]:
    dropped = [k for k in os.environ if k.startswith(_SCRUBBED_PREFIXES)]
    for key in dropped:
        del os.environ[key]
    return dropped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_commands", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--tasks", type=int, default=2000, help="tasks (7 commands/events each); default 2000")
    parser.add_argument("--batch", type=int, default=500, help="commands per execute_batch / events per raw save")
    parser.add_argument("--agencies", type=int, default=40)
    parser.add_argument(
        "--chunk",
        type=int,
        default=500,
        help="single path: commands per interleaving step with its raw baseline",
    )
    parser.add_argument("--repeat-single", type=int, default=1, help="runs of the single pair (a)+(c); median")
    parser.add_argument(
        "--repeat-bulk",
        type=int,
        default=3,
        help="runs of the bulk pair (b)+(d), each ~1 s, so noisier; median",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="cProfile a path whose ratio misses the target (auto), both paths (always), or none",
    )
    parser.add_argument("--profile-tasks", type=int, default=300, help="tasks in a profiling pass")
    parser.add_argument("--check", action="store_true", help="exit 1 if a ratio misses its target")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    if (
        min(
            args.tasks,
            args.batch,
            args.chunk,
            args.agencies,
            args.profile_tasks,
            args.repeat_single,
            args.repeat_bulk,
        )
        < 1
    ):
        parser.error("--tasks, --batch, --agencies, --profile-tasks and --repeat-* must be positive")

    dropped = _scrub_environment()
    if dropped and not args.quiet:
        print(
            f"note: ignoring {', '.join(sorted(dropped))} (the bench configures its own stores)",
            file=sys.stderr,
        )

    names = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    backends = [Backend(name, args.database_url) for name in names]
    for backend in backends:
        if backend.name == "postgres":
            try:
                backend.describe()
            except Exception as error:  # noqa: BLE001
                print(
                    f"error: PostgreSQL at {args.database_url} is not reachable: {error}",
                    file=sys.stderr,
                )
                return 2

    workload = make_workload(args.tasks, args.agencies, args.batch)
    results = []
    with tempfile.TemporaryDirectory(prefix="taskledger-bench-pki-") as tmp:
        signed = make_signed(Path(tmp))
        for backend in backends:
            try:
                result = bench_backend(
                    backend,
                    workload,
                    signed,
                    args.quiet,
                    args.repeat_single,
                    args.repeat_bulk,
                    args.chunk,
                )
                profiles = []
                for path, ok in (("single", result["single_ok"]), ("bulk", result["bulk_ok"])):
                    if args.profile == "always" or (args.profile == "auto" and not ok):
                        tasks = min(args.profile_tasks, args.tasks)
                        if not args.quiet:
                            print(
                                f"[{backend.name}] profiling the {path} path ({tasks} tasks)",
                                file=sys.stderr,
                            )
                        profiles.append(profile_path(backend, workload, signed, tasks, path))
                result["python"] = platform.python_version()
                result["eventsourcing"] = _version("eventsourcing")
                result["cpus"] = os.cpu_count()
                result["measured_at"] = _now().isoformat(timespec="seconds")
                written = write_results(result, profiles)
                if not args.quiet:
                    print(f"[{backend.name}] results written to {written}", file=sys.stderr)
                results.append(result)
            finally:
                backend.close()

    report = table(results) + "\n" + profile_summary(results)
    if args.json:
        print(report, file=sys.stderr)
        print(json.dumps(results, indent=2))
    else:
        print(report)
    if args.check and not all(r["single_ok"] and r["bulk_ok"] for r in results):
        return 1
    return 0


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    sys.exit(main())
