"""End to end on real envs (Docker): the scripted engine replays each task's reference solution
through the embedded gateway and the chat policy; every env family must score it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from boxgym.rollout import ChatPolicy, Concurrency, Outcome, RolloutConfig, RolloutManager, TaskRef, to_training

pytestmark = pytest.mark.docker

FAMILIES = [("boxgym/Code-v0", "code"), ("boxgym/Shell-v0", "shell"), ("boxgym/SQL-v0", "sql")]


async def test_reference_solutions_score_through_gateway_and_chat_policy() -> None:
    from boxgym.envs import EnvFactory, reference_messages
    from boxgym.envs.suites import code, shell, sql
    from boxgym.gateway import Gateway, GatewayConfig, MockEngine, MockEngineConfig, Reply, UpstreamConfig

    suites = {"code": code.task_set(), "shell": shell.task_set(), "sql": sql.task_set()}
    tasks = [
        TaskRef(f"{family}/d0/s{seed}", env_id)
        for env_id, family in FAMILIES
        for seed in (1, 2)
    ]

    async with MockEngine(MockEngineConfig()) as engine:
        config = GatewayConfig(upstream=UpstreamConfig(engine.url, engine="vllm"))
        factory = EnvFactory()
        try:
            async with Gateway(config) as gateway, ChatPolicy() as policy:

                def script(episode: Any) -> None:
                    family = episode.task.task_id.split("/")[0]
                    replies = []
                    for message in reference_messages(suites[family].get(episode.task.task_id)):
                        for call in message["tool_calls"]:
                            fn = call["function"]
                            replies.append(Reply.call(fn["name"], **json.loads(fn["arguments"] or "{}")))
                    engine.script(episode.episode_id, [*replies, Reply.say("done")])

                rollout = RolloutConfig(concurrency=Concurrency(episodes=6))
                async with RolloutManager(
                    factory, policy, config=rollout, gateway=gateway, on_episode_start=script
                ) as manager:
                    results = await manager.collect(tasks)
        finally:
            await factory.aclose()
    assert len(results) == len(tasks)
    for result in results:
        assert result.outcome is Outcome.TERMINATED, (result.task.task_id, result.reason, result.error)
        assert result.reward == 1.0, (result.task.task_id, result.reward, result.messages[-2:])
        training = to_training(result)
        assert training.usable and not training.missing_tokens


async def test_a_manager_sandbox_stays_open_for_the_judge_and_is_closed_after() -> None:
    # The manager owns the sandboxes of its provider: the env (BoxEnv, through EnvFactory) must not
    # close one when its episode ends, so a judge (an agent judge reading files) can still use it.
    import os

    from boxgym.envs import EnvFactory, reference_messages
    from boxgym.envs.suites import shell
    from boxgym.rollout import CallablePolicy, Verdict
    from boxgym.sandboxes import SandboxPool, SandboxSpec

    task_id = "shell/d0/s1"
    script = iter([*reference_messages(shell.task_set().get(task_id)), {"role": "assistant", "content": "done"}])
    seen: list[Any] = []

    async def judge(ep: Any) -> Verdict:
        seen.append(ep.sandbox)
        result = await ep.sandbox.exec("echo open")  # raises if the env closed it
        return Verdict(ep.reward, parts={"sandbox_open": float(result.stdout.strip() == "open")})

    policy = CallablePolicy(lambda messages, tools: next(script))
    factory = EnvFactory()
    try:
        async with SandboxPool(SandboxSpec(image=os.environ.get("BOXGYM_TEST_IMAGE", "slim")), size=1) as pool:
            async with RolloutManager(factory, policy, provider=pool, judge=judge) as manager:
                [result] = await manager.collect([TaskRef(task_id, "boxgym/Shell-v0")])
    finally:
        await factory.aclose()
    assert result.outcome is Outcome.TERMINATED and result.reward == 1.0, (result.reason, result.error)
    assert result.reward_parts["sandbox_open"] == 1.0
    assert seen[0].closed  # released by its owner, the manager, after judging


async def test_an_agent_judge_inspects_the_real_sandbox_of_the_episode_it_judges() -> None:
    import os

    from boxgym.envs import EnvFactory, reference_messages
    from boxgym.envs.suites import shell
    from boxgym.rollout import AgentJudge, CallablePolicy
    from boxgym.sandboxes import SandboxPool, SandboxSpec

    task_id = "shell/d0/s1"
    script = iter([*reference_messages(shell.task_set().get(task_id)), {"role": "assistant", "content": "done"}])

    def call(name: str, **args: Any) -> dict[str, Any]:
        return {"role": "assistant", "content": None,
                "tool_calls": [{"id": name, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}

    def judge_agent(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        results = [m["content"] for m in messages if m.get("role") == "tool"]
        if not results:  # first look inside the sandbox the agent worked in
            return call("run", command="echo marker-$((6*7)) && id -u")
        return call("submit_verdict", score=1.0 if "marker-42" in results[-1] else 0.0, reason=results[-1][:200])

    factory = EnvFactory()
    try:
        async with SandboxPool(SandboxSpec(image=os.environ.get("BOXGYM_TEST_IMAGE", "slim")), size=1) as pool:
            judge = AgentJudge(CallablePolicy(judge_agent))
            async with RolloutManager(factory, CallablePolicy(lambda m, t: next(script)), provider=pool, judge=judge) as manager:
                [result] = await manager.collect([TaskRef(task_id, "boxgym/Shell-v0")])
    finally:
        await factory.aclose()
    assert result.outcome is Outcome.TERMINATED, (result.reason, result.error)
    assert result.reward == 1.0 and result.reward_parts["agent_judge"] == 1.0
    [judge_episode] = result.children
    assert judge_episode.subagent_name == "judge" and judge_episode.frozen and judge_episode.steps == 2
