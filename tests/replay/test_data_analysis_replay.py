"""Replaying DataAnalysis-v0: a redrive re-runs the recorded cells in a fresh kernel (fake sandboxes,
a real kernel on the host) and reproduces every observation, the plot's image included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from boxgym.envs import EnvFactory
from boxgym.envs.suites import data_analysis
from boxgym.replay import ReplayConfig, redrive
from boxgym.rollout import Completion, RolloutManager, TaskRef
from boxgym.sandboxes import FakeProvider
from boxgym.trajectories import RunDir

pytest.importorskip("ipykernel")
pytest.importorskip("pandas")

ENV = "boxgym/DataAnalysis-v0"


def _task_ids() -> list[str]:
    """A plot task (an image in the record) and one of level 1."""
    plot = next(t for s in range(60) if (t := data_analysis.generate(s, 3)).metadata.get("plot"))
    return [plot.id, data_analysis.generate(0, 1).id]


class Reference:
    """Answers each turn with the task's reference call of that turn."""

    async def __call__(self, episode: Any) -> Completion:
        task = data_analysis.task_set().get(episode.task.task_id)
        call = task.reference[episode.turn]
        return Completion({"role": "assistant", "content": "", "tool_calls": [call.to_openai()]})


async def test_a_redrive_reproduces_the_cells_and_the_plot(tmp_path: Path) -> None:
    provider = FakeProvider()
    try:
        factory = EnvFactory(provider=provider)
        async with RolloutManager(factory, Reference(), run_dir=tmp_path / "run", progress=False, name="rec") as manager:
            results = await manager.collect([TaskRef(task_id, ENV) for task_id in _task_ids()])
        assert [r.reward for r in results] == [1.0, 1.0]
        await factory.aclose()
        assert any((tmp_path / "run" / "images").iterdir())  # the plot, stored once as a file
        config = ReplayConfig(concurrency=2, env_kwargs={"provider": provider}, progress=False)
        summary = await redrive(RunDir(tmp_path / "run"), out=tmp_path / "again", config=config)
    finally:
        await provider.aclose()
    assert summary.to_json()["replayed"] == 2 and summary.to_json()["identical"] == 2, summary.to_json()
    assert all(row.reward_reproduced for row in summary.rows)
