"""boxgym/Desktop-v0 in Docker (the desktop image, its own shared pool): K2.5 references played by
the rollout manager score 1, and the screenshots are stored once each beside the records."""

from __future__ import annotations

import json

import pytest

from boxgym.envs import EnvFactory
from boxgym.envs.suites import desktop
from boxgym.rollout import Concurrency, Outcome, RolloutConfig, RolloutManager, TaskRef
from boxgym.rollout.types import Completion

pytestmark = [pytest.mark.docker, pytest.mark.display]


def first_task(kind: str, level: int):
    """The first task of ``kind`` at ``level`` among the default task set's seeds."""
    tasks = desktop.task_set()
    return next(task for seed in range(200) if (task := tasks.make(seed, level)).metadata["kind"] == kind)


class ReplayReference:
    """Answers each step with the next K2.5 reply of its task's reference."""

    def __init__(self) -> None:
        self.replies: dict[str, list[str]] = {}

    async def __call__(self, episode) -> Completion:
        if episode.episode_id not in self.replies:
            self.replies[episode.episode_id] = list(desktop.k25_reference(desktop.task_set().get(episode.task.task_id)))
        return Completion({"role": "assistant", "content": self.replies[episode.episode_id].pop(0)})


async def test_k25_references_score_1_in_docker_through_the_rollout_manager(tmp_path):
    tasks = [TaskRef(first_task(kind, level).id, "boxgym/Desktop-v0") for kind, level in [("form", 3), ("menu", 2), ("drag", 1)]]
    factory = EnvFactory()
    try:
        config = RolloutConfig(concurrency=Concurrency(episodes=2))
        async with RolloutManager(factory, ReplayReference(), config=config, run_dir=tmp_path) as manager:
            results = await manager.collect(tasks)
        assert list(factory._pools) == [("desktop", 2, ())]  # the id's own image, not the factory's slim
    finally:
        await factory.aclose()
    for result in results:
        assert result.outcome is Outcome.TERMINATED and result.reward == 1.0, (result.task.task_id, result.error)
    records = [json.loads(line) for line in (tmp_path / "trajectories.jsonl").read_text().splitlines()]
    urls = [part["image_url"]["url"] for record in records for message in record.get("observation") or []
            if isinstance(message.get("content"), list) for part in message["content"] if part.get("type") == "image_url"]  # fmt: skip
    assert urls and all(url.startswith("boxgym-image:images/") for url in urls)
    assert len(list((tmp_path / "images").glob("*.png"))) == len(set(urls))
