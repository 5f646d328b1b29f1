"""Black-box agents (AgentPolicy): their own agent loop, the manager's lifetimes, budgets and tokens."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import openai
import pytest

from boxgym.errors import AgentSessionClosed
from boxgym.gateway import Gateway, GatewayConfig, MockEngine, MockEngineConfig, Reply, UpstreamConfig
from boxgym.rollout import (
    AgentPolicy,
    AgentSession,
    EpisodeBudget,
    StageDeadlines,
    IterationBudget,
    Outcome,
    RolloutConfig,
    RolloutManager,
    TaskRef,
    Verdict,
)

_TOOLS = [
    {"type": "function", "function": {"name": "noop", "parameters": {"type": "object", "properties": {}}}},
    {"type": "function", "function": {"name": "submit", "parameters": {"type": "object", "properties": {}}}},
]


class ToolEnv:
    """Answers each tool call with a tool message naming it; ``submit`` terminates the episode.
    ``hang`` makes every step wait forever (to cancel an episode while its env steps)."""

    def __init__(self, *, delay: float = 0.0, hang: bool = False) -> None:
        self.delay = delay
        self.hang = hang
        self.actions: list[dict[str, Any]] = []
        self.closed = False

    async def areset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        return [{"role": "system", "content": "use the tools"}, {"role": "user", "content": "do it"}], {"tools": _TOOLS}

    async def astep(self, action: dict[str, Any]):
        self.actions.append(action)
        await asyncio.sleep(self.delay)
        if self.hang:
            await asyncio.Event().wait()
        calls = action.get("tool_calls") or []
        names = [c["function"]["name"] for c in calls]
        observation = [{"role": "tool", "tool_call_id": c["id"], "content": f"ran {c['function']['name']}"} for c in calls]
        return observation, 0.0, "submit" in names, False, {}

    async def aclose(self) -> None:
        self.closed = True


def tool_call(name: str, n: int) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [{"id": f"call{n}", "type": "function", "function": {"name": name, "arguments": "{}"}}]}


def envs(made: list[ToolEnv] | None = None, **kwargs: Any):
    def make(task: TaskRef, sandbox: Any) -> ToolEnv:
        env = ToolEnv(**kwargs)
        if made is not None:
            made.append(env)
        return env

    return make


async def settled() -> set[asyncio.Task[Any]]:
    """The tasks other than this one once cancelled ones have had a few loop rounds to unwind."""
    me = asyncio.current_task()
    for _ in range(20):
        others = {t for t in asyncio.all_tasks() if t is not me}
        if not others:
            break
        await asyncio.sleep(0)
    return others


# -- 1. the real openai client through the embedded gateway ------------------------------------


@pytest.mark.parametrize("with_gateway", [pytest.param(True, id="tokens-from-gateway"), pytest.param(False, id="no-gateway")])
async def test_an_openai_client_agent_runs_through_the_gateway_and_is_attributed(with_gateway: bool) -> None:
    seen: dict[str, list[str]] = {}

    async def agent(session: AgentSession) -> str | None:
        async with openai.AsyncOpenAI(base_url=session.base_url, api_key="unused", max_retries=0) as client:
            messages: list[Any] = list(session.messages)
            while True:
                response = await client.chat.completions.create(model="m", messages=messages, tools=session.tools)
                reply = response.choices[0].message
                if not reply.tool_calls:
                    return reply.content
                observation = await session.step(reply)
                seen.setdefault(session.episode_id, []).extend(m["content"] for m in observation)
                messages += [reply.model_dump(exclude_none=True), *observation]

    made: list[ToolEnv] = []
    async with MockEngine(MockEngineConfig()) as engine:
        config = GatewayConfig(upstream=UpstreamConfig(engine.url, engine="vllm"))
        async with Gateway(config) as gateway, AgentPolicy(agent, gateway=gateway if with_gateway else None) as policy:

            def script(episode: Any) -> None:
                engine.script(episode.episode_id, [Reply.call("noop"), Reply.call("noop"), Reply.say("all done")])

            async with RolloutManager(envs(made), policy, gateway=gateway, on_episode_start=script) as manager:
                manager.set_weight_version("w7")
                results = await manager.collect([TaskRef(f"t{i}") for i in range(3)])

            assert len(results) == 3
            for result in results:
                assert (result.outcome, result.reason, result.error) == (Outcome.TERMINATED, "agent_done", None)
                assert result.steps == 3  # two actions and the final answer
                assert result.final_message == {"role": "assistant", "content": "all done"}
                assert seen[result.episode_id] == ["ran noop", "ran noop"]  # each step returned the env's observation
                records = gateway.records(result.episode_id)
                assert len(records) == 3 and all(r.episode_id == result.episode_id and r.ok for r in records)
                names = [c.message.get("tool_calls", [{}])[0].get("function", {}).get("name") for c in result.completions[:2]]
                assert names == ["noop", "noop"]
                if with_gateway:
                    assert [c.call_id for c in result.completions] == [r.call_id for r in records]
                    assert [c.completion_token_ids for c in result.completions] == [r.completion_token_ids for r in records]
                    assert [c.prompt_token_ids for c in result.completions] == [r.prompt_token_ids for r in records]
                    assert all(c.completion_token_ids and c.logprobs for c in result.completions)
                    assert result.completion_tokens == sum(len(r.completion_token_ids or ()) for r in records)
                else:
                    assert all(c.completion_token_ids is None and c.call_id is None for c in result.completions)
                assert all(c.weight_version == "w7" for c in result.completions)
            assert all(len(env.actions) == 2 and env.closed for env in made)
            assert policy.live_sessions == 0
    assert not await settled()


# -- 2. an agent that raises -------------------------------------------------------------------


async def test_an_agent_that_raises_fails_only_its_own_episode() -> None:
    async def agent(session: AgentSession) -> str:
        await session.step(tool_call("noop", 0))
        if session.task.task_id == "bad":
            raise ValueError("agent bug")
        await session.step(tool_call("noop", 1))
        return "fine"

    async def judge(episode: Any) -> Verdict:
        return Verdict(1.0 if episode.messages[-1]["content"] == "fine" else 0.0)

    async with AgentPolicy(agent) as policy:
        async with RolloutManager(envs(), policy, judge=judge) as manager:
            results = {r.task.task_id: r for r in await manager.collect([TaskRef("ok1"), TaskRef("bad"), TaskRef("ok2")])}
        assert results["bad"].reason == "error" and results["bad"].reward is None
        assert "ValueError: agent bug" in (results["bad"].error or "")
        assert results["bad"].steps == 1
        for name in ("ok1", "ok2"):
            assert (results[name].reason, results[name].steps, results[name].reward) == ("agent_done", 3, 1.0)
        assert policy.live_sessions == 0
        assert not await settled()


# -- 3. the env ends the episode first ---------------------------------------------------------


async def test_when_the_env_terminates_first_the_agent_is_cancelled_in_its_pending_step() -> None:
    ended: list[tuple[str | None, bool, bool, str]] = []

    async def agent(session: AgentSession) -> str:
        await session.step(tool_call("noop", 0))
        try:
            await session.step(tool_call("submit", 1))  # terminates: never answered
        except asyncio.CancelledError:
            try:
                await session.step("again")
            except AgentSessionClosed as exc:
                ended.append((session.reason, session.done, session.terminated, str(exc)))
            raise
        raise AssertionError("the step that ended the episode returned")

    async with AgentPolicy(agent) as policy:
        async with RolloutManager(envs(), policy) as manager:
            results = await manager.collect([TaskRef(f"t{i}") for i in range(4)])
        assert [(r.outcome, r.reason, r.steps) for r in results] == [(Outcome.TERMINATED, "env_terminated", 2)] * 4
        assert policy.live_sessions == 0
        assert not await settled()  # before the policy is closed: the episodes' ends ended their agents
        assert policy.agent_tasks == 0
        assert len(ended) == 4
        assert all(reason == "env_terminated" and done and terminated and "is over" in why for reason, done, terminated, why in ended)


# -- 4. budgets, deadlines and cancellation ----------------------------------------------------


async def test_max_turns_truncates_and_ends_the_agent() -> None:
    cancelled: list[str] = []

    async def agent(session: AgentSession) -> str:
        n = 0
        try:
            while True:
                await session.step(tool_call("noop", n))
                n += 1
        except asyncio.CancelledError:
            cancelled.append(session.episode_id)
            raise

    async with AgentPolicy(agent) as policy:
        config = RolloutConfig(budget=EpisodeBudget(max_turns=3))
        async with RolloutManager(envs(), policy, config=config) as manager:
            results = await manager.collect([TaskRef("a"), TaskRef("b")])
        assert [(r.outcome, r.reason, r.steps) for r in results] == [(Outcome.TRUNCATED, "max_turns", 3)] * 2
        assert policy.live_sessions == 0
        assert not await settled()
        assert sorted(cancelled) == sorted(r.episode_id for r in results)


@pytest.mark.parametrize(
    "where",
    [pytest.param("agent_thinking", id="cancel-during-agent-call"), pytest.param("env_stepping", id="cancel-during-env-step")],
)
async def test_manager_cancel_ends_the_agent(where: str) -> None:
    waiting = asyncio.Event()

    async def agent(session: AgentSession) -> str:
        await session.step(tool_call("noop", 0))
        if where == "agent_thinking":
            waiting.set()
            await asyncio.Event().wait()  # a model call that never returns
        return "unreachable"

    class HangingSecondStep(ToolEnv):
        async def astep(self, action: dict[str, Any]):
            if self.actions:
                self.hang = True
                waiting.set()
            return await super().astep(action)

    factory = envs() if where == "agent_thinking" else (lambda task, sandbox: HangingSecondStep())
    if where == "env_stepping":

        async def agent(session: AgentSession) -> str:  # noqa: F811 - this case's agent steps twice
            await session.step(tool_call("noop", 0))
            await session.step(tool_call("noop", 1))
            return "unreachable"

    async with AgentPolicy(agent) as policy:
        async with RolloutManager(factory, policy, name="m") as manager:
            run = asyncio.create_task(manager.collect([TaskRef("t")]))
            await asyncio.wait_for(waiting.wait(), 5)
            assert policy.live_sessions == 1
            assert manager.cancel("m-0")
            [result] = await asyncio.wait_for(run, 5)
        assert (result.outcome, result.reason) == (Outcome.CANCELLED, "cancelled")
        assert policy.live_sessions == 0
        assert not await settled()


async def test_a_torn_down_run_leaves_no_agent_running() -> None:
    thinking: list[str] = []

    async def agent(session: AgentSession) -> str:
        await session.step(tool_call("noop", 0))
        thinking.append(session.episode_id)
        await asyncio.Event().wait()  # a model call in flight when the run is torn down (Ctrl-C)
        return "unreachable"

    async with AgentPolicy(agent) as policy:
        async with RolloutManager(envs(), policy) as manager:
            run = asyncio.create_task(manager.collect([TaskRef(str(i)) for i in range(20)]))
            while len(thinking) < 20:
                await asyncio.sleep(0.001)
            run.cancel()
            with pytest.raises(asyncio.CancelledError):
                await run
        assert policy.live_sessions == 0
        assert not await settled()  # before the policy is closed


async def test_an_episode_deadline_ends_a_slow_agent() -> None:
    async def agent(session: AgentSession) -> str:
        await session.step(tool_call("noop", 0))
        await asyncio.sleep(3600)  # thinks forever
        return "unreachable"

    async with AgentPolicy(agent) as policy:
        config = RolloutConfig(deadlines=StageDeadlines(episode=0.2, tick=0.02))
        async with RolloutManager(envs(), policy, config=config) as manager:
            [result] = await asyncio.wait_for(manager.collect([TaskRef("t")]), 5)
        assert (result.outcome, result.reason) == (Outcome.TRUNCATED, "deadline")
        assert policy.live_sessions == 0
        assert not await settled()


# -- 5. many episodes --------------------------------------------------------------------------


async def test_many_concurrent_episodes_leave_nothing_behind() -> None:
    async def agent(session: AgentSession) -> str:
        n = int(session.task.task_id)
        for i in range(3):
            observation = await session.step(tool_call("submit" if n % 2 and i == 2 else "noop", i))
            assert observation == [{"role": "tool", "tool_call_id": f"call{i}", "content": "ran noop"}]
        return f"done {n}"

    async with AgentPolicy(agent) as policy:
        async with RolloutManager(envs(delay=0.001), policy) as manager:
            results = await manager.collect([TaskRef(str(i)) for i in range(200)])
        assert len(results) == 200
        for result in results:
            n = int(result.task.task_id)
            if n % 2:
                assert (result.reason, result.steps) == ("env_terminated", 3)
            else:
                assert (result.reason, result.steps, result.final_message["content"]) == ("agent_done", 4, f"done {n}")
        assert manager.metrics.running == 0
        assert policy.live_sessions == 0 and not policy._sessions
        assert not await settled()
        assert policy.agent_tasks == 0


# -- lifetimes across pauses, retries and close -------------------------------------------------


async def test_a_paused_episode_keeps_its_agent_and_aclose_ends_it() -> None:
    steps: list[list[dict[str, Any]]] = []

    async def agent(session: AgentSession) -> str:
        if session.task.task_id == "quick":
            return "quick"  # its result spends the iteration's budget: the other episode pauses
        for i in range(4):
            steps.append(await session.step(tool_call("noop", i)))
        return "resumed and done"

    policy = AgentPolicy(agent)
    budget = IterationBudget(max_episodes=1)
    async with RolloutManager(envs(delay=0.01), policy, name="m") as manager:
        [quick] = await manager.collect([TaskRef("quick"), TaskRef("slow")], budget=budget)
        assert quick.reason == "agent_done" and manager.paused == ("m-1",)
        assert policy.live_sessions == 1  # the agent waits in its step across the pause
        [result] = await manager.collect()
    assert (result.reason, result.steps) == ("agent_done", 5)
    assert len(steps) == 4 and all(len(obs) == 1 for obs in steps)

    # A paused episode that is never resumed keeps its agent until the policy closes.
    async with RolloutManager(envs(delay=0.01), policy, name="n") as manager:
        await manager.collect([TaskRef("quick"), TaskRef("slow")], budget=budget)
        assert manager.paused == ("n-1",)
    assert policy.agent_tasks == 1
    await policy.aclose()
    await policy.aclose()  # idempotent
    assert policy.live_sessions == 0 and policy.agent_tasks == 0
    assert not await settled()
    with pytest.raises(AgentSessionClosed):
        await policy(_Stub())  # type: ignore[arg-type]


class _Stub:
    episode_id = "x"
    task = TaskRef("x")
    messages: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] = []
    base_url = None
    turn = 0
    weight_version = None


async def test_a_retried_episode_starts_a_new_agent_and_ends_the_old_one() -> None:
    started: list[str] = []
    ended: list[str] = []

    class BreaksOnce(ToolEnv):
        made = 0

        def __init__(self) -> None:
            super().__init__()
            BreaksOnce.made += 1
            self.first = BreaksOnce.made == 1

        async def astep(self, action: dict[str, Any]):
            if self.first:
                return [], 0.0, False, False, {"infra_failure": "sandbox gone"}
            return await super().astep(action)

    async def agent(session: AgentSession) -> str:
        started.append(session.episode_id)
        try:
            await session.step(tool_call("noop", 0))
            return "ok"
        except asyncio.CancelledError:
            ended.append(session.episode_id)
            raise

    async with AgentPolicy(agent) as policy:
        async with RolloutManager(lambda task, sandbox: BreaksOnce(), policy, name="m") as manager:
            [result] = await manager.collect([TaskRef("t")])
        assert (result.episode_id, result.reason, result.attempts) == ("m-0~retry1", "agent_done", 2)
        assert started == ["m-0", "m-0~retry1"] and ended == ["m-0"]
        assert policy.live_sessions == 0
        assert not await settled()


async def test_step_arguments_and_return_values_are_checked() -> None:
    async def agent(session: AgentSession) -> Any:
        observation = await session.step("just text")  # a plain string is an assistant message
        assert observation == []
        return {"not": "a string"}

    env = ToolEnv()
    async with AgentPolicy(agent) as policy:
        async with RolloutManager(lambda task, sandbox: env, policy) as manager:
            [result] = await manager.collect([TaskRef("t")])
    assert env.actions == [{"role": "assistant", "content": "just text"}]
    assert result.reason == "error" and "an agent returns str or None" in (result.error or "")
