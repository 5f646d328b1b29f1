"""A recorded MiniWoB++ episode redrives: the task id reproduces the page and its element ids, so
the recorded clicks hit the same elements in a fresh browser (fake sandbox, host's Chromium)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from boxgym.envs import EnvFactory
from boxgym.envs.suites.miniwob_oracles import tool_message
from boxgym.replay import ReplayConfig, redrive
from boxgym.rollout import Completion, RolloutManager, TaskRef
from boxgym.sandboxes import FakeProvider
from boxgym.toolsets.browser import page_elements
from boxgym.trajectories import RunDir

pytestmark = [pytest.mark.browser]

ENV = "boxgym/miniwob.click-button-v0"
TASKS = ("miniwob.click-button/d0/s3", "miniwob.click-button/d0/s8")


async def click_the_asked_button(episode: Any) -> Completion:
    page = episode.messages[-1]["content"]  # the first user message: the utterance, then the page
    wanted = page.split('"')[1]  # Task: Click on the "..." button.
    button = next(e for e in page_elements(page) if e.role == "button" and e.name == wanted)
    return Completion(tool_message("click", {"id": button.id}, call_id=f"c{episode.turn}"))


async def test_a_recorded_miniwob_run_redrives_to_the_same_pages_and_rewards(tmp_path: Path) -> None:
    provider = FakeProvider()
    try:
        factory = EnvFactory(provider=provider)
        async with RolloutManager(factory, click_the_asked_button, run_dir=tmp_path / "run", progress=False) as manager:
            results = await manager.collect([TaskRef(task, ENV) for task in TASKS])
        assert [r.reward for r in results] == [1.0, 1.0], [(r.reason, r.error) for r in results]
        config = ReplayConfig(concurrency=1, env_kwargs={"provider": provider}, progress=False)
        summary = await redrive(RunDir(tmp_path / "run"), out=tmp_path / "again", config=config)
    finally:
        await provider.aclose()
    assert summary.to_json()["replayed"] == 2 and summary.to_json()["identical"] == 2, summary.to_json()
    assert all(r.reward_reproduced and r.steps_recorded == r.steps_replayed == 1 for r in summary.rows)
