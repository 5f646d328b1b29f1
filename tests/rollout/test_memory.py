"""What a run leaves to Python's memory management: no cycles per episode, the collector as it was."""

from __future__ import annotations

import asyncio
import gc

import pytest

from boxgym.rollout import InstantPolicy, Concurrency, NullEnv, RolloutConfig, RolloutManager, TaskRef


async def _run(n: int, config: RolloutConfig | None = None) -> int:
    async with RolloutManager(NullEnv.factory(3), InstantPolicy(), config=config, progress=False) as manager:
        return len(await manager.collect(TaskRef(f"t{i}") for i in range(n)))


def test_finished_episodes_are_freed_without_the_garbage_collector() -> None:
    # An episode that its task's result held (and that held its task) would be a reference cycle:
    # every finished episode would stay in memory until a full collection.
    gc.collect()
    gc.disable()
    try:
        assert asyncio.run(_run(300)) == 300
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_the_collector_is_on_whenever_other_code_runs_during_admission() -> None:
    seen: list[bool] = []

    async def main() -> None:
        async def watch() -> None:
            while True:
                seen.append(gc.isenabled())
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        # A small admission bound makes the feeder wait (and so yield) between bursts.
        await _run(500, RolloutConfig(concurrency=Concurrency(episodes=20)))
        watcher.cancel()

    asyncio.run(main())
    assert len(seen) > 50 and all(seen)
    assert gc.isenabled()


def test_a_collector_the_process_turned_off_stays_off() -> None:
    gc.disable()
    try:
        assert asyncio.run(_run(100, RolloutConfig(concurrency=Concurrency(episodes=10)))) == 100
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_admission_pause_can_be_turned_off() -> None:
    states: list[bool] = []

    def tasks():  # consumed lazily by the feeder, inside its admission loop
        for i in range(10):
            states.append(gc.isenabled())
            yield TaskRef(f"t{i}")

    async def main(pause: bool) -> None:
        async with RolloutManager(NullEnv.factory(1), InstantPolicy(), config=RolloutConfig(gc_pause_admission=pause)) as m:
            await m.collect(tasks())

    asyncio.run(main(True))
    assert states and not any(states)
    states.clear()
    asyncio.run(main(False))
    assert states and all(states)


def test_a_task_iterable_that_raises_leaves_the_collector_on() -> None:
    def tasks():
        yield TaskRef("t0")
        raise RuntimeError("the task source broke")

    async def main() -> None:
        async with RolloutManager(NullEnv.factory(1), InstantPolicy()) as manager:
            await manager.collect(tasks())

    with pytest.raises(RuntimeError, match="task source broke"):
        asyncio.run(main())
    assert gc.isenabled()
