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

The override copies a private method; it is applied only to the faust-streaming versions it was checked
against (``CHECKED``). Any other version runs faust's own consumer and logs a warning once."""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Coroutine, Generator
from typing import Any

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver

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


class FastDrainConsumer(driver.Consumer):
    """faust's aiokafka consumer; only the per-message hand-off of ``_drain_messages`` and the fetch wait
    (``ConsumerThread``) differ."""

    def _new_consumer_thread(self) -> Any:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

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

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        offset = message.offset
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
    faust-streaming is one it was checked against; otherwise faust's own)."""

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
