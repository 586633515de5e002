"""``taskledger up``: broker, relay and worker supervised in one command; ``taskledger sql`` while it runs.

Real parts: ``taskledger up`` as a subprocess on a temp home starting its own dev broker on a free port
(TASKLEDGER_BROKER_PORT), the worker child owning chdb, ``taskledger sql`` subprocesses."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.broker import free_port
from connectors.olap_server import discovery_path
from tests.connectors.stack_helpers import (
    ROOT,
    TASKS,
    alive,
    children,
    descendants,
    environment,
    make_history,
    sql_json,
    taskledger,
    wait_for,
)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def owner_pid(home: Path) -> int | None:
    try:
        return int(json.loads(discovery_path(home).read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def test_up_runs_the_whole_stack_sql_answers_and_ctrl_c_stops_everything(
    home: Path, tmp_path: Path, signed: Callable[[bytes], tuple[str, dict[str, Any]]], pki: Any
) -> None:
    expected = make_history(home, signed, pki)
    env = environment(home, pki, TASKLEDGER_BROKER_PORT=str(free_port()))
    log = tmp_path / "up.log"
    with log.open("ab") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "connectors.cli", "up"], cwd=str(ROOT), env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:

        def projected() -> bool:
            if owner_pid(home) is None:
                return False
            done = taskledger(env, "sql", "SELECT count() AS n FROM task_events FINAL", "--json")
            return done.returncode == 0 and json.loads(done.stdout) == [{"n": expected}]

        wait_for(projected, 180, f"{expected} events in ClickHouse through taskledger sql", log)
        assert sql_json(env, "SELECT count() AS n FROM task_status FINAL") == [{"n": TASKS}]
        refused = taskledger(env, "sql", "ALTER TABLE task_events DELETE WHERE 1")
        assert refused.returncode == 2 and refused.stderr.startswith("refused (invalid) statement: is read-only")

        # the worker dies: up restarts it (back-off), the new one serves again (the endpoint is served by the
        # process that owns chdb: the worker or a process of its own, named in the discovery file)
        first = owner_pid(home)
        worker = int(re.findall(r"worker: started \(pid (\d+)\)", log.read_text())[-1])
        assert first is not None and worker in children(up.pid)
        assert first == worker or first in descendants(worker)
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: log.read_text().count("worker: started (pid") == 2, 120, "the restart", log)
        wait_for(projected, 180, "sql after the restart", log)

        parts = descendants(up.pid)  # the broker, the worker (and whatever the worker runs)
        assert len(children(up.pid)) == 2, parts
        up.send_signal(signal.SIGINT)
        assert up.wait(120) == 0, log.read_text()[-6000:]
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    text = log.read_text()
    assert not discovery_path(home).exists()
    assert [pid for pid in parts if alive(pid)] == []
    for line in (
        "taskledger.up broker: dev broker (tansu, in memory) ready on",
        "taskledger.worker olap: read-only ClickHouse HTTP endpoint on http://127.0.0.1:",
        "taskledger.up worker: exited with code -9; restarting in 1 s",
        "taskledger.up stopping (Ctrl-C)",
        "taskledger.up worker: stopped (exit code 0)",
        "taskledger.up broker: stopped",
        "stack stopped: ",
        "'worker': 1",
    ):
        assert line in text, line
    # stopped in order: the worker before the broker
    assert text.index("worker: stopped (exit code 0)") < text.index("taskledger.up broker: stopped")
    # the directory is free again: sql opens it itself
    assert sql_json(env, "SELECT count() AS n FROM task_events FINAL") == [{"n": expected}]


def test_up_until_caught_up_waits_for_the_worker(
    home: Path, signed: Callable[[bytes], tuple[str, dict[str, Any]]], pki: Any
) -> None:
    expected = make_history(home, signed, pki)
    env = environment(home, pki, TASKLEDGER_BROKER_PORT=str(free_port()))
    done = taskledger(env, "up", "--until-caught-up", "--json", timeout=300)
    assert done.returncode == 0, done.stderr[-6000:]
    summary = json.loads(done.stdout)
    assert summary["published"] == expected and summary["lag"] == 0
    assert summary["projected"] == expected
    assert summary["restarts"] == {"broker": 0, "relay": 0, "worker": 0}
    assert "worker: caught up: " in done.stderr
    assert not discovery_path(home).exists()
    assert sql_json(env, "SELECT count() AS n FROM task_events") == [{"n": expected}]


def test_up_without_the_worker_leaves_the_store_alone(
    home: Path, signed: Callable[[bytes], tuple[str, dict[str, Any]]], pki: Any
) -> None:
    expected = make_history(home, signed, pki)
    env = environment(home, pki, TASKLEDGER_BROKER_PORT=str(free_port()))
    done = taskledger(env, "up", "--until-caught-up", "--no-worker", "--json", timeout=300)
    assert done.returncode == 0, done.stderr[-6000:]
    summary = json.loads(done.stdout)
    assert summary["published"] == expected and "projected" not in summary
    assert "worker" not in done.stderr.replace("'worker'", "")
    assert not (home / "olap").exists()
