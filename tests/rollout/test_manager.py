"""Scheduling: failure isolation, infrastructure failures, budgets, groups, bounds, metrics."""

from __future__ import annotations

import asyncio

import pytest

from boxgym.rollout import (
    EpisodeBudget,
    StageDeadlines,
    InstantPolicy,
    Concurrency,
    NullEnv,
    Outcome,
    Retries,
    RolloutConfig,
    RolloutManager,
    TaskRef,
)
from boxgym.sandboxes import FakeProvider

from .testing_env import Script, ScriptedEnv, TokenPolicy, factory

FAST = RolloutConfig(retries=Retries(policy_backoff=0.0))


async def test_every_episode_finishes_and_is_scored() -> None:
    async with RolloutManager(NullEnv.factory(4), InstantPolicy(), config=FAST) as manager:
        results = await manager.collect([TaskRef(f"t{i}") for i in range(50)])
    assert len(results) == 50
    assert {r.outcome for r in results} == {Outcome.TERMINATED}
    assert all(r.reward == 1.0 and r.steps == 4 for r in results)
    assert manager.metrics.steps == 200
    assert manager.metrics.tokens == 50 * 4 * 2


async def test_one_failing_episode_does_not_take_down_the_batch() -> None:
    scripts = lambda task: Script(steps=3, raise_at=2) if task.task_id == "bad" else Script(steps=3)
    made: list[ScriptedEnv] = []
    async with RolloutManager(factory(scripts, made), TokenPolicy(), config=FAST) as manager:
        results = {r.task.task_id: r for r in await manager.collect([TaskRef("a"), TaskRef("bad"), TaskRef("b")])}
    assert results["a"].outcome is Outcome.TERMINATED and results["a"].reward == 1.0
    assert results["b"].outcome is Outcome.TERMINATED
    bad = results["bad"]
    assert bad.outcome is Outcome.ERROR and bad.reason == "error"
    assert bad.reward is None  # never scored as 0
    assert "RuntimeError: env bug" in (bad.error or "")
    assert bad.attempts == 1  # a bug is not retried
    assert all(env.closed for env in made)


async def test_infrastructure_failure_is_retried_on_a_fresh_env_then_reported() -> None:
    made: list[ScriptedEnv] = []
    config = RolloutConfig(retries=Retries(episode_attempts=2, policy_backoff=0.0))
    async with RolloutManager(factory(Script(steps=3, broken_at=1), made), TokenPolicy(), config=config) as manager:
        [result] = await manager.collect([TaskRef("t")])
    assert result.outcome is Outcome.INFRA_FAILURE and result.reason == "infra"
    assert result.reward is None
    assert result.attempts == 2 and len(made) == 2
    assert "SandboxBroken" in (result.error or "")
    assert all(env.closed for env in made)
    assert manager.metrics.episode_retries == 1


async def test_env_reported_infra_failure_is_not_a_reward() -> None:
    config = RolloutConfig(retries=Retries(episode_attempts=1))
    async with RolloutManager(factory(Script(steps=3, infra_info_at=2)), TokenPolicy(), config=config) as manager:
        [result] = await manager.collect([TaskRef("t")])
    assert result.outcome is Outcome.INFRA_FAILURE and result.reward is None
    assert result.error == "judge unreachable"


async def test_turn_budget_truncates() -> None:
    config = RolloutConfig(budget=EpisodeBudget(max_turns=2))
    async with RolloutManager(factory(Script(steps=10)), TokenPolicy(), config=config) as manager:
        [result] = await manager.collect([TaskRef("t")])
    assert result.outcome is Outcome.TRUNCATED and result.reason == "max_turns"
    assert result.steps == 2 and result.reward == 0.0


async def test_token_budget_truncates() -> None:
    config = RolloutConfig(budget=EpisodeBudget(max_turns=None, max_tokens=5))
    async with RolloutManager(factory(Script(steps=10)), TokenPolicy(), config=config) as manager:
        [result] = await manager.collect([TaskRef("t")])
    assert result.reason == "max_tokens" and result.completion_tokens == 6 and result.steps == 3


async def test_episode_deadline_fires_and_releases_the_sandbox() -> None:
    provider = FakeProvider()
    config = RolloutConfig(deadlines=StageDeadlines(episode=0.2, tick=0.02))
    async with RolloutManager(
        factory(Script(steps=3, hang_at=2)), TokenPolicy(), config=config, provider=provider
    ) as manager:
        [result] = await asyncio.wait_for(manager.collect([TaskRef("t")]), 5)
    assert result.outcome is Outcome.TRUNCATED and result.reason == "deadline"
    assert result.steps == 2
    assert [s.closed for s in provider.handed_out] == [True]


async def test_policy_call_deadline_is_an_infrastructure_failure() -> None:
    config = RolloutConfig(
        deadlines=StageDeadlines(policy_call=0.1, tick=0.02), retries=Retries(episode_attempts=1)
    )
    async with RolloutManager(factory(Script()), TokenPolicy(delay=30), config=config) as manager:
        [result] = await asyncio.wait_for(manager.collect([TaskRef("t")]), 5)
    assert result.outcome is Outcome.INFRA_FAILURE and result.reason == "stage_deadline"
    assert result.reward is None


async def test_policy_calls_are_bounded_separately_from_episodes() -> None:
    policy = TokenPolicy(delay=0.01)
    config = RolloutConfig(concurrency=Concurrency(episodes=20, policy_calls=3))
    async with RolloutManager(factory(Script(steps=3)), policy, config=config) as manager:
        results = await manager.collect([TaskRef(f"t{i}") for i in range(20)])
    assert len(results) == 20
    assert policy.max_active == 3


async def test_admission_bounds_episodes_in_flight() -> None:
    seen: list[int] = []

    class Probe(NullEnv):
        async def astep(self, action):  # type: ignore[no-untyped-def]
            seen.append(manager.metrics.running)
            return await super().astep(action)

    config = RolloutConfig(concurrency=Concurrency(episodes=4))
    manager = RolloutManager(lambda task, sandbox: Probe(3), InstantPolicy(), config=config)
    async with manager:
        assert len(await manager.collect([TaskRef(f"t{i}") for i in range(30)])) == 30
    assert max(seen) == 4


async def test_groups_come_out_together() -> None:
    async with RolloutManager(factory(Script(steps=1)), TokenPolicy(), config=FAST) as manager:
        groups = [g async for g in manager.run_groups([TaskRef(f"t{i}") for i in range(5)], group_size=3)]
    assert len(groups) == 5
    for group in groups:
        assert len(group.results) == 3
        assert {r.task.task_id for r in group.results} == {group.task.task_id}
        assert [r.sample_index for r in group.results] == [0, 1, 2]
        assert {r.group_id for r in group.results} == {group.group_id}


async def test_groups_wait_for_their_slowest_member() -> None:
    class Uneven(NullEnv):
        pass

    def make(task, sandbox):  # type: ignore[no-untyped-def]
        return Uneven(int(task.task_id))

    async with RolloutManager(make, InstantPolicy(), config=FAST) as manager:
        order = []
        async for group in manager.run_groups([TaskRef("9"), TaskRef("1")], group_size=2):
            order.append(group.task.task_id)
            assert all(r.steps == int(group.task.task_id) for r in group.results)
    assert order == ["1", "9"]


async def test_results_stream_before_the_run_ends() -> None:
    async with RolloutManager(factory(lambda t: Script(steps=1 if t.task_id == "quick" else 50)), TokenPolicy(), config=FAST) as manager:
        stream = manager.run([TaskRef("slow"), TaskRef("quick")])
        first = await stream.__anext__()
        assert first.task.task_id == "quick"
        assert manager.metrics.running == 1  # the slow one is still going
        rest = [r async for r in stream]
    assert [r.task.task_id for r in rest] == ["slow"]


async def test_prometheus_text() -> None:
    async with RolloutManager(NullEnv.factory(2), InstantPolicy()) as manager:
        await manager.collect([TaskRef("a"), TaskRef("b")])
        text = manager.prometheus_text()
    assert 'boxgym_rollout_episodes_finished_total{outcome="terminated"} 2' in text
    assert "boxgym_rollout_steps_total 4" in text
    assert 'boxgym_rollout_stage_in_use{stage="policy_calls"} 0' in text
    for line in text.splitlines():
        assert line.startswith("#") or len(line.split(" ")) == 2


async def test_one_run_at_a_time() -> None:
    async with RolloutManager(NullEnv.factory(2), InstantPolicy()) as manager:
        stream = manager.run([TaskRef("a")])
        await stream.__anext__()
        with pytest.raises(RuntimeError, match="one run at a time"):
            await manager.run([TaskRef("b")]).__anext__()
        await stream.aclose()


async def test_metrics_can_be_scraped_over_http(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    from aiohttp import web

    from boxgym.rollout.metrics import metrics_handler

    async with RolloutManager(NullEnv.factory(1), InstantPolicy()) as manager:
        await manager.collect([TaskRef("a")])
        app = web.Application()
        app.router.add_get("/metrics", metrics_handler(manager.prometheus_text))
        client = await aiohttp_client(app)
        response = await client.get("/metrics")
        assert response.status == 200
        assert "boxgym_rollout_steps_total 1" in await response.text()
