"""Helpers shared by the stream worker's tests: relay a store, start / stop / kill the worker subprocess
(``python -m streams.run``), wait on its log or on its consumer group, read the published alerts.

chdb (the worker's ClickHouse) is bound to ONE process at a time: stop the worker before opening its
directory in the test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from connectors.kafka import end_offsets, read_all
from connectors.relay import Relay
from domain.application import TaskLedger
from domain.contract import ALERTS_TOPIC, EVENTS_TOPIC, STORED_TOPICS

ROOT = Path(__file__).resolve().parents[2]
GROUP = "taskledger-worker"  # streams.app.APP_ID: faust's consumer group


def public_events(app: TaskLedger) -> int:
    """Stored events that the relay publishes (the contract's public topics)."""
    notes = app.recorder.select_notifications(start=1, limit=10**7)
    return sum(1 for n in notes if n.topic in STORED_TOPICS)


def relay_all(app: TaskLedger, bootstrap: str) -> None:
    relay = Relay(app, bootstrap)
    try:
        relay.run(until_caught_up=True, max_seconds=120)
    finally:
        relay.close()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, log: Path, poll: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{log.read_text(errors='replace')[-6000:]}")


def processed(log: Path) -> int:
    """The worker's running total of events processed (its "worker: batch of N events (total T ..." lines)."""
    if not log.exists():
        return 0
    best = 0
    for line in log.read_text(errors="replace").splitlines():
        if "worker: batch of" in line and "(total " in line:
            best = max(best, int(line.split("(total ")[1].split()[0]))
    return best


def worker_env(bootstrap: str, home: Path, olap: Path, clock: str, trusted_roots: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKLEDGER_", "PERSISTENCE_", "SQLITE_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        TASKLEDGER_HOME=str(home),
        TASKLEDGER_KAFKA_BOOTSTRAP=bootstrap,
        TASKLEDGER_CLICKHOUSE_URL=f"chdb://{olap}",
        TASKLEDGER_CLOCK=clock,
    )
    if trusted_roots is not None:
        env["TASKLEDGER_TRUSTED_ROOTS"] = str(trusted_roots)
    return env


def start_worker(
    bootstrap: str,
    home: Path,
    olap: Path,
    clock: str,
    log: Path,
    trusted_roots: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``python -m streams.run`` with its clock (``TASKLEDGER_CLOCK``: ``<ISO instant>@<speed>``, ``@0`` =
    fixed), its output appended to ``log``."""
    env = worker_env(bootstrap, home, olap, clock, trusted_roots) | (extra_env or {})
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.run"],
            cwd=str(log.parent),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the worker and its children, see ``reap``
        )


def stop_worker(worker: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM; the worker must exit 0 within 30 s."""
    if worker.poll() is not None:
        pytest.fail(f"the worker had already exited ({worker.returncode}); log:\n{log.read_text()[-4000:]}")
    worker.send_signal(signal.SIGTERM)
    try:
        code = worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
        pytest.fail(f"the worker ignored SIGTERM; log:\n{log.read_text()[-4000:]}")
    assert code == 0, log.read_text()[-4000:]


def kill_worker(worker: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker process only (no flush, no commit, no clean shutdown), as the OOM killer would."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)


def group_alive(worker: subprocess.Popen[bytes]) -> bool:
    """Whether any process of the worker's process group (the worker, its children) is still running."""
    try:
        os.killpg(worker.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap(worker: subprocess.Popen[bytes]) -> None:
    """Test cleanup: SIGKILL whatever is left of the process group this test started (by its id)."""
    if worker.poll() is None:
        worker.kill()
        worker.wait(30)
    try:
        os.killpg(worker.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def committed_lag(bootstrap: str, topic: str = EVENTS_TOPIC, group: str = GROUP) -> int:
    """Records of ``topic`` beyond the offsets ``group`` committed (the worker commits a batch's offsets only
    after its rows were flushed to ClickHouse): 0 = everything relayed so far was processed."""
    from kafka import KafkaAdminClient

    ends = end_offsets(bootstrap, topic)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="taskledger-test-lag")
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    committed = {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}
    return sum(max(0, end - max(committed.get(p, 0), 0)) for p, end in ends.items())


def alerts_of(bootstrap: str, task: UUID, clock: str | None = None) -> list[dict[str, Any]]:
    """The alerts published on ``taskledger.alerts.v1`` for ``task`` (and ``clock``), in partition order."""
    alerts = [json.loads(r.value) for r in read_all(bootstrap, ALERTS_TOPIC, timeout_s=30)]
    return [a for a in alerts if a["task_id"] == str(task) and (clock is None or a["clock"] == clock)]


def cli(home: Path, *args: str, clock: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real ``taskledger`` command line (``python -m connectors.cli``) on ``home`` with a fixed clock."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKLEDGER_", "PERSISTENCE_", "SQLITE_"))}
    env.update(PYTHONPATH=str(ROOT), TASKLEDGER_HOME=str(home), TASKLEDGER_CLOCK=clock, **(extra or {}))
    proc = subprocess.run(
        [sys.executable, "-m", "connectors.cli", *args], env=env, cwd=str(ROOT), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, f"taskledger {' '.join(args)}: {proc.stderr[-3000:]}"
    return proc


def published_version(bootstrap: str, task: UUID) -> int:
    """The highest task version in the statuses published for ``task`` on ``taskledger.task-status.v1`` (0: none)."""
    from domain.contract import STATUS_TOPIC

    key = str(task).encode()
    versions = [json.loads(r.value)["version"] for r in read_all(bootstrap, STATUS_TOPIC, 30) if r.key == key]
    return max(versions, default=0)
