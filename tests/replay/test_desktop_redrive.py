"""A Desktop-v0 run replays: the apps are deterministic, so redriving its actions in fresh sandboxes
reproduces every screenshot (compared by perceptual distance) and every reward."""

from __future__ import annotations

from pathlib import Path

from boxgym.envs import EnvFactory
from boxgym.envs.suites import desktop
from boxgym.replay import ReplayConfig, redrive
from boxgym.rollout import Completion, RolloutManager, TaskRef
from boxgym.sandboxes import FakeProvider
from boxgym.trajectories import RunDir

from ..display import needs_display


class Reference:
    async def __call__(self, episode) -> Completion:
        replies = list(desktop.k25_reference(desktop.task_set().get(episode.task.task_id)))
        return Completion({"role": "assistant", "content": replies[episode.turn]})


@needs_display
async def test_redriving_a_desktop_run_reproduces_its_screens_and_rewards(tmp_path: Path) -> None:
    provider = FakeProvider()
    factory = EnvFactory(provider=provider)
    tasks = [TaskRef(desktop.task_set().make(seed, 1).id, "boxgym/Desktop-v0") for seed in (2, 3)]
    try:
        async with RolloutManager(factory, Reference(), run_dir=tmp_path / "run", progress=False) as manager:
            results = await manager.collect(tasks)
        assert [r.reward for r in results] == [1.0, 1.0]
        config = ReplayConfig(concurrency=2, env_kwargs={"provider": provider}, progress=False)
        summary = await redrive(RunDir(tmp_path / "run"), out=tmp_path / "again", config=config)
    finally:
        await provider.aclose()
    assert summary.to_json()["replayed"] == 2 and summary.to_json()["identical"] == 2, summary.to_json()
    assert all(row.reward_reproduced and row.steps_recorded == row.steps_replayed for row in summary.rows)
