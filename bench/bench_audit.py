"""Audit throughput: ``audit verify --all`` and a full replay, next to a raw read+decode of the same log.

Run from the repository root::

    python -m bench.bench_audit [--events 1000000] [--batch 2000] [--json] [--check]

1. **Generate** >= ``--events`` events through the domain: one signed regular directive, then tasks
   of 7 commands each (AssignTask, ReceiveTask, ReportProgress 50, ApproveProgress, ReportProgress
   100, ApproveProgress, CompleteTask) run with ``TaskLedger.execute_batch`` in batches of
   ``--batch`` commands, into a fresh SQLite file (temporary directory). About a minute for 1M.
   Then seal the log with signed checkpoints every ``--checkpoint-every`` events (timed, reported),
   so that verify recomputes Merkle roots and signatures as it does on a real deployment.
2. **Measure**, in the same run, on the same file, interleaved ``--repeat`` times (raw, verify, raw,
   verify, ...; the pair with the median ratio is reported):

   (a) raw read+decode: page through ``recorder.select_notifications`` (``--page`` per call) and
       ``orjson.loads`` every state: the floor any reader of the log pays;
   (b) verify: ``connectors.audit_integrity.verify_store`` (chains, seal log, checkpoints);
   (c) replay (once): every aggregate folded through eventsourcing, ``mapper.to_domain_event`` +
       ``event.mutate``, over the same pages.

Targets (the issue's acceptance): verify >= 100,000 events/s and verify/raw >= 60 %.
``--profile`` writes a cProfile report of one verify pass to bench/results/profile-audit-verify.txt.
Results: a table (stderr with --json) and bench/results/audit.json.
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
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.bench_commands import EVENTS_PER_TASK, make_signed, make_workload, open_ledger, register_directive
from connectors import audit_integrity as ai
from connectors.eventstore import persistence_env
from connectors.settings import Settings
from domain.application import TaskLedger

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET_RATE = 100_000
TARGET_RATIO = 0.60
_SCRUBBED_PREFIXES = ("PERSISTENCE_MODULE", "SQLITE_", "POSTGRES_", "CIPHER_", "COMPRESSOR_", "TASKLEDGER_")


def _log(quiet: bool, text: str, end: str = "\n") -> None:
    if not quiet:
        sys.stderr.write(text + end)
        sys.stderr.flush()


# ----------------------------------------------------------------------------------- generation
def generate(app: TaskLedger, events: int, batch: int, agencies: int, signed: Any, quiet: bool) -> dict[str, Any]:
    """>= ``events`` events through TaskLedger.execute_batch; returns counts and timing."""
    tasks = -(-max(events - 2, 1) // EVENTS_PER_TASK)
    workload = register_directive(app, make_workload(tasks, agencies, batch), signed)
    items = workload.items("audit")
    done = 0
    t0 = time.perf_counter()
    tty = sys.stderr.isatty()
    next_mark = 0.1
    while True:
        chunk = [item for _, item in zip(range(batch), items, strict=False)]
        if not chunk:
            break
        app.execute_batch(chunk)
        done += len(chunk)
        elapsed = time.perf_counter() - t0
        line = f"  generating {done:>9,}/{workload.commands:,} events  {elapsed:6.1f} s  {done / elapsed:8,.0f} ev/s"
        if tty and not quiet:
            sys.stderr.write("\r" + line + "\x1b[K")
        elif done >= next_mark * workload.commands:
            next_mark += 0.1
            _log(quiet, line)
    if tty and not quiet:
        sys.stderr.write("\n")
    seconds = time.perf_counter() - t0
    return {"tasks": tasks, "commands": done, "seconds": round(seconds, 1), "events_per_s": round(done / seconds)}


# ---------------------------------------------------------------------------------- measurements
def raw_read(app: TaskLedger, page: int) -> tuple[int, float]:
    """(a) every notification, its state JSON-decoded with orjson; nothing else."""
    loads = orjson.loads
    plain = ai.plaintext(app)
    head = ai.log_head(app)
    count = 0
    gc.collect()
    t0 = time.perf_counter()
    for notifications in ai.pages(app, 1, head, page):
        if plain is None:
            for n in notifications:
                loads(n.state)
        else:
            for n in notifications:
                loads(plain(n.state))
        count += len(notifications)
    return count, time.perf_counter() - t0


def raw_read_lean(app: TaskLedger, page: int) -> tuple[int, float]:
    """(a') the same, through the page reader verify uses (one SELECT per page, tuples)."""
    loads = orjson.loads
    plain = ai.plaintext(app)
    head = ai.log_head(app)
    count = 0
    gc.collect()
    t0 = time.perf_counter()
    for found in ai.rows(app, 1, head, page):
        if plain is None:
            for row in found:
                loads(row[4])
        else:
            for row in found:
                loads(plain(row[4]))
        count += len(found)
    return count, time.perf_counter() - t0


def verify(app: TaskLedger, page: int, lean: bool = True) -> tuple[ai.Report, float]:
    gc.collect()
    t0 = time.perf_counter()
    report = ai.verify_store(app, page=page, lean=lean)
    return report, time.perf_counter() - t0


def replay(app: TaskLedger, page: int) -> tuple[int, int, float]:
    """(c) every aggregate folded from its events through eventsourcing's mapper."""
    to_domain_event = app.mapper.to_domain_event
    head = ai.log_head(app)
    folded: dict[Any, Any] = {}
    count = 0
    gc.collect()
    t0 = time.perf_counter()
    for notifications in ai.pages(app, 1, head, page):
        for n in notifications:
            event = to_domain_event(n)
            folded[event.originator_id] = event.mutate(folded.get(event.originator_id))
        count += len(notifications)
    seconds = time.perf_counter() - t0
    return count, len(folded), seconds


def _rate(events: int, seconds: float) -> float:
    return events / seconds if seconds > 0 else 0.0


def profile_verify(app: TaskLedger, page: int, path: Path) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    ai.verify_store(app, page=page)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
    path.write_text(text.getvalue())


# ------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events to generate (at least)")
    parser.add_argument("--batch", type=int, default=2000, help="commands per execute_batch")
    parser.add_argument("--agencies", type=int, default=40)
    parser.add_argument("--page", type=int, default=ai.PAGE, help="notifications per select_notifications call")
    parser.add_argument("--checkpoint-every", type=int, default=100_000, help="events per signed checkpoint")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved raw/verify pairs")
    parser.add_argument("--no-replay", action="store_true", help="skip (c), the slow full replay")
    parser.add_argument("--store", type=Path, help="keep the generated SQLite home here (reused if it exists)")
    parser.add_argument("--profile", action="store_true", help="cProfile one verify pass")
    parser.add_argument("--json", action="store_true", help="JSON on stdout, table on stderr")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    for name in list(os.environ):
        if name.startswith(_SCRUBBED_PREFIXES):
            del os.environ[name]
    tmp = Path(tempfile.mkdtemp(prefix="taskledger-bench-audit-"))
    home = args.store or tmp / "home"
    try:
        signed = make_signed(tmp)
        env = persistence_env(Settings(home=home, database_url=None, cipher_key=None))
        app = open_ledger(env, signed)
        existing = ai.log_head(app)
        generation: dict[str, Any] = {"reused_store": existing > 1}
        if existing < args.events:
            if existing > 1:  # more than the working calendar the ledger records on opening
                raise SystemExit(f"{home} holds {existing} events, fewer than --events; remove it first")
            _log(
                args.quiet,
                f"generating >= {args.events:,} events through TaskLedger.execute_batch "
                f"(batches of {args.batch}) into {home / 'taskledger.sqlite'}",
            )
            generation = generate(app, args.events, args.batch, args.agencies, signed, args.quiet)
        key = ai.ensure_audit_key(tmp / "pki")
        t0 = time.perf_counter()
        sealed = ai.seal(app, key, every=args.checkpoint_every) if args.checkpoint_every else []
        seal_seconds = time.perf_counter() - t0
        total = ai.log_head(app)
        _log(args.quiet, f"store: {total:,} events; sealed {len(sealed)} checkpoints in {seal_seconds:.1f} s")
        # Measure on a freshly opened ledger, as a CLI process would: the generator's heap (the write
        # cache of 10,000 aggregates) would otherwise make every garbage collection of the readers slow.
        app.close()
        del app
        gc.collect()
        app = open_ledger(env, signed)

        pairs = []
        for rep in range(args.repeat):
            events, raw_s = raw_read(app, args.page)
            lean_events, lean_s = raw_read_lean(app, args.page)
            report, verify_s = verify(app, args.page)
            if not report.ok or report.events != events or lean_events != events:
                raise SystemExit(f"verify failed on the generated store: {report.summary()}")
            pair = {
                "raw_events": events,
                "raw_seconds": round(raw_s, 3),
                "raw_events_per_s": round(_rate(events, raw_s)),
                "raw_lean_seconds": round(lean_s, 3),
                "raw_lean_events_per_s": round(_rate(events, lean_s)),
                "verify_events": report.events,
                "verify_seconds": round(verify_s, 3),
                "verify_events_per_s": round(_rate(report.events, verify_s)),
                "ratio": round(_rate(report.events, verify_s) / _rate(events, raw_s), 4),
                "ratio_lean": round(_rate(report.events, verify_s) / _rate(events, lean_s), 4),
                "checkpoints_verified": report.checkpoints_verified,
            }
            pairs.append(pair)
            _log(
                args.quiet,
                f"  pair {rep + 1}: raw {pair['raw_events_per_s']:>9,} ev/s   raw lean "
                f"{pair['raw_lean_events_per_s']:>9,} ev/s   verify {pair['verify_events_per_s']:>9,} ev/s"
                f"   verify/raw {pair['ratio'] * 100:5.1f} %",
            )
        median = sorted(pairs, key=lambda p: p["ratio"])[len(pairs) // 2]
        result: dict[str, Any] = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "loadavg": list(os.getloadavg()),
                "sqlite": sqlite3.sqlite_version,
            },
            "store": {"backend": "sqlite", "events": total, "page": args.page, "generation": generation},
            "checkpoints": {
                "every": args.checkpoint_every,
                "sealed_in_this_run": len(sealed),
                "in_store": len(ai.checkpoints(app)),
                "seconds": round(seal_seconds, 2),
                "events_per_s": round(_rate(sum(c.count for c in sealed), seal_seconds)) if sealed else None,
            },
            "pairs": pairs,
            "raw": {"events_per_s": median["raw_events_per_s"], "seconds": median["raw_seconds"]},
            "raw_lean": {"events_per_s": median["raw_lean_events_per_s"], "seconds": median["raw_lean_seconds"]},
            "verify": {"events_per_s": median["verify_events_per_s"], "seconds": median["verify_seconds"]},
            "ratio_verify_raw": median["ratio"],
            "ratio_verify_raw_lean": median["ratio_lean"],
            "ratio_median_of_pairs": round(statistics.median(p["ratio"] for p in pairs), 4),
            "targets": {"verify_events_per_s": TARGET_RATE, "ratio": TARGET_RATIO},
        }
        _log(args.quiet, "  verify through recorder.select_notifications (b') ...")
        report, slow_s = verify(app, args.page, lean=False)
        result["verify_select_notifications"] = {
            "events_per_s": round(_rate(report.events, slow_s)),
            "seconds": round(slow_s, 3),
            "ok": report.ok,
        }
        if not args.no_replay:
            _log(args.quiet, "  replay (c): folding every aggregate through eventsourcing ...")
            events, aggregates, replay_s = replay(app, args.page)
            result["replay"] = {
                "events": events,
                "aggregates": aggregates,
                "seconds": round(replay_s, 2),
                "events_per_s": round(_rate(events, replay_s)),
            }
        result["pass"] = {
            "verify_rate": median["verify_events_per_s"] >= TARGET_RATE,
            "ratio": median["ratio"] >= TARGET_RATIO,
        }
        if args.profile:
            RESULTS_DIR.mkdir(exist_ok=True)
            profile_verify(app, args.page, RESULTS_DIR / "profile-audit-verify.txt")
        app.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "audit.json").write_text(json.dumps(result, indent=2) + "\n")
    table = _table(result)
    if args.json:
        sys.stderr.write(table)
        print(json.dumps(result, indent=2))
    else:
        sys.stdout.write(table)
    if args.check and not all(result["pass"].values()):
        return 1
    return 0


def _table(r: dict[str, Any]) -> str:
    rows = [
        ("(a) raw: select_notifications + orjson", f"{r['raw']['events_per_s']:,}"),
        ("(a') raw: lean page reader + orjson", f"{r['raw_lean']['events_per_s']:,}"),
        ("(b) audit verify --all", f"{r['verify']['events_per_s']:,}"),
        ("(b') verify via select_notifications", f"{r['verify_select_notifications']['events_per_s']:,}"),
    ]
    if "replay" in r:
        rows.append(("(c) replay through eventsourcing", f"{r['replay']['events_per_s']:,}"))
    if r["checkpoints"]["events_per_s"]:
        rows.append(("seal checkpoints (audit checkpoint)", f"{r['checkpoints']['events_per_s']:,}"))
    lines = [f"audit bench: {r['store']['events']:,} events (SQLite), page {r['store']['page']}", ""]
    lines += [f"  {label:<40} {value:>12} events/s" for label, value in rows]
    ok_rate = "PASS" if r["pass"]["verify_rate"] else "FAIL"
    ok_ratio = "PASS" if r["pass"]["ratio"] else "FAIL"
    lines += [
        "",
        f"  verify >= {TARGET_RATE:,} events/s: {ok_rate}",
        f"  verify / raw (a) = {r['ratio_verify_raw'] * 100:.1f} % (target >= {TARGET_RATIO * 100:.0f} %): {ok_ratio}",
        f"  verify / raw lean (a') = {r['ratio_verify_raw_lean'] * 100:.1f} % (for information)",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
