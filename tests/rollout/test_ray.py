"""Rollouts on Ray (boxgym.rollout.ray) on a local cluster, without Docker: two actors give what
one process gives, groups stay on one actor, weight versions and pauses reach every actor, and
an actor killed mid-run loses nothing and counts nothing twice."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from boxgym.rollout import Concurrency, IterationBudget, Retries, RolloutConfig, RolloutManager, TaskRef
from boxgym.trajectories import RunDir

from .testing_env import Script, TokenPolicy, factory

pytestmark = pytest.mark.usefixtures("ray_cluster")


def _script(delay: float, task: TaskRef) -> Script:
    seed = task.seed or 0
    return Script(steps=1 + seed % 3, reward=(seed % 5) / 4, step_delay=delay)


def _manager(delay: float, episodes: int, name: str | None, run_dir: Any) -> RolloutManager:
    config = RolloutConfig(concurrency=Concurrency(episodes=episodes))
    env = factory(functools.partial(_script, delay))
    return RolloutManager(env, TokenPolicy(), config=config, name=name, run_dir=run_dir, progress=False)


async def build(delay: float, episodes: int, shard: Any, resources: Any) -> RolloutManager:
    return _manager(delay, episodes, shard.name, shard.run_dir)


def _ray_manager(tmp_path: Any, *, actors: int = 2, delay: float = 0.0, episodes: int = 8, **kwargs: Any) -> Any:
    from boxgym.rollout.ray import Placement, RayRolloutManager

    placement = kwargs.pop("placement", Placement(actors=actors, num_cpus=1.0))
    return RayRolloutManager(
        functools.partial(build, delay, episodes), placement=placement, run_dir=tmp_path, progress=False, **kwargs
    )


def _outcomes(results: Any) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return {(r.task.task_id, r.task.seed, r.sample_index): (r.outcome, r.reward, r.steps) for r in results}


TASKS = [TaskRef(f"t{i}", seed=i) for i in range(12)]


def test_importing_the_rollout_package_does_not_import_ray():
    code = "import boxgym.rollout, sys; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def _local(tasks: list[TaskRef], group_size: int) -> list[Any]:
    async with _manager(0.0, 8, None, None) as local:
        return await local.collect(tasks, group_size=group_size)


async def test_two_actors_give_the_same_results_as_one_process(tmp_path):
    expected = await _local(TASKS, 2)
    async with _ray_manager(tmp_path) as manager:
        results = await manager.collect(TASKS, group_size=2)
        metrics = manager.metrics
    assert len(results) == 24
    assert _outcomes(results) == _outcomes(expected)
    assert len({r.episode_id.split("-")[0] for r in results}) == 2  # both actors ran episodes
    assert (metrics.started, metrics.done, metrics.steps) == (24, 24, sum(r.steps for r in expected))
    # The run directory reads as one run: every episode once, from two shards.
    run = RunDir(tmp_path)
    assert len(run.shards) == 2 and not run.lost()
    assert {e.episode_id for e in run.episodes()} == {r.episode_id for r in results}


async def test_groups_run_on_one_actor_and_arrive_whole(tmp_path):
    async with _ray_manager(tmp_path) as manager:
        groups = [g async for g in manager.run_groups(TASKS, group_size=3)]
    assert sorted(g.task.task_id for g in groups) == sorted(t.task_id for t in TASKS)
    for group in groups:
        assert [r.sample_index for r in group.results] == [0, 1, 2]
        assert {r.episode_id.split("-")[0] for r in group.results} == {group.group_id.split("-")[0]}
        assert {r.group_id for r in group.results} == {group.group_id}


async def test_weight_versions_and_a_pause_reach_every_actor(tmp_path):
    tasks = [TaskRef(f"t{i}", seed=2) for i in range(16)]  # 3 steps each
    async with _ray_manager(tmp_path, delay=0.1, episodes=4) as manager:
        manager.set_weight_version("v1")
        first = [r async for r in manager.run(tasks, budget=IterationBudget(max_episodes=3))]
        paused = manager.paused
        manager.set_weight_version("v2")
        rest = [r async for r in manager.run()]  # resumes the paused episodes, then the tasks not sent
    assert 3 <= len(first) < len(tasks) and paused  # the pause stopped admission and kept episodes
    assert sorted(r.task.task_id for r in first + rest) == sorted(t.task_id for t in tasks)
    resumed = [r for r in rest if r.episode_id in paused]
    assert resumed and all(r.weight_versions == ("v1", "v2") for r in resumed)
    assert all(r.weight_versions == ("v1",) for r in first)


async def _kill_one_mid_run(manager: Any, tasks: list[TaskRef], group_size: int) -> tuple[list[Any], Any]:
    results, victim = [], None
    async for result in manager.run(tasks, group_size=group_size):
        results.append(result)
        if victim is None:
            victim = next(a for a in manager.actors if result.episode_id.startswith(a.name + "-"))
            os.kill(victim.pid, signal.SIGKILL)  # mid-run: it holds running and queued episodes
    return results, victim


async def test_an_actor_killed_mid_run_has_its_episodes_retried_elsewhere(tmp_path):
    tasks = [TaskRef(f"t{i}", seed=i) for i in range(12)]  # 1 to 3 steps of 0.1 s: the first result leaves others running
    async with _ray_manager(tmp_path, delay=0.1, episodes=3) as manager:
        results, victim = await _kill_one_mid_run(manager, tasks, group_size=2)
        assert [a.name for a in manager.lost_actors] == [victim.name]
        assert len(manager.actors) == 2  # a fresh actor took its place
        metrics = manager.metrics
    # Every sample exactly once, none lost, none twice, all scored.
    assert Counter((r.task.task_id, r.sample_index) for r in results) == Counter((t.task_id, k) for t in tasks for k in (0, 1))
    assert all(r.ok for r in results) and _outcomes(results) == _outcomes(await _local(tasks, 2))
    retried = [r for r in results if r.attempts == 2]
    assert retried and not any(r.episode_id.startswith(victim.name + "-") for r in retried)
    for task_id in {r.task.task_id for r in results}:  # a task's two samples ran (again) together
        assert len({r.group_id for r in results if r.task.task_id == task_id}) == 1
    assert metrics.done == 24 and metrics.episode_retries == len(retried)
    # The records: the dead shard is marked lost, its undelivered episodes are set apart.
    manifest = [json.loads(line) for line in (tmp_path / "shards.jsonl").read_text().splitlines()]
    assert [m["name"] for m in manifest if m["kind"] == "shard_lost"] == [victim.name]
    run = RunDir(tmp_path)
    ended = {e.episode_id for e in run.episodes() if e.end is not None}
    assert ended == {r.episode_id for r in results}
    assert run.lost() and all(e.startswith(victim.name + "-") for e in run.lost())


async def test_a_sample_out_of_attempts_is_an_infrastructure_failure(tmp_path):
    tasks = [TaskRef(f"t{i}", seed=i) for i in range(12)]
    async with _ray_manager(tmp_path, delay=0.1, episodes=3, retries=Retries(episode_attempts=1)) as manager:
        results, victim = await _kill_one_mid_run(manager, tasks, group_size=1)
        metrics = manager.metrics
    assert sorted(r.task.task_id for r in results) == sorted(t.task_id for t in tasks)
    failed = [r for r in results if not r.ok]
    assert failed and all(r.reward is None and r.reason == "infra" and victim.name in r.error for r in failed)
    assert metrics.failed == len(failed) and metrics.episode_retries == 0


async def test_a_consumer_that_leaves_early_cancels_the_run(tmp_path):
    async with _ray_manager(tmp_path, delay=0.05, episodes=4) as manager:
        stream = manager.run(TaskRef(f"t{i}", seed=2) for i in range(50))
        first = await anext(stream)
        await stream.aclose()  # what leaving an `async for` does once the stream is collected
        after = await manager.collect([TaskRef("again", seed=0)])
        started = manager.metrics.started
    assert first.ok and [r.task.task_id for r in after] == ["again"]
    assert started < 50  # the rest of the tasks were never admitted


async def test_a_run_whose_every_actor_is_lost_says_so(tmp_path):
    from boxgym.errors import RolloutActorsLost
    from boxgym.rollout.ray import Placement

    placement = Placement(actors=1, num_cpus=1.0, replacements=0)
    async with _ray_manager(tmp_path, delay=0.1, episodes=2, placement=placement) as manager:
        with pytest.raises(RolloutActorsLost, match="every actor"):
            await _kill_one_mid_run(manager, [TaskRef(f"t{i}", seed=i) for i in range(6)], group_size=1)
        assert manager.actors == () and len(manager.lost_actors) == 1


async def test_per_node_placement_puts_that_many_actors_on_every_node(tmp_path, ray_cluster):
    from boxgym.rollout.ray import Placement

    nodes = {n["NodeID"] for n in ray_cluster.nodes() if n["Alive"]}
    placement = Placement(actors=None, per_node=2, num_cpus=0.5)
    async with _ray_manager(tmp_path, placement=placement) as manager:
        actors = manager.actors
        results = await manager.collect(TASKS)
    assert len(actors) == 2 * len(nodes) and {a.node_id for a in actors} == nodes
    assert len(results) == len(TASKS)
