"""The registered envs on real Docker, through gym.make's defaults (the shared warm pool).

Every suite at every level: the reference solution scores 1, a wrong one and
doing nothing score 0; check_env accepts every id; closing the envs leaves
no container behind.
"""

from __future__ import annotations

import os
import subprocess

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import boxgym.envs  # noqa: F401 - registers the ids
from boxgym.envs import defaults
from boxgym.trajectories import EpisodeStart, TrajectoryWriter, read_records

from .suite_runs import IDS, LEVELS, SCRIPTS, play

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IMAGE = os.environ.get("BOXGYM_TEST_IMAGE", "slim")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("trajectories")


@pytest.fixture(scope="module")
def envs(run_dir):
    writer = TrajectoryWriter(run_dir)
    made = {env_id: gym.make(env_id, image=IMAGE, pool_size=1, writer=writer) for env_id in IDS}
    yield made
    for env in made.values():
        env.close()
    writer.close()


@pytest.mark.parametrize("env_id", IDS)
def test_scripts_score_as_expected_at_every_level(envs, env_id):
    env = envs[env_id]
    for level in range(LEVELS):
        for script, (_, expected) in SCRIPTS.items():
            reward, info = play(env, level, script, seed=100 + level)
            assert reward == expected, (env_id, level, script, info["verdict"])


@pytest.mark.parametrize("env_id", IDS)
def test_check_env_accepts_every_id(envs, env_id):
    check_env(envs[env_id].unwrapped)


def test_closing_the_envs_leaves_no_container(envs, run_dir):
    envs["boxgym/Code-v0"].reset(seed=0)  # an episode still open when the env closes
    for env in envs.values():
        env.close()
    assert defaults._pools == {}  # the last env's close closed the shared pool
    ids = [r.meta["sandbox_id"] for r in read_records(run_dir) if isinstance(r, EpisodeStart)]
    assert len(ids) > 3 * LEVELS * len(SCRIPTS)
    out = subprocess.run(["docker", "ps", "-aq", "--no-trunc"], capture_output=True, text=True, check=True)
    alive = set(out.stdout.split())
    assert not [i for i in ids if any(c.startswith(i) or i.startswith(c) for c in alive)]


async def test_many_envs_at_once_on_one_pool():
    """How a training loop uses boxgym: concurrent episodes on one loop sharing one warm pool."""
    import asyncio

    from boxgym.envs import reference_messages
    from boxgym.sandboxes import SandboxPool, SandboxSpec

    async def episode(pool, env_id, seed):
        env = gym.make(env_id, provider=pool).unwrapped
        try:
            _, info = await env.areset(seed=seed)
            for message in reference_messages(env.tasks.get(info["task_id"])):
                _, reward, terminated, _, info = await env.astep(message)
            return reward, info["infra_failure"]
        finally:
            await env.aclose()

    async with SandboxPool(SandboxSpec(image=IMAGE), size=2) as pool:
        results = await asyncio.gather(*(episode(pool, env_id, seed) for env_id in IDS for seed in range(2)))
    assert results == [(1.0, False)] * (2 * len(IDS))
