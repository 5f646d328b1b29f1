"""One episode, two witnesses: the manager's completions and the gateway's records give the same
training sequences, each completion names its gateway record, and every sampled token carries
its loss once, also when the history was rewritten (REALIGN, FORK)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from boxgym.gateway import (
    Gateway,
    GatewayConfig,
    MockEngine,
    MockEngineConfig,
    Prefix,
    Reply,
    UpstreamConfig,
    view_to_json,
)
from boxgym.rollout import ChatPolicy, Completion, Outcome, RolloutManager, TaskRef, to_training, training_to_json

from .testing_env import Script, factory

Rewrite = Callable[[list[dict[str, Any]], int], list[dict[str, Any]]]


@dataclass
class _Seen:
    """The episode as the policy is shown it, with the history rewritten by the agent framework."""

    episode_id: str
    task: TaskRef
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    base_url: str | None
    turn: int
    weight_version: str | None


class Rewriting:
    """A ChatPolicy behind an agent framework that rewrites the history it sends."""

    def __init__(self, inner: ChatPolicy, rewrite: Rewrite) -> None:
        self.inner, self.rewrite = inner, rewrite

    async def __call__(self, episode: Any) -> Completion:
        messages = self.rewrite([dict(m) for m in episode.messages], episode.turn)
        seen = _Seen(
            episode.episode_id, episode.task, messages, episode.tools, episode.base_url, episode.turn,
            episode.weight_version,
        )  # fmt: skip
        return await self.inner(seen)


def _as_sent(messages: list[dict[str, Any]], turn: int) -> list[dict[str, Any]]:
    return messages


def _strip_replies(messages: list[dict[str, Any]], turn: int) -> list[dict[str, Any]]:
    """Many frameworks strip the model's text before they put it back: the template re-renders
    the end of each reply differently from how it was sampled (REALIGN)."""
    for m in messages:
        if m["role"] == "assistant" and isinstance(m.get("content"), str):
            m["content"] = m["content"].strip()
    return messages


def _edit_task_on_turn_2(messages: list[dict[str, Any]], turn: int) -> list[dict[str, Any]]:
    """The framework rewrites the task statement from turn 2 on: the history forks there."""
    if turn >= 2:
        messages[1] = dict(messages[1], content=messages[1]["content"] + " (restated)")
    return messages


CASES = [
    pytest.param(_as_sent, [Reply.call("noop"), Reply.call("noop"), Reply.say("done")], {Prefix.ROOT}, id="clean"),
    pytest.param(
        _strip_replies,
        [Reply.say("Looking.  "), Reply.say("Still looking.  "), Reply.say("Done.  ")],
        {Prefix.ROOT, Prefix.REALIGN},
        id="realign",
    ),
    pytest.param(
        _edit_task_on_turn_2,
        [Reply.call("noop"), Reply.call("noop"), Reply.say("done")],
        {Prefix.ROOT, Prefix.FORK},
        id="fork",
    ),
]


@pytest.mark.parametrize(("rewrite", "replies", "starts"), CASES)
async def test_manager_and_gateway_build_the_same_training_sample(
    rewrite: Rewrite, replies: list[Reply], starts: set[Prefix]
) -> None:
    async with MockEngine(MockEngineConfig()) as engine:
        config = GatewayConfig(upstream=UpstreamConfig(engine.url, engine="vllm"))
        async with Gateway(config) as gateway, ChatPolicy() as chat:

            def script(episode: Any) -> None:
                engine.script(episode.episode_id, replies)

            policy = Rewriting(chat, rewrite)
            envs = factory(Script(steps=3))
            async with RolloutManager(envs, policy, gateway=gateway, on_episode_start=script) as manager:
                manager.set_weight_version("w1")
                results = await manager.collect([TaskRef(f"t{i}") for i in range(3)])
            for result in results:
                assert result.outcome is Outcome.TERMINATED and result.steps == 3
                records = gateway.records(result.episode_id)
                # the join key: each completion names the record of the call that produced it
                assert [c.call_id for c in result.completions] == [r.call_id for r in records]
                assert all(r.call_id for r in records) and len(records) == 3
                training = to_training(result)
                view = gateway.training_view(result.episode_id)
                assert training.sequences == view.sequences and view.skipped == ()
                assert training_to_json(training)["sequences"] == view_to_json(view)["sequences"]
                assert {s.start for s in training.sequences} == starts
                # every sampled token carries its loss exactly once across the branches
                sampled = sum(len(r.completion_token_ids) for r in records)
                assert sum(sum(s.loss_mask) for s in training.sequences) == sampled
                assert all(span[2] == "w1" for s in training.sequences for span in s.spans)
                if starts != {Prefix.ROOT}:
                    assert len(training.sequences) > 1
                    branch = training.sequences[1]
                    assert branch.parent == 0 and branch.fork_at and sum(branch.loss_mask[: branch.fork_at]) == 0
