"""The relay: follows the event store's notification log in order and publishes every stored event
to Kafka (contract v1), recording its position in the event store's database only after the broker
acknowledged. At-least-once, with stable event ids; the event store is the truth, Kafka the
distribution log: if the broker comes back empty, the relay republishes from the start."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, Tracking

from connectors import kafka as k
from connectors.errors import ConnectorError
from connectors.eventstore import events_table, query
from domain.application import TaskLedger
from domain.contract import EVENTS_TOPIC, STORED_TOPICS, confidentiality_of, encode, envelope_from_stored

log = logging.getLogger(__name__)

CREATING = ("Task.Assigned", "Directive.Registered")
PUBLIC_TOPICS = frozenset(STORED_TOPICS)


class RelayError(ConnectorError):
    """The broker did not acknowledge a batch; nothing was recorded as published."""


@dataclass
class RelayStats:
    position: int = 0
    head: int = 0
    published: int = 0
    republished_from_start: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.published / elapsed if elapsed > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "head": self.head,
            "lag": self.lag,
            "published": self.published,
            "events_per_s": round(self.rate(), 1),
            "republished_from_start": self.republished_from_start,
        }


class Relay:
    """Event store -> Kafka. One relay per store (its name keys the durable position)."""

    def __init__(
        self,
        app: TaskLedger,
        bootstrap: str,
        *,
        partitions: int = 6,
        batch: int = 2000,
        check_every_s: float = 5.0,
        name: str = "relay:" + EVENTS_TOPIC,
        producer_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.batch = batch
        self.check_every_s = check_every_s
        self.name = name
        self.tracking = app.factory.tracking_recorder()
        self._producer_overrides = {"partitioner": k.CachedMurmur2Partitioner(), **(producer_overrides or {})}
        self.producer = k.producer(bootstrap, **self._producer_overrides)
        self._end_offsets = k.EndOffsets(bootstrap)
        self._public_upto: tuple[int, int] = (0, 0)  # (position, public events up to it), kept running
        self.levels: dict[UUID, str | None] = {}
        self.stats = RelayStats()
        self._cipher = getattr(app.mapper, "cipher", None)
        self._compressor = getattr(app.mapper, "compressor", None)
        self._last_check = 0.0
        self._stopping = False

    # -- position -------------------------------------------------------------------------
    def recorded_position(self) -> int:
        return self.tracking.max_tracking_id(self.name) or 0

    def _record(self, position: int) -> None:
        self.tracking.insert_tracking(Tracking(application_name=self.name, notification_id=position))

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def _published_count(self, position: int) -> int:
        """How many public events have a position <= ``position`` (ids may have gaps). Kept as a
        running count while publishing; counted in the database otherwise."""
        if position == 0:
            return 0
        if self._public_upto[0] == position:
            return self._public_upto[1]
        table, column = events_table(self.app)
        topics = ", ".join(f"'{t}'" for t in sorted(STORED_TOPICS))
        row = query(
            self.app, f"SELECT COUNT(*) AS n FROM {table} WHERE {column} <= {int(position)} AND topic IN ({topics})"
        )[0]
        return int(row["n"] if isinstance(row, dict) else row[0])

    # -- broker ---------------------------------------------------------------------------
    def broker_holds(self, position: int) -> bool:
        """Does the topic hold at least every event up to ``position``? High watermarks never
        decrease on a healthy broker, so fewer messages than published events means it lost them."""
        offsets = self._end_offsets(EVENTS_TOPIC)
        return sum(offsets.values()) >= self._published_count(position)

    def ensure_broker(self, position: int) -> int:
        """Create missing topics; if the broker lost events, return 0 (republish from the start)."""
        k.ensure_topics(self.bootstrap, k.topic_specs(self.partitions))
        self._last_check = time.monotonic()
        if position and not self.broker_holds(position):
            log.warning(
                "relay: the broker holds fewer events than published up to %d; republishing from the start", position
            )
            self.stats.republished_from_start += 1
            return 0
        return position

    # -- publishing -----------------------------------------------------------------------
    def _level(self, n: Notification, state: bytes) -> str | None:
        if n.topic.endswith(CREATING):
            import orjson

            level = confidentiality_of(n.topic, orjson.loads(state))
            self.levels[n.originator_id] = level
            return level
        if "WorkingCalendar" in n.topic:
            return None
        if n.originator_id not in self.levels:
            first = self.app.recorder.select_events(n.originator_id, lte=1)[0]
            import orjson

            self.levels[n.originator_id] = confidentiality_of(first.topic, orjson.loads(self._plain(first.state)))
        return self.levels[n.originator_id]

    def _plain(self, state: bytes) -> bytes:
        if self._cipher is not None:
            state = self._cipher.decrypt(state)
        if self._compressor is not None:
            state = self._compressor.decompress(state)
        return state

    def message(self, n: Notification) -> tuple[bytes, bytes]:
        state = self._plain(n.state)
        envelope = envelope_from_stored(
            n.topic, state, n.originator_id, n.originator_version, n.id, self._level(n, state)
        )
        return str(n.originator_id).encode(), encode(envelope)

    def publish(self, notifications: list[Notification]) -> None:
        """Send a batch and wait for every acknowledgement; raise if any send failed. Only facts of
        the public contract are published; internal records (clearances) stay in the store. (Audit
        checkpoints live in their own table and never appear in this log.)"""
        public = [n for n in notifications if n.topic in STORED_TOPICS]
        futures = [self.producer.send(EVENTS_TOPIC, key=key, value=value) for key, value in map(self.message, public)]
        self.producer.flush()
        self._last_public = len(public)
        failed = [f for f in futures if f.failed()]
        if failed:
            raise RelayError(
                f"the broker did not acknowledge {len(failed)} of {len(futures)} events: {failed[0].exception}"
            )

    def run(
        self,
        *,
        until_caught_up: bool = False,
        idle_sleep_s: float = 0.1,
        on_progress: Callable[[RelayStats], None] | None = None,
        max_seconds: float | None = None,
    ) -> RelayStats:
        """Follow the log from the recorded position. With ``until_caught_up``, return once
        everything stored when the relay reached the head has been acknowledged. While idle, the
        poll interval grows from 10 ms to ``idle_sleep_s`` (low lag when busy, cheap when quiet)."""
        idle = min_idle = min(0.01, idle_sleep_s)
        position = self.recorded_position()
        cursor = self.ensure_broker(position)
        self.stats.position = position
        deadline = time.monotonic() + max_seconds if max_seconds else None
        while not self._stopping:
            if deadline and time.monotonic() > deadline:
                break
            notifications = self.app.recorder.select_notifications(start=cursor + 1, limit=self.batch)
            self.stats.head = max(self.head(), self.stats.head)
            if not notifications:
                self.stats.position = max(position, cursor)
                if on_progress:
                    on_progress(self.stats)
                if until_caught_up and cursor >= self.stats.head:
                    break
                time.sleep(idle)
                idle = min(idle * 2, idle_sleep_s)
                cursor = self._periodic_check(cursor)
                continue
            try:
                self.publish(list(notifications))
            except Exception as error:  # noqa: BLE001 - broker trouble: nothing recorded; check and retry the batch
                log.warning("relay: publish failed (%s); retrying with a new producer", error)
                self._new_producer()
                time.sleep(0.5)
                cursor = self._recover(cursor)
                continue
            if cursor == self._public_upto[0]:  # keep the running count of public events
                self._public_upto = (notifications[-1].id, self._public_upto[1] + self._last_public)
            cursor = notifications[-1].id
            self.stats.published += len(notifications)
            idle = min_idle
            if cursor > position:
                self._record(cursor)
                position = cursor
            self.stats.position = position
            if on_progress:
                on_progress(self.stats)
            cursor = self._periodic_check(cursor)
        return self.stats

    def _periodic_check(self, cursor: int) -> int:
        if time.monotonic() - self._last_check < self.check_every_s:
            return cursor
        return self._recover(cursor)

    def _recover(self, cursor: int) -> int:
        """``cursor`` is what this broker should hold (less than the recorded position while
        republishing); a broker that lost events sends the cursor back to the start."""
        try:
            return self.ensure_broker(cursor)
        except Exception as error:  # noqa: BLE001 - broker unreachable: keep the cursor, try again later
            log.warning("relay: broker check failed: %s", error)
            self._last_check = time.monotonic()
            return cursor

    def _new_producer(self) -> None:
        """A producer that saw its broker vanish may be in a fatal state (idempotence): replace it."""
        self.close()
        try:
            self.producer = k.producer(self.bootstrap, **self._producer_overrides)
        except Exception as error:  # noqa: BLE001 - broker still down: the next publish fails and we come back here
            log.warning("relay: cannot connect a producer yet: %s", error)

    def stop(self) -> None:
        self._stopping = True

    def close(self) -> None:
        self._end_offsets.close()
        try:
            self.producer.close(timeout=5)
        except Exception as error:  # noqa: BLE001 - closing a broken producer must not mask the cause
            log.debug("relay: closing the producer failed: %s", error)
