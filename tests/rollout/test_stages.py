"""Judging, closing and backpressure: the stages around the step loop."""

from __future__ import annotations

import asyncio
from typing import Any

from boxgym.errors import JudgeError
from boxgym.rollout import (
    StageDeadlines,
    InstantPolicy,
    Concurrency,
    NullEnv,
    Outcome,
    Retries,
    RolloutConfig,
    RolloutManager,
    TaskRef,
    Verdict,
)
from boxgym.sandboxes import FakeProvider

from .testing_env import Script, ScriptedEnv, TokenPolicy, factory


async def test_judge_gives_the_reward_while_the_sandbox_is_alive_and_is_bounded() -> None:
    provider = FakeProvider()
    active = peak = 0

    async def judge(episode: Any) -> Verdict:
        nonlocal active, peak
        assert episode.sandbox is not None and not episode.sandbox.closed
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return Verdict(0.5, parts={"tests": 0.5})

    config = RolloutConfig(concurrency=Concurrency(judging=2))
    async with RolloutManager(factory(Script(steps=1)), TokenPolicy(), config=config, provider=provider, judge=judge) as manager:
        results = await manager.collect([TaskRef(f"t{i}") for i in range(6)])
    assert all(r.reward == 0.5 and r.reward_parts == {"tests": 0.5} for r in results)
    assert peak == 2
    assert all(s.closed for s in provider.handed_out)


async def test_a_judge_that_fails_is_an_infrastructure_failure() -> None:
    async def judge(episode: Any) -> Verdict:
        raise JudgeError("grader unreachable")

    config = RolloutConfig(retries=Retries(episode_attempts=1))
    async with RolloutManager(factory(Script(steps=1)), TokenPolicy(), config=config, judge=judge) as manager:
        [result] = await manager.collect([TaskRef("t")])
    assert result.outcome is Outcome.INFRA_FAILURE and result.reason == "infra" and result.reward is None


async def test_a_close_that_hangs_is_abandoned_after_its_deadline_and_reported() -> None:
    class Sticky(ScriptedEnv):
        async def aclose(self) -> None:
            await asyncio.Event().wait()

    config = RolloutConfig(deadlines=StageDeadlines(close=0.1, tick=0.02))
    manager = RolloutManager(lambda task, sandbox: Sticky(Script(steps=1)), TokenPolicy(), config=config)
    async with manager:
        [result] = await asyncio.wait_for(manager.collect([TaskRef("t")]), 5)
    assert result.outcome is Outcome.TERMINATED and result.reward == 1.0  # the verdict stands
    assert (result.error or "").startswith("close failed")
    assert manager.metrics.close_failures == 1


async def test_a_slow_consumer_stops_admission() -> None:
    config = RolloutConfig(concurrency=Concurrency(episodes=2, results_buffer=1))
    async with RolloutManager(NullEnv.factory(1), InstantPolicy(), config=config) as manager:
        stream = manager.run([TaskRef(f"t{i}") for i in range(20)])
        await stream.__anext__()
        await asyncio.sleep(0.05)  # the consumer dawdles
        # One taken, one in the buffer, two admitted and waiting to hand theirs over.
        assert manager.metrics.started <= 4
        rest = [r async for r in stream]
    assert len(rest) == 19
