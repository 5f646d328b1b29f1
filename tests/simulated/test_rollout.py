"""Simulated-v0 under the rollout manager: the policy through the embedded gateway, the world model
and the user through the same gateway under their own episode ids; real tools in Docker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from boxgym.envs import EnvFactory
from boxgym.gateway import Gateway, GatewayConfig, MockEngine, MockEngineConfig, Reply, StoreConfig, UpstreamConfig
from boxgym.modelcalls import ModelEndpoint
from boxgym.rollout import ChatPolicy, Outcome, RolloutManager, TaskRef, to_training
from boxgym.sandboxes import FakeProvider
from boxgym.simulated import reference_replies
from boxgym.trajectories import read_episodes

from .play import TASKS

ENV = "boxgym/Simulated-v0"


def policy_script(task_id: str) -> list[Reply]:
    return [Reply.call(call.name, **call.arguments) for call in TASKS.get(task_id).reference]


async def roll(task_ids: list[str], tmp_path: Path, **factory: Any):
    async with MockEngine(MockEngineConfig()) as engine:
        store = StoreConfig(str(tmp_path / "gateway.jsonl"))
        config = GatewayConfig(upstream=UpstreamConfig(engine.url, engine="vllm"), store=store)
        async with Gateway(config) as gateway, ChatPolicy() as policy:

            def script(episode: Any) -> None:
                task = TASKS.get(episode.task.task_id)
                replies = reference_replies(task)
                engine.script(episode.episode_id, policy_script(task.id))
                engine.script(f"{episode.episode_id}.world", [Reply.say(text) for text in replies["world"]])
                engine.script(f"{episode.episode_id}.user", [Reply.say(text) for text in replies["user"]])
                engine.script(f"{episode.episode_id}.grm", [Reply.say("SCORE: 10")])

            routed = ModelEndpoint(model="world", gateway=gateway)
            envs = EnvFactory(default_env_id=ENV, world=routed, grader=routed, **factory)
            try:
                async with RolloutManager(
                    envs, policy, gateway=gateway, run_dir=tmp_path, on_episode_start=script
                ) as manager:
                    results = await manager.collect([TaskRef(task_id, ENV) for task_id in task_ids])
            finally:
                await envs.aclose()
            return results, {r.episode_id: (gateway.records(r.episode_id), gateway.records(f"{r.episode_id}.world"),
                                             gateway.records(f"{r.episode_id}.user")) for r in results}  # fmt: skip


async def test_every_example_rolls_out_with_the_simulators_recorded_beside_the_policy(tmp_path: Path):
    task_ids = [task.id for task in TASKS if not any(t.real for t in task.oracle.world.tools)]
    results, records = await roll(task_ids, tmp_path, provider=FakeProvider())
    assert len(results) == len(task_ids)
    episodes = read_episodes(tmp_path)
    for result in results:
        task = TASKS.get(result.task.task_id)
        assert result.outcome is Outcome.TERMINATED and result.reward == 1.0, (result.task.task_id, result.error)
        assert result.reason.value == ("user_ended" if task.oracle.user else "submitted")
        policy, world, user = records[result.episode_id]
        replies = reference_replies(task)
        assert len(policy) == len(task.reference) and len(world) == len(replies["world"])
        assert len(user) == len(replies["user"])
        # the trainer sees the policy's tokens only
        [sequence] = to_training(result).sequences
        assert sequence.call_ids == tuple(r.call_id for r in policy)
        steps = [r for r in episodes[result.episode_id] if r.kind == "step"]
        world_ids = [e["world_calls"][0] for s in steps for e in s.events if e.get("simulated")]
        assert world_ids == [r.call_id for r in world]  # each simulated call's event names its record


@pytest.mark.docker
async def test_real_and_simulated_tools_in_one_episode_on_docker(tmp_path: Path):
    results, records = await roll(["fileserver/upload-report"], tmp_path, pool_size=1)
    [result] = results
    assert result.reward == 1.0, result.error
    assert result.messages[3]["content"] == "# March\nRevenue up 4%.\n"  # read_file, in the container
    told = json.dumps(records[result.episode_id][1][0].request["messages"][-1])
    assert "Revenue up 4%" in told and "ran real tools" in told
