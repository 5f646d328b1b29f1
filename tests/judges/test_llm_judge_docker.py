"""The LLM judge inside a real env on Docker: it grades the real transcript, and its failure is the infrastructure's."""

from __future__ import annotations

import json
import os

import pytest

from boxgym.envs import BoxEnv, StaticTaskSet, Task
from boxgym.gateway import MockEngine, MockEngineConfig, Reply
from boxgym.judges import AnswerJudge, ExpectedAnswer, Gate, JudgeEndpoint, LLMJudge, builtin_rubrics
from boxgym.sandboxes import SandboxPool, SandboxSpec
from boxgym.toolsets import ShellToolset

pytestmark = pytest.mark.docker

IMAGE = os.environ.get("BOXGYM_TEST_IMAGE", "slim")
TASK = Task("q", "What number is in hint.txt, times two?", ExpectedAnswer("42", "numeric"), files={"hint.txt": "21\n"})


def call(name, **arguments):
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


async def play(engine: MockEngine, judge_reply: str) -> tuple[float, dict]:
    endpoint = JudgeEndpoint(model="judge", base_url=f"{engine.url}/v1")
    grm = LLMJudge(endpoint, builtin_rubrics("helpfulness")[:1], retries=1)
    async with SandboxPool(SandboxSpec(image=IMAGE), size=1) as pool:
        env = BoxEnv(
            provider=pool,
            tasks=StaticTaskSet([TASK]),
            judge=Gate(AnswerJudge(), grm),
            toolset=ShellToolset(),
            system_prompt="s",
        )
        try:
            _, info = await env.areset(options={"task_id": "q"})
            # The env gives its judges the id on its step records: the judge's calls go under "<id>.grm".
            engine.script(f"{info['episode_id']}.grm", [Reply.say(judge_reply)] * 2)
            await env.astep(call("bash", command="echo $(( $(cat hint.txt) * 2 ))"))
            _, reward, terminated, _, info = await env.astep(call("submit", answer="42"))
        finally:
            await env.aclose()
    assert terminated
    return reward, info


async def test_the_judge_grades_the_real_transcript():
    async with MockEngine(MockEngineConfig()) as engine:
        reward, info = await play(engine, "It read the file and doubled the number.\nSCORE: 9")
        shown = engine.stats.last_body["messages"][1]["content"]
    assert reward == pytest.approx(0.9) and not info["infra_failure"]
    assert info["verdict"]["parts"] == {"gate": 1.0, "then": pytest.approx(0.9)}
    assert "[tool] exit code: 0\n[stdout]\n42" in shown  # the command's real output, quoted
    assert "The agent's final answer:\n<untrusted>\n42\n</untrusted>" in shown


async def test_a_judge_model_that_never_scores_makes_an_infrastructure_failure_not_a_zero():
    async with MockEngine(MockEngineConfig()) as engine:
        reward, info = await play(engine, "Nice work overall.")
    assert info["infra_failure"] and "no score from the judge model" in info["error"]
    assert info["verdict"] is None  # the env reports no verdict, so a trainer drops the episode
