"""ContextWindow over a BoxEnv in your own loop: the observation is the context to send next, the
count comes from the completion or the gateway, and the step records say what each action saw."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from boxgym.context import ContextWindow, DiscardAll, GatewayTokens, HideToolResults, shown_messages
from boxgym.envs import BoxEnv, EpisodeLimits, StaticTaskSet, Task
from boxgym.gateway import Gateway, GatewayConfig, MockEngine, MockEngineConfig, Reply, UpstreamConfig
from boxgym.judges import ExpectedAnswer, OracleJudge
from boxgym.rollout import ChatPolicy, TaskRef
from boxgym.sandboxes import FakeProvider
from boxgym.toolsets import ShellToolset
from boxgym.trajectories import TrajectoryWriter, read_records

from .pages import history_before

TASK = Task("count", "Print the numbers, then submit how many lines there were.", ExpectedAnswer("6"))
# A discarded history restarts the scripted engine's replies (it answers by the number of assistant
# turns it is sent), so the episode runs to its turn limit rather than to a submit.
COMMANDS = [Reply.call("bash", command=f"seq 1 {n}00") for n in range(1, 7)]
THRESHOLD = 2600  # the first call is ~2,000 tokens (the tools' schemas), each round adds ~500


@dataclass
class View:
    """What a ChatPolicy reads of an episode, for a loop of our own."""

    episode_id: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    base_url: str
    turn: int = 0
    task: TaskRef = TaskRef("count")
    weight_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def box_env(tmp_path: Path) -> BoxEnv:
    return BoxEnv(
        provider=FakeProvider(),
        tasks=StaticTaskSet([TASK]),
        judge=OracleJudge(),
        toolset=ShellToolset(),
        system_prompt="Use bash.",
        writer=TrajectoryWriter(tmp_path),
        limits=EpisodeLimits(max_turns=len(COMMANDS)),
    )


@pytest.mark.parametrize("counted_by", ["completion", "gateway"])
@pytest.mark.parametrize("strategy", [HideToolResults(THRESHOLD), DiscardAll(THRESHOLD)], ids=["hide", "discard"])
async def test_the_loop_sends_the_managed_context_and_the_records_say_so(strategy, counted_by, tmp_path: Path):
    async with MockEngine(MockEngineConfig()) as engine:
        config = GatewayConfig(upstream=UpstreamConfig(engine.url, engine="vllm"))
        async with Gateway(config) as gateway, ChatPolicy() as policy:
            inner = box_env(tmp_path)
            env = ContextWindow(inner, strategy, tokens=GatewayTokens(gateway) if counted_by == "gateway" else None)
            messages, info = await env.areset(options={"task_id": "count", "episode_id": "ep"})
            engine.script("ep", COMMANDS)
            sent, contexts, initial = [], [], list(messages)
            for turn in range(len(COMMANDS)):
                view = View("ep", messages, info["tools"], gateway.base_url_for("ep"), turn)
                completion = await policy(view)
                sent.append(messages)
                action = completion if counted_by == "completion" else completion.message
                messages, reward, terminated, truncated, info = await env.astep(action)
                contexts.append(info.get("context"))
                if terminated or truncated:
                    break
            await inner.aclose()
            inner.writer.close()
            records = gateway.records("ep")
    assert truncated and info["end_reason"] == "max_turns" and len(records) == len(COMMANDS)
    assert [r.request["messages"] for r in records] == sent  # what the model was sent is the observation
    steps = [r for r in read_records(tmp_path) if r.kind == "step"]
    assert [s.info.get("context") for s in steps] == contexts  # recorded with each step, as returned
    full = initial + [m for step in steps for m in (step.action, *step.observation)]  # the run, as replay reads it
    for index, (step, was_sent) in enumerate(zip(steps, sent)):
        assert shown_messages(history_before(full, index), step.info.get("context")) == was_sent
    sizes = [len(r.prompt_token_ids) + len(r.completion_token_ids) for r in records]  # the engine's own counts
    crossed = next(i for i, n in enumerate(sizes) if n >= THRESHOLD)
    assert crossed == 2 and contexts[:3] == [None] * 3
    assert contexts[3]["set_at"] == 2 and contexts[3]["new"] and contexts[3]["from_step"] == strategy.cut_after(2)


async def test_an_action_with_no_count_is_refused_before_it_reaches_the_env(tmp_path: Path):
    inner = box_env(tmp_path)
    env = ContextWindow(inner, HideToolResults(100))
    await env.areset(options={"task_id": "count"})
    with pytest.raises(ValueError, match="counts the policy's own tokens"):
        await env.astep({"role": "assistant", "content": "", "tool_calls": []})
    assert inner._episode.turn == 0  # the env was not stepped
    await inner.aclose()
    inner.writer.close()
