"""ScienceWorld under the rollout manager (EnvFactory builds it by id, one sandbox per episode),
and a recorded run redriven with no model: every observation comes back the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import boxgym.envs  # noqa: F401 - registers the ids
from boxgym.envs import EnvFactory
from boxgym.replay import ReplayConfig, redrive
from boxgym.rollout import Completion, RolloutManager, TaskRef
from boxgym.sandboxes import FakeProvider
from boxgym.trajectories import RunDir

pytestmark = pytest.mark.slow  # a JVM on the host per episode

ENV = "boxgym/ScienceWorld-v0"
TASK = "find-living-thing/1"


@pytest.fixture(scope="module")
def gold() -> list[str]:
    env = gym.make(ENV, provider=FakeProvider())
    try:
        env.reset(options={"task_id": TASK})
        return env.unwrapped.reference_actions()
    finally:
        env.close()


async def test_the_manager_runs_it_and_a_redrive_reproduces_it(gold: list[str], tmp_path: Path) -> None:
    async def policy(episode: Any) -> Completion:
        return Completion({"role": "assistant", "content": gold[episode.turn]})

    provider = FakeProvider()
    try:
        factory = EnvFactory(provider=provider)
        async with RolloutManager(factory, policy, run_dir=tmp_path / "run", progress=False) as manager:
            [result] = await manager.collect([TaskRef(TASK, ENV)])
        assert result.reason == "env_terminated" and result.reward == pytest.approx(1.0), (result.reason, result.error)
        assert result.steps < len(gold) + 1
        config = ReplayConfig(concurrency=1, env_kwargs={"provider": provider}, progress=False)
        summary = await redrive(RunDir(tmp_path / "run"), out=tmp_path / "again", config=config)
    finally:
        await provider.aclose()
    assert summary.to_json()["replayed"] == 1 and summary.to_json()["identical"] == 1
    [row] = summary.rows
    assert row.reward_reproduced and row.steps_recorded == row.steps_replayed
