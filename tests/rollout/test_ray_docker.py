"""Rollouts on Ray with real Docker sandboxes: an actor killed mid-run leaves no container
behind (on whichever Docker host it used), and ``boxgym demo --ray 2`` runs the demo over two
actors into one readable run."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
from collections import Counter
from typing import Any

import pytest

from boxgym.cli import main
from boxgym.rollout import Concurrency, RolloutConfig, RolloutManager, TaskRef
from boxgym.trajectories import RunDir

from .testing_env import TokenPolicy

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("ray_cluster")]


class SleepEnv:
    """Two steps, each a command in the episode's sandbox (so a killed actor holds live containers)."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.taken = 0

    async def areset(self, *, seed: int | None = None, options: Any = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], {}

    async def astep(self, action: Any) -> tuple[list[dict[str, Any]], float, bool, bool, dict[str, Any]]:
        result = await self.sandbox.exec("sleep 0.3", timeout=10)
        self.taken += 1
        done = self.taken >= 2
        return [{"role": "tool", "tool_call_id": "c", "content": str(result.exit_code)}], 1.0 if done else 0.0, done, False, {}

    async def aclose(self) -> None:
        pass


async def build(shard: Any, resources: Any) -> RolloutManager:
    from boxgym.sandboxes import SandboxPool, SandboxSpec

    pool = await resources.enter_async_context(SandboxPool(SandboxSpec(image="slim"), size=1))
    config = RolloutConfig(concurrency=Concurrency(episodes=3))
    return RolloutManager(
        lambda task, sandbox: SleepEnv(sandbox), TokenPolicy(), provider=pool, config=config,
        name=shard.name, run_dir=shard.run_dir, progress=False,
    )  # fmt: skip


def _containers_of(pid: int, host: str | None = None) -> list[str]:
    flags = ["-H", host] if host else []
    out = subprocess.run(
        ["docker", *flags, "ps", "-aq", "--filter", f"label=boxgym.owner.pid={pid}"], capture_output=True, text=True, check=True
    )
    return out.stdout.split()


async def build_per_host(second_url: str, shard: Any, resources: Any) -> RolloutManager:
    """One Docker host per actor, as one actor per node would have: the first actor on this
    machine's default engine, the others on the second engine."""
    from boxgym.sandboxes import DockerHost, SandboxPool, SandboxSpec

    host = DockerHost() if shard.index == 0 else DockerHost(second_url)
    pool = await resources.enter_async_context(SandboxPool(SandboxSpec(image="slim", host=host), size=1))
    config = RolloutConfig(concurrency=Concurrency(episodes=3))
    return RolloutManager(
        lambda task, sandbox: SleepEnv(sandbox), TokenPolicy(), provider=pool, config=config,
        name=shard.name, run_dir=shard.run_dir, progress=False,
    )  # fmt: skip


async def test_a_killed_actor_s_containers_are_removed_from_the_host_it_used(tmp_path, second_host):
    from boxgym.rollout.ray import Placement, RayRolloutManager

    build = functools.partial(build_per_host, second_host.unix.url)
    tasks = [TaskRef(f"t{i}") for i in range(8)]
    results, held = [], []
    async with RayRolloutManager(build, placement=Placement(actors=2), run_dir=tmp_path, progress=False) as manager:
        victim = next(a for a in manager.actors if a.name.endswith("_1"))  # shard 1: the second host
        async for result in manager.run(tasks):
            results.append(result)
            if not held:
                held = _containers_of(victim.pid, second_host.unix.url)
                if held:
                    os.kill(victim.pid, signal.SIGKILL)
    assert held, "the actor on the second host held no sandbox when it was killed"
    assert _containers_of(victim.pid, second_host.unix.url) == []  # gc on its node found that host
    assert Counter(r.task.task_id for r in results) == Counter(t.task_id for t in tasks)
    assert all(r.ok for r in results)


async def test_a_killed_actor_leaves_no_container_and_loses_no_episode(tmp_path):
    from boxgym.rollout.ray import Placement, RayRolloutManager

    tasks = [TaskRef(f"t{i}") for i in range(10)]
    results, victim, held = [], None, []
    async with RayRolloutManager(build, placement=Placement(actors=2), run_dir=tmp_path, progress=False) as manager:
        async for result in manager.run(tasks):
            results.append(result)
            if victim is None:
                victim = next(a for a in manager.actors if result.episode_id.startswith(a.name + "-"))
                held = _containers_of(victim.pid)
                os.kill(victim.pid, signal.SIGKILL)
    assert held, "the actor held no sandbox when it was killed"
    assert _containers_of(victim.pid) == []  # removed by gc on its node, before the manager closed
    assert Counter(r.task.task_id for r in results) == Counter(t.task_id for t in tasks)
    assert all(r.ok for r in results) and any(r.attempts == 2 for r in results)
    assert [s.name for s in RunDir(tmp_path).shards if s.lost] == [victim.name]


def test_demo_runs_over_two_ray_actors(tmp_path, capsys):
    code = main(["demo", "--ray", "2", "--seeds", "1", "--levels", "2", "--concurrency", "6", "--run-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("boxgym/")}
    assert {env_id: (cols[1], cols[2], cols[6]) for env_id, cols in rows.items()} == {
        env_id: ("2", "1.000", "0") for env_id in ("boxgym/Code-v0", "boxgym/Shell-v0", "boxgym/SQL-v0")
    }
    run = RunDir(tmp_path)
    assert len(run.shards) == 2 and all((s.path / "gateway.jsonl").exists() for s in run.shards)
    episodes = [e.episode_id for e in run.episodes()]
    training = list(run.training())
    assert sorted(t.episode_id for t in training) == sorted(episodes) and len(episodes) == 6
    assert {e.split("-")[0] for e in episodes} == {s.name for s in run.shards}  # both actors ran some
    calls = list(run.gateway_records())
    assert {c.episode_id for c in calls} == set(episodes) and len(calls) >= 12
