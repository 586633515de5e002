"""Shared by test_olap_server and test_stack: a small history in a temp home, CLI subprocesses.

History (fixed clock): one signed directive and ``TASKS`` tasks to HN without deadlines; every task but each
fourth is received and has a 40 % report approved. Everything runs in subprocesses (the worker, ``taskledger
sql`` / ``up``): chdb hosts one directory per process, and this pytest process may hold another one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.eventstore import persistence_env
from connectors.olap_server import discovery_path
from connectors.pki import read_trusted_roots
from connectors.settings import Settings
from domain import commands as c
from domain.application import TaskLedger
from domain.contract import STORED_TOPICS
from tests.conftest import APPROVER, ASSIGNEE, OFFICE, Clock, directive_command

ROOT = Path(__file__).resolve().parents[2]
AS_OF = datetime(2026, 4, 30, 3, 0, tzinfo=UTC)  # Thu 2026-04-30 10:00 local
CLOCK = AS_OF.isoformat() + "@0"
TASKS = 12


def make_history(home: Path, signed: Callable[[bytes], tuple[str, dict[str, Any]]], pki: Any) -> int:
    """Write the history into ``home``'s SQLite store; the number of public (published) events."""
    clock = Clock()
    app = TaskLedger(
        env=persistence_env(Settings(home=home)), clock=clock, trusted_roots=read_trusted_roots([pki.trusted_roots])
    )
    try:
        directive = app.execute(OFFICE, directive_command(signed)).aggregate_id
        for i in range(TASKS):
            clock.advance(minutes=1)
            task = app.execute(
                OFFICE, c.AssignTask(directive_id=directive, content=f"task {i}", assignee="HN", monitor="BKT")
            ).aggregate_id
            if i % 4 == 0:
                continue
            clock.advance(minutes=1)
            app.execute(ASSIGNEE, c.ReceiveTask(task_id=task))
            app.execute(ASSIGNEE, c.ReportProgress(task_id=task, percent=40, note="half way"))
            app.execute(APPROVER, c.ApproveProgress(task_id=task))
        notes = app.recorder.select_notifications(start=1, limit=10**7)
        return sum(1 for n in notes if n.topic in STORED_TOPICS)
    finally:
        app.close()


def environment(home: Path, pki: Any, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TASKLEDGER_HOME": str(home),
        "TASKLEDGER_CLOCK": CLOCK,
        "TASKLEDGER_TRUSTED_ROOTS": str(pki.trusted_roots),
        **extra,
    }
    for name in ("PERSISTENCE_MODULE", "TASKLEDGER_CLICKHOUSE_URL", "TASKLEDGER_KAFKA_BOOTSTRAP"):
        if name not in extra:
            env.pop(name, None)
    return env


def taskledger(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connectors.cli", *args],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def sql_json(env: dict[str, str], statement: str) -> list[dict[str, Any]]:
    done = taskledger(env, "sql", statement, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def endpoint_url(home: Path) -> str | None:
    try:
        return str(json.loads(discovery_path(home).read_text())["url"])
    except (OSError, ValueError, KeyError):
        return None


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    text = log.read_text(errors="replace")[-6000:] if log.exists() else "(no log)"
    pytest.fail(f"timed out waiting for {what}; log:\n{text}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    if status.exists() and "State:\tZ" in status.read_text():
        return False  # a zombie is gone, only not reaped yet
    return True


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren, ...)."""
    found: list[int] = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found
