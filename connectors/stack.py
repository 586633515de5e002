"""`taskledger up`: the whole stack on embedded defaults, supervised, with readable log lines.

Parts: the dev broker (unless TASKLEDGER_KAFKA_BOOTSTRAP names one), the relay (in this process, with audit
sealing) and the stream worker (``python -m streams.run`` as a child process: it owns the chdb directory and
serves the read-only ClickHouse-HTTP endpoint ``taskledger sql`` reads through; ``--no-worker`` leaves it
out). A part that dies is restarted with a back-off; Ctrl-C (or SIGTERM) stops the relay, then the worker
(SIGTERM: it flushes, removes ``$TASKLEDGER_HOME/olap-endpoint.json`` and releases the directory), then the
broker last.

The worker's output goes whole to ``$TASKLEDGER_HOME/worker.log``; its own lines (``worker: ...``,
``olap: ...``, batch progress at most every 5 s) and every warning or error are shown here, prefixed
``taskledger.worker``.

``until_caught_up``: return once the relay has published every stored event AND (with the worker) the
worker has projected all of them: ``SELECT count() FROM task_events FINAL WHERE position <= P`` (through
the worker's endpoint, or the ClickHouse server) equals the number of public events up to the relay's
position P. A machine-readable signal, independent of log lines."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from connectors.broker import DevBroker, start_dev_broker
from connectors.eventstore import open_ledger
from connectors.logs import configure
from connectors.relay import Relay, RelayStats
from connectors.settings import Settings

log = logging.getLogger("taskledger.up")
worker_log = logging.getLogger("taskledger.worker")

_FAUST_LINE = re.compile(r"^\[[^\]]*\] \[\d+\] \[([A-Z]+)\] (.*)$")
_PLAIN_LINE = re.compile(r"^\d\d:\d\d:\d\d [\w.]+ (.*)$")
_OWN_PREFIXES = ("worker:", "olap:", "projector:")
BATCH_LINE_EVERY_S = 5.0
STALL_WARNING_S = 60.0


def clear_stale_discovery(home: Any) -> None:
    """Remove ``olap-endpoint.json`` if the process it names is gone (killed before it could remove it)."""
    import json

    from connectors.olap_server import discovery_path

    path = discovery_path(home)
    try:
        pid = int(json.loads(path.read_text())["pid"])
        os.kill(pid, 0)
    except ProcessLookupError:
        path.unlink(missing_ok=True)
    except (OSError, ValueError, KeyError, TypeError):
        pass


class WorkerProcess:
    """The stream worker as a supervised child process (own session: Ctrl-C reaches ``up`` only, which stops
    it in order; ``--exit-with-parent``: it stops itself if ``up`` dies)."""

    def __init__(self, settings: Settings, stop_event: threading.Event) -> None:
        self.settings = settings
        self.stop_event = stop_event
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.log_path = settings.home / "worker.log"
        self._last_batch_line = 0.0

    def environment(self) -> dict[str, str]:
        import streams

        root = str(os.path.dirname(os.path.dirname(os.path.abspath(streams.__file__))))
        env = dict(os.environ)
        env["TASKLEDGER_HOME"] = str(self.settings.home.resolve())
        env["TASKLEDGER_KAFKA_BOOTSTRAP"] = self.settings.bootstrap
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start(self) -> None:
        self.thread = threading.Thread(target=self._supervise, name="taskledger-worker-supervisor", daemon=True)
        self.thread.start()

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        with self.lock:
            if self.stop_event.is_set():
                return None
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams.run", "--exit-with-parent"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                start_new_session=True,
            )
            log.info("worker: started (pid %d), full log in %s", self.process.pid, self.log_path)
            return self.process

    def _supervise(self) -> None:
        delay = 1.0
        while not self.stop_event.is_set():
            started = time.monotonic()
            process = self._spawn()
            if process is None:
                return
            self._forward(process)
            code = process.wait()
            time.sleep(0.5)  # its children (if any) die with it
            clear_stale_discovery(self.settings.home)
            if self.stop_event.is_set():
                return
            if time.monotonic() - started > 60:
                delay = 1.0  # it ran a while: a fresh failure, not a crash loop
            self.restarts += 1
            log.warning("worker: exited with code %s; restarting in %.0f s (see %s)", code, delay, self.log_path)
            self.stop_event.wait(delay)
            delay = min(delay * 2, 30)

    def _forward(self, process: subprocess.Popen[bytes]) -> None:
        """Copy every output line to worker.log; show the readable ones."""
        assert process.stdout is not None
        with self.log_path.open("ab") as sink:
            for raw in process.stdout:
                sink.write(raw)
                sink.flush()
                self.show(raw.decode("utf-8", "replace").rstrip())

    def show(self, line: str) -> None:
        match = _FAUST_LINE.match(line)
        if match is not None:
            level, message = match.group(1), match.group(2).strip()
        else:  # a child of the worker logging with connectors.logs ("HH:MM:SS logger message")
            plain = _PLAIN_LINE.match(line)
            if plain is None:
                return  # tables, tracebacks: in worker.log
            level, message = "INFO", plain.group(1).strip()
        if level in ("WARNING", "ERROR", "CRITICAL"):
            worker_log.log(getattr(logging, level), "%s", message)
        elif message.startswith(_OWN_PREFIXES):
            if message.startswith("worker: batch of"):
                if time.monotonic() - self._last_batch_line < BATCH_LINE_EVERY_S:
                    return
                self._last_batch_line = time.monotonic()
            worker_log.info("%s", message)

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM and wait (SIGKILL after ``timeout`` s); the exit code, None if it was not running."""
        with self.lock:
            process = self.process
        if process is None:
            return None
        if process.poll() is None:
            log.info("worker: stopping (SIGTERM)")
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("worker: did not stop within %.0f s; killing it", timeout)
                process.kill()
                process.wait()
        if self.thread is not None:
            self.thread.join(10)
        clear_stale_discovery(self.settings.home)
        log.info("worker: stopped (exit code %s)", process.returncode)
        return process.returncode


def projected_events(settings: Settings, position: int) -> int | None:
    """``count() FROM task_events FINAL`` up to the store ``position``: through the worker's endpoint when
    the store is a chdb directory (never opening it here: that would lock the worker out), else from the
    ClickHouse server. None while it cannot be read yet."""
    from connectors.clickhouse import ClickHouseError, clickhouse_url, connect, parse_url
    from connectors.sql import owner_endpoint

    try:
        url = clickhouse_url(settings)
        client = connect(url) if parse_url(url).kind != "chdb" else owner_endpoint(settings)
    except ClickHouseError:
        return None
    if client is None:
        return None
    try:
        result = client.query(f"SELECT count() FROM task_events FINAL WHERE position <= {int(position)}")
        return int(result.result_rows[0][0])
    except Exception:  # noqa: BLE001 - not migrated yet, endpoint restarting: ask again
        return None
    finally:
        client.close()


@dataclass
class Stack:
    settings: Settings
    broker: DevBroker | None = None
    relay: Relay | None = None
    worker: WorkerProcess | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    restarts: dict[str, int] = field(default_factory=lambda: {"broker": 0, "relay": 0, "worker": 0})
    published: int = 0  # public events up to the relay's position, once it caught up
    _last_seal: float = 0.0

    def start_worker(self) -> None:
        self.worker = WorkerProcess(self.settings, self.stop_event)
        self.worker.start()

    def wait_for_worker(self, position: int) -> int | None:
        """Block until ClickHouse holds every public event up to ``position`` (or Ctrl-C); the count."""
        last_log = 0.0
        seen: int | None = None
        progress = (None, time.monotonic())  # (last count, since when)
        while not self.stop_event.is_set():
            seen = projected_events(self.settings, position)
            if seen is not None and seen >= self.published:
                log.info("worker: caught up: %d events projected into ClickHouse", seen)
                return seen
            if seen != progress[0]:
                progress = (seen, time.monotonic())
            elif time.monotonic() - progress[1] >= STALL_WARNING_S:
                progress = (seen, time.monotonic())
                log.warning(
                    "worker: no progress for %.0f s (%s / %d events projected); see %s",
                    STALL_WARNING_S,
                    seen,
                    self.published,
                    self.settings.home / "worker.log",
                )
            if time.monotonic() - last_log >= 5:
                last_log = time.monotonic()
                shown = "not readable yet" if seen is None else f"{seen} / {self.published} events"
                log.info("worker: projecting, ClickHouse task_events: %s", shown)
            self.stop_event.wait(1.0)
        return seen

    def start_broker(self) -> None:
        if self.settings.kafka_bootstrap:
            log.info("broker: using %s (TASKLEDGER_KAFKA_BOOTSTRAP)", self.settings.kafka_bootstrap)
            return
        self.broker = start_dev_broker(self.settings.broker_port, log_path=self.settings.home / "broker.log")
        log.info("broker: dev broker (tansu, in memory) ready on %s", self.broker.bootstrap)

    def supervise_broker(self) -> None:
        if self.broker is not None and not self.broker.running and not self.stop_event.is_set():
            self.restarts["broker"] += 1
            log.warning("broker: exited; restarting it (empty: the relay will republish from the store)")
            self.broker = start_dev_broker(self.settings.broker_port, log_path=self.settings.home / "broker.log")

    def run_relay(self, until_caught_up: bool) -> RelayStats | None:
        """The relay in this thread, restarted with a back-off if it fails."""
        delay = 1.0
        last_log = [0.0]

        def progress(stats: RelayStats) -> None:
            self.supervise_broker()
            self.maybe_seal()
            if self.stop_event.is_set() and self.relay is not None:
                self.relay.stop()
            if time.monotonic() - last_log[0] >= 5:
                last_log[0] = time.monotonic()
                log.info(
                    "relay: position %d / head %d, lag %d events, %.0f events/s",
                    stats.position,
                    stats.head,
                    stats.lag,
                    stats.rate(),
                )

        while not self.stop_event.is_set():
            try:
                self.relay = Relay(
                    open_ledger(self.settings), self.settings.bootstrap, partitions=self.settings.events_partitions
                )
                log.info("relay: following the event store from position %d", self.relay.recorded_position())
                stats = self.relay.run(until_caught_up=until_caught_up, on_progress=progress)
                if until_caught_up and not self.stop_event.is_set():
                    self.published = self.relay._published_count(stats.position)
                return stats
            except Exception as error:  # noqa: BLE001 - supervised: log, back off, restart
                self.restarts["relay"] += 1
                log.error("relay: failed (%s); restarting in %.0f s", error, delay)
                self.stop_event.wait(delay)
                delay = min(delay * 2, 30)
            finally:
                if self.relay is not None:
                    self.relay.close()
        return None

    def maybe_seal(self) -> None:
        """Seal a signed audit checkpoint for every complete range of N events (at most every 10 s)."""
        every = self.settings.audit_checkpoint_every
        if not every or self.relay is None or time.monotonic() - self._last_seal < 10:
            return
        self._last_seal = time.monotonic()
        from connectors.audit_integrity import maybe_checkpoint

        try:
            sealed = maybe_checkpoint(self.relay.app, every, pki_dir=self.settings.pki_dir) or []
        except Exception as error:  # noqa: BLE001 - supervised: sealing retries on the next round
            log.error("audit: sealing a checkpoint failed: %s", error)
            return
        for checkpoint in sealed:
            log.info("audit: sealed %s", checkpoint)

    def stop(self, *_: Any) -> None:
        if not self.stop_event.is_set():
            log.info("stopping (Ctrl-C)")
        self.stop_event.set()
        if self.relay is not None:
            self.relay.stop()

    def shutdown(self) -> None:
        self.stop_event.set()
        if self.worker is not None:
            self.worker.stop()
            self.restarts["worker"] = self.worker.restarts
        if self.broker is not None:
            self.broker.stop()
            log.info("broker: stopped")


def up(settings: Settings, *, until_caught_up: bool = False, worker: bool = True) -> dict[str, Any]:
    """Run the stack until Ctrl-C (or, with ``until_caught_up``, until the relay has published everything
    stored and the worker has projected it); return a summary."""
    configure()
    stack = Stack(settings)
    signal.signal(signal.SIGTERM, stack.stop)
    signal.signal(signal.SIGINT, stack.stop)
    projected: int | None = None
    try:
        import gc

        settings.home.mkdir(parents=True, exist_ok=True)
        stack.start_broker()
        if worker:
            stack.start_worker()
        gc.freeze()  # start-up objects stay out of later collections (relay throughput, bench/README.md)
        if not until_caught_up:
            log.info(
                "up: relay publishing to %s%s; in another shell: taskledger subscribe --from-beginning%s; Ctrl-C stops",
                settings.bootstrap,
                ", worker projecting into ClickHouse" if worker else "",
                ', taskledger sql "SELECT count() FROM task_events"' if worker else "",
            )
        stats = stack.run_relay(until_caught_up)
        if until_caught_up and worker and stats is not None and not stack.stop_event.is_set():
            projected = stack.wait_for_worker(stats.position)
    finally:
        stack.shutdown()
    summary: dict[str, Any] = {"bootstrap": settings.bootstrap, "restarts": stack.restarts}
    if stats is not None:
        summary.update(stats.to_dict())
    if projected is not None:
        summary["projected"] = projected
    return summary
