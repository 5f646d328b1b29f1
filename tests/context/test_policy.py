"""ContextManagedPolicy under the rollout manager, through the embedded gateway: the threshold is
counted in the engine's tokens, the trajectory records each call's view, and rebuilding a call's
messages from the record gives exactly what the gateway recorded the model was sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from boxgym.context import ContextManagedPolicy, DiscardAll, GatewayTokens, HideToolResults, shown_messages
from boxgym.gateway import Gateway, GatewayConfig, MockEngine, MockEngineConfig, Prefix, UpstreamConfig
from boxgym.rollout import ChatPolicy, Completion, RolloutManager, TaskRef, to_training
from boxgym.trajectories import read_episodes

from .pages import INITIAL, PagesEnv, history_before, readings

THRESHOLD = 1500


async def roll(strategy, tmp_path: Path, *, chat: Any = None, tokens: Any = None):
    async with MockEngine(MockEngineConfig()) as engine:
        config = GatewayConfig(upstream=UpstreamConfig(engine.url, engine="vllm"))
        async with Gateway(config) as gateway, ChatPolicy() as policy:
            wrapped = ContextManagedPolicy(chat or policy, strategy, tokens=GatewayTokens(gateway) if tokens else None)
            async with RolloutManager(
                lambda task, sandbox: PagesEnv(),
                wrapped,
                gateway=gateway,
                run_dir=tmp_path,
                on_episode_start=lambda ep: engine.script(ep.episode_id, readings()),
            ) as manager:
                [result] = await manager.collect([TaskRef("book", "pages")])
            records = gateway.records(result.episode_id)
    steps = [r for r in read_episodes(tmp_path)[result.episode_id] if r.kind == "step"]
    return result, records, steps


def sizes(records) -> list[int]:
    return [len(r.prompt_token_ids) + len(r.completion_token_ids) for r in records]


@pytest.mark.parametrize("strategy", [HideToolResults(THRESHOLD), DiscardAll(THRESHOLD)], ids=["hide", "discard"])
async def test_each_call_saw_what_its_step_record_says(strategy, tmp_path: Path):
    result, records, steps = await roll(strategy, tmp_path)
    assert result.reward == 1.0 and len(records) == len(steps) == 8
    for index, (record, step) in enumerate(zip(records, steps)):
        view = step.info.get("context")
        sent = record.request["messages"]
        assert sent == shown_messages(history_before(list(result.messages), index), view), index
        assert step.call_id == record.call_id
    # the cut was set by the first call whose engine-counted context reached the threshold
    crossed = next(i for i, n in enumerate(sizes(records)) if n >= THRESHOLD)
    first = steps[crossed + 1].info["context"]
    assert (first["set_at"], first["tokens"], first["new"]) == (crossed, sizes(records)[crossed], True)
    assert all("context" not in s.info for s in steps[: crossed + 1])
    if strategy.name == "discard_all":
        assert records[crossed + 1].request["messages"] == INITIAL  # restarted from the task
    else:
        sent = records[crossed + 1].request["messages"]
        assert [m["content"] for m in sent if m["role"] == "assistant"] == [
            m["content"] for m in history_before(list(result.messages), crossed + 1) if m["role"] == "assistant"
        ]
        tools = [m["content"] for m in sent if m["role"] == "tool"]
        assert tools[:crossed] == [strategy.placeholder] * crossed and tools[crossed].startswith(f"page {crossed + 1}:")


async def test_the_history_is_rewritten_only_where_the_cut_moves_and_training_sees_each_branch(tmp_path: Path):
    result, records, steps = await roll(HideToolResults(THRESHOLD), tmp_path)
    new = [i for i, s in enumerate(steps) if s.info.get("context", {}).get("new")]
    forks = [i for i, r in enumerate(records) if r.prefix.kind is Prefix.FORK]
    assert new and forks == new  # a rewrite is a FORK in the gateway's records; elsewhere prompts extend
    assert all(records[i].prefix.kind is Prefix.CLEAN for i in range(1, len(records)) if i not in new)
    sequences = to_training(result).sequences
    assert len(sequences) == 1 + len(new)
    sampled = sum(sum(s.loss_mask) for s in sequences)
    assert sampled == sum(len(r.completion_token_ids) for r in records)  # every sampled token once
    assert min(sizes(records)[i] for i in new) < sizes(records)[new[0] - 1]  # hiding shrank the context


async def test_without_token_ids_the_count_comes_from_the_gateway_and_without_either_it_is_an_error(tmp_path: Path):
    class TextOnly:
        """A policy whose completions carry no token ids (a text-only client)."""

        def __init__(self, inner: ChatPolicy) -> None:
            self.inner = inner

        async def __call__(self, episode: Any) -> Completion:
            completion = await self.inner(episode)
            return Completion(completion.message, call_id=completion.call_id)

    async with ChatPolicy() as inner:
        text_only = TextOnly(inner)
        result, records, steps = await roll(HideToolResults(THRESHOLD), tmp_path / "a", chat=text_only, tokens=True)
        assert result.reward == 1.0 and any("context" in s.info for s in steps)
        result, _, _ = await roll(HideToolResults(THRESHOLD), tmp_path / "b", chat=text_only)
    assert result.reward is None and "context management counts the policy's own tokens" in result.error
