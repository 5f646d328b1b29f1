"""Both sides of the fault rule (boxgym.errors), end to end on Docker.

The agent's side: a sandbox the agent wrecked beyond recovery (its files fill the
memory limit) is scored 0 with the reason, through gym.make and through the
RolloutManager, which does not retry it. The infrastructure's side: a container
killed from outside (``docker kill``) is an infrastructure failure, reward None,
and the RolloutManager retries it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace

import gymnasium as gym
import pytest

import boxgym.envs  # noqa: F401 - registers the ids
from boxgym.envs import EnvFactory
from boxgym.envs.runner import run_sync
from boxgym.rollout import CallablePolicy, EndReason, Outcome, RolloutManager, TaskRef
from boxgym.sandboxes import SandboxPool
from boxgym.sandboxes.ownership import Run
from boxgym.trajectories import EpisodeEnd, read_records

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# What a careless or hostile agent runs: /tmp (256 MiB) fills a 96 MiB memory limit with files no
# kill can free; then anything the tool server or a judge needs a page for meets the OOM killer.
FILL = "head -c 200M /dev/zero > /tmp/fill; for i in $(seq 20); do python3 -c 'x = bytearray(16 * 2**20)'; done"


def message(*commands: str, tool: str = "bash") -> dict:
    calls = [
        {"id": f"c{i}", "type": "function", "function": {"name": tool, "arguments": json.dumps({"command": c} if c else {})}}
        for i, c in enumerate(commands)
    ]
    return {"role": "assistant", "content": "", "tool_calls": calls}


SUBMIT = message("", tool="submit")


@pytest.fixture
def run():
    """A run of its own, so that its containers are told apart from other tests' by label."""
    own = Run.new()
    yield own
    shutil.rmtree(own.socket_root, ignore_errors=True)


@pytest.fixture
def tight(spec):
    return replace(spec, limits=replace(spec.limits, memory_mb=96, tmp_mb=256))


def containers(run: Run) -> list[str]:
    out = subprocess.run(["docker", "ps", "-q", "--filter", f"label=boxgym.sandbox={run.run_id}"], capture_output=True, text=True)  # fmt: skip
    return out.stdout.split()


def test_a_wrecked_sandbox_scores_zero_through_gym_make(tight, run):
    pool = SandboxPool(tight, size=0, run=run)
    env = gym.make("boxgym/Shell-v0", provider=pool)
    try:
        env.reset(seed=0)
        _, reward, terminated, truncated, info = env.step(message(FILL, "ls", "ls", "ls"))
        for _ in range(5):
            if terminated or truncated:
                break
            _, reward, terminated, truncated, info = env.step(SUBMIT)
        assert terminated and reward == 0.0
        assert info["end_reason"] == "sandbox_wrecked" and info["infra_failure"] is False
        assert "SandboxWrecked" in info["error"] and "memory" in info["error"]
    finally:
        env.close()
        run_sync(pool.aclose())


def test_a_container_killed_from_outside_is_an_infrastructure_failure_through_gym_make(spec, run):
    pool = SandboxPool(spec, size=0, run=run)
    env = gym.make("boxgym/Shell-v0", provider=pool)
    try:
        env.reset(seed=0)
        [container] = containers(run)
        subprocess.run(["docker", "kill", container], capture_output=True, check=True)
        _, reward, terminated, _, info = env.step(message("ls"))
        assert terminated and info["infra_failure"] is True and info["end_reason"] == "infra"
        assert "SandboxBroken" in info["error"]
    finally:
        env.close()
        run_sync(pool.aclose())


async def run_one(pool: SandboxPool, policy, run_dir) -> tuple:
    async with RolloutManager(EnvFactory(), policy, provider=pool, run_dir=run_dir, progress=False) as manager:
        [result] = await manager.collect([TaskRef("shell/d0/s0", "boxgym/Shell-v0")])
    ends = [r for r in read_records(run_dir) if isinstance(r, EpisodeEnd)]
    return result, ends


async def test_the_rollout_manager_scores_a_wreck_zero_and_does_not_retry_it(tight, run, tmp_path):
    async def wreck(messages, tools):
        return message(FILL, "ls", "ls") if len(messages) <= 2 else SUBMIT

    async with SandboxPool(tight, size=0, run=run) as pool:
        result, ends = await run_one(pool, CallablePolicy(wreck), tmp_path)
    assert result.reason is EndReason.SANDBOX_WRECKED and result.outcome is Outcome.TERMINATED
    assert result.reward == 0.0 and result.attempts == 1 and "memory" in result.error
    assert [(e.outcome, e.reward) for e in ends] == [(Outcome.TERMINATED, 0.0)]


async def test_the_rollout_manager_retries_a_container_killed_from_outside(spec, run, tmp_path):
    async def killer(messages, tools):
        if len(messages) <= 2 and len(containers(run)) == 1 and not killed:
            killed.append(containers(run)[0])
            subprocess.run(["docker", "kill", killed[0]], capture_output=True, check=True)
            return message("ls")
        return SUBMIT if len(messages) > 2 else message("ls")

    killed: list[str] = []
    async with SandboxPool(spec, size=0, run=run) as pool:
        result, ends = await run_one(pool, CallablePolicy(killer), tmp_path)
    assert killed and result.attempts == 2 and result.ok, result
    assert [e.outcome for e in ends] == [Outcome.INFRA_FAILURE, result.outcome]
    assert ends[0].reward is None and "killed" in (ends[0].error or "")


async def test_a_judge_in_a_sandbox_the_agent_filled_is_the_agents_wreck_not_a_judge_error(tight, engine):
    from boxgym.errors import SandboxWrecked
    from boxgym.judges import FinishedEpisode, UnitTestJudge
    from boxgym.sandboxes.pool import sandbox

    from ..judges.cheats import SOLUTION, TASK

    async with sandbox(tight, engine=engine) as sb:
        await sb.write_file("solution.py", SOLUTION)
        await sb.exec("head -c 200M /dev/zero > /tmp/fill", timeout=30)  # killed at the limit; the file stays
        with pytest.raises(SandboxWrecked) as err:
            await UnitTestJudge().score(FinishedEpisode(TASK, sb, submitted=True))
        assert "memory" in str(err.value)
