"""PARL sub-agents: the tools, the tree, critical steps and the shaping terms."""

from __future__ import annotations

import json
from typing import Any

from boxgym.rollout import (
    Completion,
    EpisodeResult,
    Outcome,
    ParlShaping,
    RolloutConfig,
    RolloutManager,
    SubagentConfig,
    TaskRef,
    critical_steps,
    parl_rewards,
    to_training,
)
from boxgym.rollout.subagents import ASSIGN_TASK, CREATE_SUBAGENT

from .testing_env import Script, factory


def _call(call_id: str, tool: str, /, **args: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": tool, "arguments": json.dumps(args)}}


class Orchestrator:
    """Root: creates two sub-agents, assigns both in one message, then calls the env's tool.
    Sub-agents: answer at once, except 'slow', which uses a (refused) tool twice first."""

    def __init__(self) -> None:
        self.seen_tool_results: list[dict[str, Any]] = []

    async def __call__(self, ep: Any) -> Completion:
        if ep.task.env_id == "subagent":
            system = ep.messages[0]["content"]
            if system == "slow" and ep.turn < 2:
                return Completion({"role": "assistant", "content": None, "tool_calls": [_call("x", "noop")]})
            return Completion(
                {"role": "assistant", "content": f"done: {ep.messages[1]['content']}"},
                prompt_token_ids=(9,),
                completion_token_ids=(10,),
                logprobs=(-1.0,),
            )
        turn = ep.turn
        if turn == 0:
            calls = [_call("a", CREATE_SUBAGENT, name="fast", system_prompt="fast"),
                     _call("b", CREATE_SUBAGENT, name="slow", system_prompt="slow")]
        elif turn == 1:
            calls = [_call("c", ASSIGN_TASK, agent="fast", prompt="p1"), _call("d", ASSIGN_TASK, agent="slow", prompt="p2"),
                     _call("e", ASSIGN_TASK, agent="nobody", prompt="p3")]
        else:
            self.seen_tool_results = [m for m in ep.messages if m.get("role") == "tool"]
            calls = [_call("f", "noop")]
        return Completion({"role": "assistant", "content": None, "tool_calls": calls},
                          prompt_token_ids=tuple(range(turn + 1)), completion_token_ids=(50 + turn,), logprobs=(-0.1,))


async def test_assign_task_runs_children_and_returns_their_final_messages() -> None:
    policy = Orchestrator()
    config = RolloutConfig(subagents=SubagentConfig(frozen=True))
    async with RolloutManager(factory(Script(steps=1)), policy, config=config) as manager:
        [root] = await manager.collect([TaskRef("t")])
    assert root.outcome is Outcome.TERMINATED and root.steps == 3
    assert root.subagents_created == 2 and root.tasks_assigned == 2 and root.tasks_finished == 2
    by_name = {c.subagent_name: c for c in root.children}
    assert by_name["fast"].steps == 1 and by_name["slow"].steps == 3
    assert all(c.parent_episode_id == root.episode_id and c.spawned_at_step == 1 and c.frozen for c in root.children)
    contents = {m["tool_call_id"]: m["content"] for m in policy.seen_tool_results}
    assert contents["c"] == "done: p1" and contents["d"] == "done: p2"
    assert contents["e"].startswith("error: no sub-agent named 'nobody'")
    assert contents["a"].startswith("created")
    # Stage 0: 1; stage 1: 1 + max(1, 3); stage 2: 1.
    assert critical_steps(root) == 6
    assert parl_rewards(root) == (1.0, 1.0)
    training = to_training(root)
    assert training.reward_parts["r_finish"] == 1.0
    assert all(child.sequences == () and child.frozen for child in training.children)  # frozen: not trained
    assert training.sequences and training.critical_steps == 6


async def test_subagent_tools_are_offered_only_to_roots() -> None:
    seen: dict[str, list[str]] = {}

    async def policy(ep: Any) -> Completion:
        seen[ep.task.env_id] = [t["function"]["name"] for t in ep.tools]
        if ep.task.env_id != "subagent" and ep.turn == 0:
            return Completion({"role": "assistant", "tool_calls": [_call("a", CREATE_SUBAGENT, name="w", system_prompt="s")]})
        if ep.task.env_id != "subagent" and ep.turn == 1:
            return Completion({"role": "assistant", "tool_calls": [_call("b", ASSIGN_TASK, agent="w", prompt="go")]})
        return Completion({"role": "assistant", "content": "ok"})

    config = RolloutConfig(subagents=SubagentConfig(max_depth=1))
    async with RolloutManager(factory(Script(steps=3)), policy, config=config) as manager:
        await manager.collect([TaskRef("t")])
    assert {CREATE_SUBAGENT, ASSIGN_TASK} <= set(seen["null"])
    assert seen["subagent"] == []


def _result(steps: int, children: tuple[EpisodeResult, ...] = (), at: int | None = None) -> EpisodeResult:
    return EpisodeResult(
        episode_id="e", task=TaskRef("t"), group_id="g", sample_index=0, outcome=Outcome.TERMINATED,
        reason="env_terminated", reward=1.0, reward_parts={}, steps=steps, completion_tokens=0, messages=(),
        completions=(), timings={}, spawned_at_step=at, children=children,
        subagents_created=len(children), tasks_assigned=len(children),
        tasks_finished=sum(c.outcome is Outcome.TERMINATED for c in children),
    )


def test_critical_steps_on_a_hand_built_tree() -> None:
    grandchild = _result(4, at=0)
    tree = _result(
        5,
        (
            _result(2, at=1),
            _result(7, at=1),  # the slowest of stage 1
            _result(1, (grandchild,), at=3),  # 1 + 4 = 5 critical steps
        ),
    )
    # 5 main steps + max(2, 7) at step 1 + 5 at step 3
    assert critical_steps(tree) == 5 + 7 + 5
    assert critical_steps(_result(3)) == 3


def test_parl_shaping_anneals_the_auxiliary_terms_away() -> None:
    result = _result(3, (_result(1, at=0),))
    shaping = ParlShaping(lambda_parallel=0.2, lambda_finish=0.4, anneal_steps=100)
    assert shaping.reward(result, 0) == 1.0 + 0.2 + 0.4
    assert abs(shaping.reward(result, 50) - (1.0 + 0.1 + 0.2)) < 1e-9  # type: ignore[operator]
    assert shaping.reward(result, 100) == 1.0
    from dataclasses import replace

    assert shaping.reward(replace(result, reward=None), 0) is None  # no verdict is never shaped into a score


class _Worker:
    """A custom sub-agent env that uses its sandbox: records which sandbox it got."""

    seen: list[Any]

    def __init__(self, sandbox: Any, seen: list[Any]) -> None:
        self.sandbox = sandbox
        seen.append(sandbox)

    async def areset(self, *, seed: int | None = None, options: Any = None):  # type: ignore[no-untyped-def]
        return [{"role": "system", "content": "w"}, {"role": "user", "content": "go"}], {"tools": []}

    async def astep(self, action: Any):  # type: ignore[no-untyped-def]
        import asyncio

        await asyncio.sleep(3600 if action.get("content") == "hang" else 0)
        return [], 0.0, True, False, {}

    async def aclose(self) -> None:
        pass


def _spawner(child_answer: str):  # type: ignore[no-untyped-def]
    async def policy(ep: Any) -> Completion:
        if ep.task.env_id == "subagent":
            return Completion({"role": "assistant", "content": child_answer})
        if ep.turn == 0:
            return Completion({"role": "assistant", "tool_calls": [_call("a", CREATE_SUBAGENT, name="w", system_prompt="s")]})
        if ep.turn == 1:
            return Completion({"role": "assistant", "tool_calls": [_call("b", ASSIGN_TASK, agent="w", prompt="go")]})
        return Completion({"role": "assistant", "content": "bye"})

    return policy


async def test_children_share_the_parents_sandbox_by_configuration() -> None:
    from boxgym.sandboxes import FakeProvider

    provider = FakeProvider()
    seen: list[Any] = []
    config = RolloutConfig(subagents=SubagentConfig(share_sandbox=True))
    async with RolloutManager(
        factory(Script(steps=3)), _spawner("ok"), config=config, provider=provider,
        subagent_env=lambda task, sandbox: _Worker(sandbox, seen),
    ) as manager:
        [root] = await manager.collect([TaskRef("t")])
    assert root.tasks_finished == 1
    assert len(provider.handed_out) == 1 and seen == provider.handed_out  # the child used the parent's
    assert provider.handed_out[0].closed  # closed once, by its owner (the parent)


async def test_cancelling_a_parent_cancels_its_children_and_releases_their_sandboxes() -> None:
    import asyncio

    from boxgym.sandboxes import FakeProvider

    provider = FakeProvider()
    seen: list[Any] = []
    config = RolloutConfig(subagents=SubagentConfig(share_sandbox=False))
    async with RolloutManager(
        factory(Script(steps=3)), _spawner("hang"), config=config, provider=provider,
        subagent_env=lambda task, sandbox: _Worker(sandbox, seen),
    ) as manager:
        collecting = asyncio.ensure_future(manager.collect([TaskRef("t")]))
        async with asyncio.timeout(5):
            while len(seen) < 1 or manager.metrics.running < 2:
                await asyncio.sleep(0.005)
        [root_id] = [ep.episode_id for ep in manager.live_episodes if ep.parent is None]
        manager.cancel(root_id)
        [root] = await asyncio.wait_for(collecting, 5)
    assert root.outcome is Outcome.CANCELLED
    assert len(provider.handed_out) == 2 and all(s.closed for s in provider.handed_out)


class _FlakyWorker(_Worker):
    """A sub-agent env whose first instance reports a broken sandbox on its first step."""

    made = 0

    def __init__(self, sandbox: Any, seen: list[Any]) -> None:
        super().__init__(sandbox, seen)
        type(self).made += 1
        self.first = type(self).made == 1

    async def astep(self, action: Any):  # type: ignore[no-untyped-def]
        if self.first:
            return [], 0.0, False, False, {"infra_failure": "sandbox broke"}
        return await super().astep(action)


async def test_a_child_that_hit_an_infrastructure_failure_is_retried_on_a_fresh_env() -> None:
    from boxgym.sandboxes import FakeProvider

    provider = FakeProvider()
    seen: list[Any] = []
    _FlakyWorker.made = 0
    async with RolloutManager(
        factory(Script(steps=3)), _spawner("ok"), provider=provider,
        config=RolloutConfig(subagents=SubagentConfig()),
        subagent_env=lambda task, sandbox: _FlakyWorker(sandbox, seen),
    ) as manager:
        [root] = await manager.collect([TaskRef("t")])
    [child] = root.children
    assert child.outcome is Outcome.TERMINATED and child.attempts == 2  # the retry finished the task
    assert root.tasks_finished == 1 and manager.metrics.episode_retries == 1
    assert len(seen) == 2 and seen[0] is not seen[1]  # each attempt on its own sandbox
    assert all(sandbox.closed for sandbox in provider.handed_out)
