"""The worker's per-message hand-off (``streams.transport``): a callback that does not suspend runs to its end
synchronously; one that suspends is finished in a task, exactly as if it had been awaited (results,
exceptions, cancellation), and a set ``suspend_flow`` abandons it as faust's own loop does. Pure asyncio, no
broker: the consumer's ``wait_first`` and ``suspend_flow`` are faust's own (a real ``FastDrainConsumer`` is not
built here; its drain loop runs in every worker test under ``tests/streams``)."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from mode import Service

from streams.transport import CHECKED, FastDrainConsumer, _finish, fast_drain_supported


class Harness(Service):
    """The two members ``_hand_off`` uses: mode's ``Service.wait_first`` and an ``asyncio.Event``."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()
        self.raced = 0  # how many callbacks went through wait_first (a task raced against suspend_flow)

    async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:
        self.raced += 1
        return await super().wait_first(*coros, timeout=timeout)

    _hand_off = FastDrainConsumer._hand_off


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_callback_that_does_not_suspend_runs_to_its_end_without_a_task() -> None:
    seen: list[str] = []

    async def callback(message: str) -> None:
        seen.append(message)

    async def main() -> int:
        harness = Harness()
        await harness._hand_off(callback, "m1")
        return harness.raced

    assert run(main()) == 0
    assert seen == ["m1"]


def test_a_callback_that_suspends_is_finished_with_every_value_it_awaits() -> None:
    seen: list[Any] = []

    async def callback(message: str) -> None:
        queue_full = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, queue_full.set_result, "space")
        seen.append(await queue_full)  # suspends once
        await asyncio.sleep(0)  # and again (a bare yield)
        seen.append(message)

    async def main() -> int:
        harness = Harness()
        await harness._hand_off(callback, "m2")
        return harness.raced

    assert run(main()) == 1
    assert seen == ["space", "m2"]


def test_an_error_after_the_suspension_reaches_the_drain_loop() -> None:
    async def callback(message: str) -> None:
        await asyncio.sleep(0.001)
        raise ValueError(f"cannot decode {message}")

    async def main() -> None:
        await Harness()._hand_off(callback, "m3")

    with pytest.raises(ValueError, match="cannot decode m3"):
        run(main())


def test_an_error_before_any_suspension_reaches_the_drain_loop() -> None:
    async def callback(message: str) -> None:
        raise KeyError(message)

    async def main() -> None:
        await Harness()._hand_off(callback, "m4")

    with pytest.raises(KeyError, match="m4"):
        run(main())


def test_a_suspended_callback_is_abandoned_when_the_flow_is_suspended() -> None:
    """A rebalance sets ``suspend_flow``: the blocked callback is cancelled (it sees CancelledError and can
    clean up), and the drain loop goes on, as with faust's ``wait_first(callback, suspend_flow.wait())``."""
    events: list[str] = []

    async def callback(message: str) -> None:
        try:
            await asyncio.get_running_loop().create_future()  # a full buffer that never drains
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    async def main() -> None:
        harness = Harness()
        asyncio.get_running_loop().call_later(0.01, harness.suspend_flow.set)
        await harness._hand_off(callback, "m5")
        await asyncio.sleep(0.01)  # wait_first cancels the loser; let the cancellation run
        events.append("drain goes on")

    run(main())
    assert events == ["cancelled", "drain goes on"]


def test_finish_passes_a_cancellation_into_the_suspended_coroutine() -> None:
    closed: list[str] = []

    async def blocked() -> str:
        try:
            await asyncio.sleep(10)
        finally:
            closed.append("finally ran")
        return "never"

    async def main() -> None:
        coro = blocked()
        awaiting = coro.send(None)  # runs up to the sleep
        task = asyncio.ensure_future(_finish(coro, awaiting))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert closed == ["finally ran"]


def test_the_fast_drain_applies_only_to_the_faust_versions_it_was_checked_against() -> None:
    assert fast_drain_supported(faust.__version__) == (faust.__version__ in CHECKED)
    assert fast_drain_supported("0.15.3")
    assert not fast_drain_supported("0.16.0")


def test_the_worker_app_consumes_through_the_fast_drain_with_a_short_fetch_wait(tmp_path: Any) -> None:
    """The worker's app (``streams.app.make_app``) builds ``FastDrainConsumer`` and an aiokafka consumer
    whose fetch wait is ``FETCH_MAX_WAIT_MS`` (faust: 1,500) and poll size ``TUNING``'s (nothing connects)."""
    from connectors.settings import Settings
    from streams.app import TUNING, make_app
    from streams.transport import FETCH_MAX_WAIT_MS, ConsumerThread

    async def main() -> tuple[Any, ...]:
        app = make_app(Settings(home=tmp_path, kafka_bootstrap="127.0.0.1:9"))
        consumer = app.consumer
        kafka = consumer._thread._create_worker_consumer(app.transport)
        try:
            return type(consumer), type(consumer._thread), kafka._fetch_max_wait_ms, kafka._max_poll_records
        finally:
            await kafka.stop()

    expected = (FastDrainConsumer, ConsumerThread, FETCH_MAX_WAIT_MS, TUNING["broker_max_poll_records"])
    assert run(main()) == expected
    assert FETCH_MAX_WAIT_MS == 100
