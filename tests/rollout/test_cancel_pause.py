"""Cancellation releases sandboxes; partial rollouts pause and resume where they stopped."""

from __future__ import annotations

import asyncio

from boxgym.rollout import IterationBudget, Outcome, RolloutConfig, RolloutManager, TaskRef, to_training
from boxgym.sandboxes import FakeProvider

from .testing_env import Script, ScriptedEnv, TokenPolicy, factory


def _drain(stream):  # type: ignore[no-untyped-def]
    """Consume a run in the background (a run starts when its stream is first read)."""

    async def consume():  # type: ignore[no-untyped-def]
        return [item async for item in stream]

    return asyncio.ensure_future(consume())


async def _until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_cancel_one_episode_releases_its_sandbox_and_spares_the_others() -> None:
    provider = FakeProvider()
    made: list[ScriptedEnv] = []
    hang = lambda task: Script(steps=3, hang_at=1) if task.task_id == "stuck" else Script(steps=3, step_delay=0.05)
    async with RolloutManager(factory(hang, made), TokenPolicy(), provider=provider) as manager:
        consumer = _drain(manager.run([TaskRef("stuck"), TaskRef("ok")]))
        await _until(lambda: len(made) == 2 and made[0].taken == 1)
        stuck_id = next(e.episode_id for e in manager.live_episodes if e.task.task_id == "stuck")
        assert manager.cancel(stuck_id)
        results = {r.task.task_id: r for r in await consumer}
    assert results["stuck"].outcome is Outcome.CANCELLED and results["stuck"].reward is None
    assert results["ok"].outcome is Outcome.TERMINATED
    assert all(s.closed for s in provider.handed_out) and len(provider.handed_out) == 2
    assert all(e.closed for e in made)


async def test_cancel_group_cancels_members_not_yet_admitted() -> None:
    provider = FakeProvider()
    config = RolloutConfig()
    config = RolloutConfig(concurrency=type(config.concurrency)(episodes=1))
    async with RolloutManager(factory(Script(steps=3, hang_at=1)), TokenPolicy(), config=config, provider=provider) as manager:
        consumer = _drain(manager.run_groups([TaskRef("t")], group_size=3))
        await _until(lambda: manager.metrics.running == 1)
        [group_id] = {ep.group_id for ep in manager.live_episodes if ep.parent is None}
        manager.cancel_group(group_id)
        [group] = await consumer
    assert [r.outcome for r in group.results] == [Outcome.CANCELLED] * 3
    assert len(provider.handed_out) == 1 and provider.handed_out[0].closed  # the others never got one


async def test_leaving_the_stream_cancels_the_run_and_releases_everything() -> None:
    provider = FakeProvider()
    made: list[ScriptedEnv] = []
    async with RolloutManager(factory(Script(steps=3, hang_at=1), made), TokenPolicy(), provider=provider) as manager:
        stream = manager.run([TaskRef(f"t{i}") for i in range(5)])
        consumer = asyncio.ensure_future(stream.__anext__())
        await _until(lambda: len(made) == 5 and all(e.taken == 1 for e in made))
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await stream.aclose()
        assert manager.metrics.running == 0
    assert len(provider.handed_out) == 5 and all(s.closed for s in provider.handed_out)
    assert all(e.closed for e in made)


async def test_cancel_all_ends_the_run() -> None:
    provider = FakeProvider()
    async with RolloutManager(factory(Script(steps=3, hang_at=1)), TokenPolicy(), provider=provider) as manager:
        consumer = _drain(manager.run([TaskRef(f"t{i}") for i in range(4)]))
        await _until(lambda: manager.metrics.running == 4)
        assert manager.cancel_all() == 4
        results = await consumer
    assert [r.outcome for r in results] == [Outcome.CANCELLED] * 4
    assert all(s.closed for s in provider.handed_out)


async def test_pause_keeps_state_and_resume_continues_where_it_stopped() -> None:
    provider = FakeProvider()
    made: list[ScriptedEnv] = []
    policy = TokenPolicy()
    # 4 episodes of 6 steps, 2 tokens per step: a budget of 8 tokens stops the first iteration
    # after about one step each.
    async with RolloutManager(factory(Script(steps=6), made), policy, provider=provider) as manager:
        manager.set_weight_version("v1")
        first = await manager.collect([TaskRef(f"t{i}") for i in range(4)], budget=IterationBudget(max_tokens=8))
        assert first == []
        assert len(manager.paused) == 4
        steps_before = {e.sandbox.id: e.taken for e in made}
        assert all(0 < n < 6 for n in steps_before.values())
        assert not any(s.closed for s in provider.handed_out)  # sandboxes kept alive across the pause
        manager.set_weight_version("v2")
        second = await manager.collect()
    assert len(second) == 4 and manager.paused == ()
    assert len(made) == 4 and all(e.resets == 1 for e in made)  # resumed, not restarted
    assert all(e.taken == 6 for e in made)
    for result in second:
        assert result.outcome is Outcome.TERMINATED and result.steps == 6
        assert result.weight_versions == ("v1", "v2")
        [sequence] = to_training(result).sequences  # the token history continued in one sequence
        assert {span[2] for span in sequence.spans} == {"v1", "v2"}
    assert all(s.closed for s in provider.handed_out)


async def test_paused_episodes_are_released_when_the_manager_closes() -> None:
    provider = FakeProvider()
    async with RolloutManager(factory(Script(steps=6)), TokenPolicy(), provider=provider) as manager:
        await manager.collect([TaskRef("a"), TaskRef("b")], budget=IterationBudget(max_tokens=2))
        assert len(manager.paused) == 2
    assert len(provider.handed_out) == 2 and all(s.closed for s in provider.handed_out)


async def test_time_budget_pauses_and_keeps_unadmitted_tasks_for_the_next_run() -> None:
    config = RolloutConfig()
    config = RolloutConfig(concurrency=type(config.concurrency)(episodes=2))
    async with RolloutManager(factory(Script(steps=4, step_delay=0.05)), TokenPolicy(), config=config) as manager:
        first = await manager.collect([TaskRef(f"t{i}") for i in range(6)], budget=IterationBudget(max_seconds=0.08))
        second = await manager.collect()
    assert len(first) + len(second) == 6
    assert {r.task.task_id for r in first + second} == {f"t{i}" for i in range(6)}
    assert all(r.outcome is Outcome.TERMINATED and r.steps == 4 for r in first + second)


async def test_step_records_carry_the_weight_version_they_were_sampled_with(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from boxgym.trajectories import EpisodeEnd, StepRecord, read_episodes

    async with RolloutManager(factory(Script(steps=4)), TokenPolicy(), run_dir=tmp_path) as manager:
        manager.set_weight_version(1)
        await manager.collect([TaskRef("t")], budget=IterationBudget(max_tokens=4))
        manager.set_weight_version(2)
        [result] = await manager.collect()
    records = read_episodes(tmp_path)[result.episode_id]
    steps = [r for r in records if isinstance(r, StepRecord)]
    assert [s.index for s in steps] == [0, 1, 2, 3]
    assert [s.weight_version for s in steps] == ["1", "1", "2", "2"]
    ends = [r for r in records if isinstance(r, EpisodeEnd)]
    assert [e.outcome for e in ends] == [Outcome.PAUSED, Outcome.TERMINATED]


async def test_pause_ends_the_run_like_a_spent_budget_and_the_next_run_resumes() -> None:
    quick_first = lambda task: Script(steps=2 if task.task_id == "t0" else 10, step_delay=0.02)
    async with RolloutManager(factory(quick_first), TokenPolicy()) as manager:
        manager.pause()  # outside a run: nothing to pause, and the next run is not affected
        stream = manager.run([TaskRef(f"t{i}") for i in range(6)])
        first = [await anext(stream)]
        manager.pause()
        first += [r async for r in stream]
        paused = manager.paused
        rest = await manager.collect()
    assert paused and len(first) + len(rest) == 6
    assert {r.episode_id for r in rest} >= set(paused) and all(r.outcome is Outcome.TERMINATED for r in first + rest)
