"""Composed toolsets: the tools of several as one, each call to its owner."""

from __future__ import annotations

from typing import Any

import pytest

from boxgym.sandboxes import FakeSandbox
from boxgym.toolsets import ShellToolset, SubmitToolset, ToolCall, ToolResult, compose, function_schema


class Echo:
    def schemas(self) -> list[dict[str, Any]]:
        return [function_schema("echo", "say it back", {"text": {"type": "string"}}, ["text"])]

    async def run(self, call, sandbox, *, timeout=None) -> ToolResult:
        return ToolResult(call.id, call.name, f"echo: {call.arguments['text']} (timeout {timeout})")


async def test_each_call_goes_to_the_toolset_that_owns_its_name():
    tools = compose(Echo(), SubmitToolset())
    assert [s["function"]["name"] for s in tools.schemas()] == ["echo", "submit"]
    async with FakeSandbox() as sandbox:
        echoed = await tools.run(ToolCall("1", "echo", {"text": "hi"}), sandbox, timeout=5.0)
        submitted = await tools.run(ToolCall("2", "submit", {"answer": "42"}), sandbox)
        unknown = await tools.run(ToolCall("3", "bash", {"command": "ls"}), sandbox)
        bad = await tools.run(ToolCall("4", "submit", {"answer": 42}), sandbox)
    assert echoed.content == "echo: hi (timeout 5.0)" and echoed.ok
    assert submitted.submitted and submitted.submission == "42"
    assert not unknown.ok and "unknown tool 'bash'; the tools are: echo, submit" in unknown.content
    assert not bad.ok and not bad.submitted and "answer must be a string" in bad.content


def test_a_tool_name_in_two_toolsets_is_refused():
    with pytest.raises(ValueError, match="'submit' is in both ShellToolset and SubmitToolset"):
        compose(ShellToolset(), SubmitToolset())


async def test_a_composed_toolset_runs_in_an_env():
    from boxgym.envs import BoxEnv, StaticTaskSet, Task
    from boxgym.judges import ExpectedAnswer, OracleJudge
    from boxgym.sandboxes import FakeProvider

    env = BoxEnv(provider=FakeProvider(), tasks=StaticTaskSet([Task("q", "say 42", ExpectedAnswer("42"))]),
                 judge=OracleJudge(), toolset=compose(Echo(), SubmitToolset()), system_prompt="s")
    _, info = await env.areset()
    assert [t["function"]["name"] for t in info["tools"]] == ["echo", "submit"]
    calls = [{"id": "a", "type": "function", "function": {"name": "echo", "arguments": '{"text": "42"}'}},
             {"id": "b", "type": "function", "function": {"name": "submit", "arguments": '{"answer": "42"}'}}]
    obs, reward, terminated, *_ = await env.astep({"role": "assistant", "content": None, "tool_calls": calls})
    assert obs[0]["content"].startswith("echo: 42") and (reward, terminated) == (1.0, True)
    await env.aclose()
