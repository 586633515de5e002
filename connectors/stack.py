"""`taskledger up`: the whole stack on embedded defaults, supervised, with readable log lines.

For now: the dev broker (unless TASKLEDGER_KAFKA_BOOTSTRAP names one) and the relay. A part that
dies is restarted with a back-off; Ctrl-C (or SIGTERM) stops everything cleanly."""

from __future__ import annotations

import logging
import signal
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


@dataclass
class Stack:
    settings: Settings
    broker: DevBroker | None = None
    relay: Relay | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    restarts: dict[str, int] = field(default_factory=lambda: {"broker": 0, "relay": 0})
    _last_seal: float = 0.0

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
        if self.broker is not None:
            self.broker.stop()
            log.info("broker: stopped")


def up(settings: Settings, *, until_caught_up: bool = False) -> dict[str, Any]:
    """Run the stack until Ctrl-C (or, with ``until_caught_up``, until the relay has published
    everything stored); return a summary."""
    configure()
    stack = Stack(settings)
    signal.signal(signal.SIGTERM, stack.stop)
    signal.signal(signal.SIGINT, stack.stop)
    try:
        import gc

        stack.start_broker()
        gc.freeze()  # start-up objects stay out of later collections (relay throughput, bench/README.md)
        if not until_caught_up:
            log.info(
                "up: relay publishing to %s; in another shell: taskledger subscribe --from-beginning; Ctrl-C stops",
                settings.bootstrap,
            )
        stats = stack.run_relay(until_caught_up)
    finally:
        stack.shutdown()
    summary: dict[str, Any] = {"bootstrap": settings.bootstrap, "restarts": stack.restarts}
    if stats is not None:
        summary.update(stats.to_dict())
    return summary
