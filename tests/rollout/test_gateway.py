"""The manager with the embedded gateway and its scripted engine: per-episode attribution and tokens."""

from __future__ import annotations

from typing import Any

from boxgym.gateway import Gateway, GatewayConfig, MockEngine, MockEngineConfig, Reply, UpstreamConfig
from boxgym.rollout import ChatPolicy, Outcome, RolloutManager, TaskRef, to_training

from .testing_env import Script, factory


async def test_each_episode_is_recorded_under_its_own_base_url_with_engine_tokens() -> None:
    async with MockEngine(MockEngineConfig()) as engine:
        config = GatewayConfig(upstream=UpstreamConfig(engine.url, engine="vllm"))
        async with Gateway(config) as gateway, ChatPolicy() as policy:

            def script(episode: Any) -> None:
                engine.script(episode.episode_id, [Reply.call("noop"), Reply.call("noop"), Reply.say("done")])

            async with RolloutManager(
                factory(Script(steps=3)), policy, gateway=gateway, on_episode_start=script
            ) as manager:
                manager.set_weight_version("w1")
                results = await manager.collect([TaskRef(f"t{i}") for i in range(4)])
            for result in results:
                assert result.outcome is Outcome.TERMINATED and result.steps == 3
                records = gateway.records(result.episode_id)
                assert len(records) == 3
                assert [r.completion_token_ids for r in records] == [c.completion_token_ids for c in result.completions]
                assert all(r.weight_version == "w1" for r in records)
                assert result.final_message is not None and result.final_message["content"] == "done"
                [sequence] = to_training(result).sequences  # each prompt extends the last: one sequence
                sampled = tuple(t for t, m in zip(sequence.token_ids, sequence.loss_mask) if m)
                assert sampled == sum((r.completion_token_ids for r in records), ())
