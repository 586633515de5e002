"""The worker's Kafka transport: faust-streaming's aiokafka driver with a cheaper per-message hand-off.

Why (measured, ``python -m bench.bench_streams``, "consume-only ceiling"): on this machine plain aiokafka
``getmany`` reads the events topic at ~200,000 messages/s, a Faust agent doing nothing but ``take`` only at
~6,000. Most of the difference is one line of ``faust.transport.consumer.Consumer._drain_messages``::

    await self.wait_first(callback(message), self.suspend_flow.wait())

for **every** message: two tasks created, an ``asyncio.wait`` and a cancellation, several turns of the
event loop. ``wait_first`` is there so that a rebalance (``stop_flow`` sets ``suspend_flow``) can abandon a
callback that is blocked (stream buffer full, flow control suspended, producer backed up). Almost every
callback, though, finishes without ever suspending: it decodes the message and puts it in the stream's
queue.

:class:`FastDrainConsumer` keeps faust's drain loop line for line except that hand-off: it first runs the
callback coroutine synchronously (one ``send``). If it completes, nothing else is needed. If it suspends,
the rest of it is wrapped, unchanged, in a task and raced against ``suspend_flow`` exactly as faust does,
so the rebalance semantics are faust's own. Measured: consume-only ceiling 6,122 -> 16,148 ev/s together
with ``cython_optimizations`` and larger buffers (``streams.app``).

**Dense topics** (``WorkerApp.dense_topics``: the events topic, whose offsets have no holes: delete policy,
retention forever, no transactions). faust marks every hole it sees in a partition's offsets as *acked*
(``_add_gap``: right for compacted topics and transaction markers) and commits past it. Measured on the dev
broker (``tests/streams/test_acceptance.py``, SIGKILL then restart, about 1 run in 3 on a loaded machine):
at start-up faust resumes the stream partitions *before* it seeks them to the committed offsets, records
fetched in between are handed to the streams (some of them then skipped by the stream), the drain loop
writes the pre-seek read offset back over the seek's, and the records of the next fetch are dropped as
"already read" or leave a hole -- which was then committed: 3 events were never projected, and the
restarted worker waited for them forever. On a dense topic this consumer therefore keeps the next offset
it must deliver per partition (:class:`DenseOffsets`): a record past it means records were skipped, so the
partition is sought back and read again (never marked acked); a record before it was delivered already.
It also seeks a dense partition with no committed offset (or 0) explicitly (aiokafka's
``seek_to_committed`` leaves it where the pre-seek fetch left it), and commits a dense partition only from
its committed offset on (faust accepts a first acked offset one past it). At-least-once: a record
delivered twice is processed twice, and every sink is idempotent.

The overrides copy private methods; they are applied only to the faust-streaming versions they were
checked against (``CHECKED``). Any other version runs faust's own consumer and logs a warning once."""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Coroutine, Generator
from typing import Any

import faust
from aiokafka.structs import TopicPartition
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

log = logging.getLogger(__name__)

CHECKED = ("0.15.3",)  # faust-streaming versions whose _drain_messages this mirrors


def fast_drain_supported(version: str = faust.__version__) -> bool:
    return version in CHECKED


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], awaiting: Any) -> Generator[Any, Any, Any]:
    """Continue ``coro``, which already ran up to its first suspension and yielded ``awaiting`` (the
    future it waits on), as if it had been awaited from the start (what ``yield from`` does)."""
    to_yield = awaiting
    while True:
        try:
            sent = yield to_yield
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as error:  # noqa: BLE001 - thrown in by the task (cancellation): pass it on
            try:
                to_yield = coro.throw(error)
            except StopIteration as done:
                return done.value
            continue
        try:
            to_yield = coro.send(sent)
        except StopIteration as done:
            return done.value


async def _finish(coro: Coroutine[Any, Any, Any], awaiting: Any) -> Any:
    return await _resume(coro, awaiting)


FETCH_MAX_WAIT_MS = 100
"""How long the broker may hold a fetch while no record is there. faust hard-codes 1,500 ms for its worker
consumer; the dev broker (tansu) does not answer a waiting fetch when records arrive, so that wait was most
of a quiet worker's command -> ClickHouse freshness (bench/README.md). 100 ms costs ten empty fetches a
second when idle."""


class ConsumerThread(driver.AIOKafkaConsumerThread):
    """faust's consumer thread; its aiokafka consumer waits at most ``FETCH_MAX_WAIT_MS`` per fetch."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by AIOKafkaConsumer.start() for its Fetcher
        return consumer


DELIVER, DROP, RESEEK, ACCEPT = "deliver", "drop", "reseek", "accept"
MAX_RESEEKS = 5
"""Re-reads of one missing offset before the hole is accepted (logged as an error): only records that can
no longer be read (deleted by hand, a broker that lost them) end there."""


class DenseOffsets:
    """The next offset to deliver per partition of the dense topics, and what to do with a record.

    ``next`` is set by a seek (the offset sought; ``None`` = no committed offset: accept the first record)
    and by every delivery (offset + 1). A seek also bumps the partition's generation, so that a hand-off
    that was suspended across a seek does not write its older position back (``delivered_if``)."""

    def __init__(self, max_reseeks: int = MAX_RESEEKS) -> None:
        self.max_reseeks = max_reseeks
        self.next: dict[Any, int] = {}
        self.generations: dict[Any, int] = {}
        self.reseeking: dict[Any, int] = {}  # partition -> offset sought back to during the current fetch
        self.attempts: dict[Any, tuple[int, int]] = {}  # partition -> (missing offset, re-seeks so far)

    def new_fetch(self) -> None:
        """A new batch of records: what was fetched after a re-seek is judged afresh."""
        self.reseeking.clear()

    def seeked(self, tp: Any, offset: int | None) -> None:
        self.generations[tp] = self.generations.get(tp, 0) + 1
        if offset is None:
            self.next.pop(tp, None)
        else:
            self.next[tp] = offset

    def forget(self, tps: Any) -> None:
        for tp in tps:
            for state in (self.next, self.generations, self.reseeking, self.attempts):
                state.pop(tp, None)

    def generation(self, tp: Any) -> int:
        return self.generations.get(tp, 0)

    def admit(self, tp: Any, offset: int) -> str:
        """``DELIVER`` the expected record (or any, when none is expected); ``DROP`` one delivered already or
        fetched before a re-seek; ``RESEEK`` when records before it are missing; ``ACCEPT`` the hole after
        ``max_reseeks`` re-reads of the same missing offset."""
        expected = self.next.get(tp)
        if expected is None or offset == expected:
            return DELIVER
        if offset < expected or self.reseeking.get(tp) == expected:
            return DROP
        at, count = self.attempts.get(tp, (-1, 0))
        count = count + 1 if at == expected else 1
        self.attempts[tp] = (expected, count)
        if count > self.max_reseeks:
            return ACCEPT
        self.reseeking[tp] = expected
        return RESEEK

    def delivered_if(self, tp: Any, offset: int, generation: int) -> bool:
        """Record the delivery of ``offset`` unless the partition was sought meanwhile."""
        if self.generations.get(tp, 0) != generation:
            return False
        self.next[tp] = offset + 1
        attempt = self.attempts.get(tp)
        if attempt is not None and attempt[0] <= offset:
            del self.attempts[tp]
        return True


class FastDrainConsumer(driver.Consumer):
    """faust's aiokafka consumer; the per-message hand-off of ``_drain_messages``, the fetch wait
    (``ConsumerThread``) and the handling of dense topics (module docstring) differ."""

    def _new_consumer_thread(self) -> Any:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.dense_offsets = DenseOffsets()
        super().__init__(*args, **kwargs)

    @property
    def dense_topics(self) -> frozenset[str]:
        return getattr(self.app, "dense_topics", frozenset())

    async def perform_seek(self) -> None:  # mirrors faust 0.15.3, plus the dense partitions
        read_offset = self._read_offset
        _committed_offsets = await self.seek_to_committed()
        dense, guard = self.dense_topics, self.dense_offsets
        for tp, offset in _committed_offsets.items():
            if tp.topic not in dense:
                continue
            tp = TP(tp.topic, tp.partition)
            if offset is None or offset < 0:  # nothing committed: from the beginning, as the group would
                await self._thread.seek_to_beginning(TopicPartition(tp.topic, tp.partition))
                guard.seeked(tp, None)
            else:
                if offset == 0:  # aiokafka seeks only to offsets > 0
                    self._thread.seek(tp, 0)
                guard.seeked(tp, offset)
        read_offset.update(
            {tp: offset if offset is not None and offset >= 0 else None for tp, offset in _committed_offsets.items()}
        )
        committed_offsets = {
            TP(tp.topic, tp.partition): offset if offset else None
            for tp, offset in _committed_offsets.items()
            if offset is not None
        }
        self._committed_offset.update(committed_offsets)

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        if partition.topic in self.dense_topics:
            self.dense_offsets.seeked(TP(partition.topic, partition.partition), offset)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self.dense_offsets.forget(revoked)
        await super().on_partitions_revoked(revoked)

    def _new_offset(self, tp: TP) -> int | None:
        """faust's, except that a dense partition commits only once its committed offset itself is acked
        (faust accepts a first acked offset one past it) or was accepted as a hole."""
        if tp.topic in self.dense_topics:
            acked = self._acked[tp]
            committed = self._committed_offset[tp]
            if acked and committed is not None and min(acked) > committed and not self._gap[tp].at(committed):
                return None
        return super()._new_offset(tp)

    async def _hand_off(self, callback: Any, message: Any) -> None:
        coro = callback(message)
        try:
            awaiting = coro.send(None)
        except StopIteration:
            return  # the common case: decoded and queued without suspending
        except BaseException:
            coro.close()
            raise
        # it suspended (a full buffer, suspended flow control, a backed-up producer): finish it in a task
        # that a rebalance can abandon, as faust's own loop does
        await self.wait_first(_finish(coro, awaiting), self.suspend_flow.wait())

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - mirrors faust 0.15.3
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        hand_off = self._hand_off
        dense = self.dense_topics
        guard = self.dense_offsets
        admit = guard.admit

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                guard.new_fetch()
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        offset = message.offset
                        if tp.topic in dense:
                            verdict = admit(tp, offset)
                            if verdict is DROP:
                                continue
                            if verdict is RESEEK:
                                expected = guard.next[tp]
                                log.warning(
                                    "worker: %s[%d]: offset %d arrived where %d was due; reading from %d again",
                                    tp.topic, tp.partition, offset, expected, expected,
                                )  # fmt: skip
                                await self.seek(tp, expected)
                                continue
                            if verdict is ACCEPT:
                                expected = guard.next[tp]
                                log.error(
                                    "worker: %s[%d]: offsets %d..%d could not be read after %d attempts; going on "
                                    "past them (run `taskledger projections rebuild` to project them)",
                                    tp.topic, tp.partition, expected, offset - 1, guard.max_reseeks,
                                )  # fmt: skip
                                await self._add_gap(tp, expected, offset - 1)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            generation = guard.generation(tp)
                            await hand_off(callback, message)
                            if guard.delivered_if(tp, offset, generation):
                                set_read_offset(tp, offset)
                            continue
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset:
                                if acks_enabled_for(message.topic):
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None:
                                if self._n_acked >= commit_every:
                                    self._n_acked = 0
                                    await self.commit()
                            await hand_off(callback, message)
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
                    unset_flag(flag_consumer_fetching)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)


class FastDrainTransport(driver.Transport):
    Consumer = FastDrainConsumer


class WorkerApp(faust.App):
    """A faust App whose consumer transport is :class:`FastDrainTransport` (when the installed
    faust-streaming is one it was checked against; otherwise faust's own). ``dense_topics``: the topics
    whose offsets have no holes (module docstring); set it before the app starts."""

    dense_topics: frozenset[str] = frozenset()

    def _new_transport(self) -> Any:
        url = self.conf.broker_consumer[0]
        if url.scheme in ("kafka", "aiokafka") and fast_drain_supported():
            return FastDrainTransport(self.conf.broker_consumer, self)
        if url.scheme in ("kafka", "aiokafka"):
            log.warning(
                "worker: faust-streaming %s is not one the fast drain was checked against (%s); "
                "using faust's own consumer",
                faust.__version__,
                ", ".join(CHECKED),
            )
        return super()._new_transport()
