"""BoxEnv's contract on the fake sandbox: observations, rewards, ends, failures, records."""

from __future__ import annotations

import dataclasses

import pytest
from gymnasium.error import ResetNeeded

from boxgym.envs import BoxEnv, EpisodeLimits, FixedDifficulty, StaticTaskSet, Task
from boxgym.envs.suites import code
from boxgym.errors import EngineUnavailable, JudgeError, SandboxBroken, TaskError
from boxgym.judges import ExpectedAnswer, HiddenTests, OracleJudge
from boxgym.sandboxes import FakeProvider, FakeSandbox
from boxgym.toolsets import ShellToolset, ToolCall
from boxgym.trajectories import EpisodeEnd, EpisodeStart, Outcome, StepRecord, TrajectoryWriter, read_records

QUESTION = Task(
    "q",
    "What is 6 * 7?",
    ExpectedAnswer("42", "numeric"),
    files={"hint.txt": "multiply"},
    metadata={"source": {"nested": [1]}},
)
ADD = Task(
    "add",
    "Write add(a, b) in solution.py.",
    HiddenTests(
        "import unittest\nfrom solution import add\nclass T(unittest.TestCase):\n"
        "    def test(self):\n        self.assertEqual(add(2, 3), 5)\n"
    ),
    reference=(
        ToolCall("r0", "write_file", {"path": "solution.py", "content": "def add(a, b):\n    return a + b\n"}),
        ToolCall("r1", "submit", {}),
    ),
)


def call(name, **arguments):
    import json

    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def make(provider=None, tasks=(QUESTION, ADD), **kwargs):
    return BoxEnv(
        provider=provider or FakeProvider(),
        tasks=StaticTaskSet(list(tasks)),
        judge=kwargs.pop("judge", OracleJudge()),
        toolset=ShellToolset(),
        system_prompt="You are tested.",
        **kwargs,
    )


async def test_reset_gives_system_and_user_messages_and_the_tools():
    env = make()
    obs, info = await env.areset(seed=0, options={"task_id": "q"})
    assert obs == [{"role": "system", "content": "You are tested."}, {"role": "user", "content": "What is 6 * 7?"}]
    assert obs in env.observation_space
    assert info["task_id"] == "q" and info["metadata"] == {"source": {"nested": [1]}}
    assert [t["function"]["name"] for t in info["tools"]][-1] == "submit"
    assert info["infra_failure"] is False and info["error"] is None
    assert set(info["timings"]) == {"acquire_s", "reset_s"}
    assert await env.provider.handed_out[0].read_file("hint.txt") == b"multiply"
    await env.aclose()


async def test_same_seed_and_options_give_the_same_task_and_first_observation():
    env = BoxEnv(
        provider=FakeProvider(),
        tasks=code.task_set(),
        judge=OracleJudge(),
        toolset=ShellToolset(),
        system_prompt="s",
        curriculum=FixedDifficulty(1),
    )
    first = [await env.areset(seed=11, options={"difficulty": 2}) for _ in range(2)]
    assert first[0][0] == first[1][0] and first[0][1]["task_id"] == first[1][1]["task_id"]
    other = {(await env.areset(seed=s))[1]["task_id"] for s in range(5)}
    assert len(other) == 5 and all(t.startswith("code/d1/") for t in other)
    await env.aclose()


async def test_unknown_reset_options_and_task_ids_are_refused():
    env = make()
    with pytest.raises(TaskError):
        await env.areset(options={"level": 1})
    with pytest.raises(TaskError):
        await env.areset(options={"task_id": "nope"})
    await env.aclose()


async def test_tool_calls_come_back_as_tool_messages_with_their_ids():
    env = make()
    await env.areset(options={"task_id": "q"})
    obs, reward, terminated, truncated, info = await env.astep(call("bash", command="cat hint.txt"))
    assert obs == [{"role": "tool", "tool_call_id": "call_1_0", "content": "exit code: 0\n[stdout]\nmultiply"}]
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["turn"] == 1 and info["end_reason"] is None and "tools_s" in info["timings"]
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "abc", "type": "function", "function": {"name": "list_dir", "arguments": "{}"}}],
    }
    obs, *_ = await env.astep(message)
    assert obs[0]["tool_call_id"] == "abc" and "hint.txt" in obs[0]["content"]
    await env.aclose()


@pytest.mark.parametrize(
    ("action", "says"),
    [
        pytest.param("The answer is 42.", "no tool call found", id="prose"),
        pytest.param("<tool_call>{broken</tool_call>", "not valid JSON", id="malformed"),
        pytest.param(call("teleport"), "unknown tool 'teleport'", id="unknown-tool"),
        pytest.param(call("bash", cmd="ls"), "unexpected argument(s) cmd", id="bad-arguments"),
        pytest.param(12345, "assistant text or an assistant message", id="not-text"),
    ],
)
async def test_bad_actions_become_observations(action, says):
    env = make()
    await env.areset(options={"task_id": "q"})
    obs, reward, terminated, truncated, info = await env.astep(action)
    assert says in obs[-1]["content"] and obs in env.observation_space
    assert (reward, terminated, truncated, info["infra_failure"]) == (0.0, False, False, False)
    await env.aclose()


@pytest.mark.parametrize(("answer", "reward"), [("42", 1.0), ("41", 0.0)])
async def test_submit_ends_the_episode_with_the_judges_reward(answer, reward):
    env = make()
    await env.areset(options={"task_id": "q"})
    obs, r, terminated, truncated, info = await env.astep(
        call("submit", answer=answer) + call("bash", command="touch x")
    )
    assert (r, terminated, truncated) == (reward, True, False)
    assert info["end_reason"] == "submitted" and info["verdict"]["reward"] == reward
    assert obs[1]["content"] == "not run: the episode ended at submit"  # answered, not run
    assert env.provider.handed_out[0].closed  # the sandbox went with the episode
    with pytest.raises(ResetNeeded):
        await env.astep(call("bash", command="ls"))
    await env.aclose()


async def test_turn_budget_truncates_and_the_judge_still_scores_the_work():
    env = make(limits=EpisodeLimits(max_turns=2))
    await env.areset(options={"task_id": "add"})
    _, _, _, truncated, _ = await env.astep(
        call("write_file", path="solution.py", content="def add(a, b):\n    return a + b\n")
    )
    assert not truncated
    _, reward, terminated, truncated, info = await env.astep("thinking...")
    assert (reward, terminated, truncated, info["end_reason"]) == (1.0, False, True, "max_turns")
    await env.aclose()


async def test_the_episode_deadline_cuts_commands_and_truncates():
    env = make(limits=EpisodeLimits(episode_seconds=3.0))
    await env.areset(options={"task_id": "q"})
    obs, reward, terminated, truncated, info = await env.astep(call("bash", command="sleep 20"))
    assert "timed out" in obs[0]["content"] and info["timings"]["env_s"] < 10
    assert (terminated, truncated, info["end_reason"]) == (False, True, "deadline")
    await env.aclose()


class FailingProvider(FakeProvider):
    async def acquire(self):
        raise EngineUnavailable("no docker daemon")


class BreakingSandbox(FakeSandbox):
    async def exec(self, *args, **kwargs):
        raise SandboxBroken("container was killed")


class BreakingProvider(FakeProvider):
    async def acquire(self):
        sandbox = BreakingSandbox()
        self.handed_out.append(sandbox)
        return sandbox


class FailingJudge:
    async def score(self, episode):
        raise JudgeError("verdict unreachable")


@pytest.mark.parametrize(
    ("kwargs", "action", "error"),
    [
        pytest.param({"provider": FailingProvider()}, call("submit", answer="42"), "EngineUnavailable", id="at-reset"),
        pytest.param({"provider": BreakingProvider()}, call("bash", command="ls"), "SandboxBroken", id="mid-episode"),
        pytest.param({"judge": FailingJudge()}, call("submit", answer="42"), "JudgeError", id="in-the-judge"),
    ],
)
async def test_infrastructure_failures_are_flagged_not_scored(tmp_path, kwargs, action, error):
    writer = TrajectoryWriter(tmp_path)
    env = make(writer=writer, **kwargs)
    _, info = await env.areset(options={"task_id": "q"})
    assert info["infra_failure"] is (error == "EngineUnavailable")
    obs, reward, terminated, truncated, info = await env.astep(action)
    assert (reward, terminated, truncated) == (0.0, True, False)
    assert info["infra_failure"] is True and error in info["error"] and info["end_reason"] == "infra"
    assert info["verdict"] is None
    end = list(read_records(tmp_path))[-1]
    assert isinstance(end, EpisodeEnd) and end.outcome is Outcome.INFRA_FAILURE and end.reward is None
    assert env.curriculum.state().history == {}  # an infrastructure failure says nothing about the policy
    await env.aclose()


async def test_every_step_is_recorded_before_the_next_one_runs(tmp_path):
    writer = TrajectoryWriter(tmp_path)
    env = make(writer=writer)
    _, info = await env.areset(seed=3, options={"task_id": "add"})
    assert [type(r) for r in read_records(tmp_path)] == [EpisodeStart]
    for index, message in enumerate([call("bash", command="echo hi"), *[_ref(c) for c in ADD.reference]]):
        await env.astep(message)
        records = list(read_records(tmp_path))
        assert isinstance(records[index + 1], StepRecord) and records[index + 1].index == index
    start, first, write, submit, end = read_records(tmp_path)
    assert start.task_id == "add" and start.seed == 3 and start.episode_id == info["episode_id"]
    assert first.tool_calls[0]["function"]["name"] == "bash" and first.observation[0]["content"].endswith("hi\n")
    assert first.action == call("bash", command="echo hi") and "tools_s" in first.timings
    assert submit.reward == 1.0 and submit.terminated and submit.info["verdict"]["passed"]
    assert end.outcome is Outcome.TERMINATED and end.reward == 1.0 and end.steps == 3
    await env.aclose()


def _ref(tool_call):
    return {"role": "assistant", "content": "", "tool_calls": [tool_call.to_openai()]}


async def test_reset_mid_episode_and_close_release_every_sandbox(tmp_path):
    provider = FakeProvider()
    env = make(provider=provider, writer=TrajectoryWriter(tmp_path))
    await env.areset(options={"task_id": "q"})
    await env.areset(options={"task_id": "q"})
    assert provider.handed_out[0].closed and not provider.handed_out[1].closed
    await env.aclose()
    await env.aclose()
    assert all(sb.closed for sb in provider.handed_out)
    ends = [r for r in read_records(tmp_path) if isinstance(r, EpisodeEnd)]
    assert [e.outcome for e in ends] == [Outcome.CANCELLED, Outcome.CANCELLED]
    assert not provider._closed  # an injected provider belongs to the caller


async def test_step_before_reset_raises():
    env = make()
    with pytest.raises(ResetNeeded):
        await env.astep(call("submit"))


async def test_the_curriculum_learns_from_finished_episodes():
    env = make()
    await env.areset(options={"task_id": "q"})
    await env.astep(call("submit", answer="42"))
    assert env.curriculum.state().history == {0: [True]}
    await env.aclose()


def test_the_sync_api_runs_the_same_core():
    env = make()
    obs, info = env.reset(seed=1, options={"task_id": "add"})
    for message in [_ref(c) for c in ADD.reference]:
        obs, reward, terminated, truncated, info = env.step(message)
    assert reward == 1.0 and terminated
    env.close()
    env.close()


async def test_the_sync_api_also_works_inside_a_running_event_loop():
    env = make()
    obs, info = env.reset(options={"task_id": "q"})
    assert env.step(call("submit", answer="42"))[1] == 1.0
    env.close()


def test_budgets_are_a_frozen_record():
    with pytest.raises(dataclasses.FrozenInstanceError):
        EpisodeLimits().max_turns = 3  # type: ignore[misc]


async def test_calls_past_the_per_turn_cap_are_answered_but_not_run():
    env = make(limits=EpisodeLimits(max_calls_per_turn=2))
    await env.areset(options={"task_id": "q"})
    obs, *_ = await env.astep("".join(call("bash", command=f"touch f{i}") for i in range(4)))
    assert [m["tool_call_id"] for m in obs] == ["call_1_0", "call_1_1", "call_1_2", "call_1_3"]
    assert "not run" in obs[2]["content"] and "not run" not in obs[1]["content"]
    listing = (await env.astep(call("bash", command="ls")))[0][0]["content"]
    assert "f1" in listing and "f2" not in listing
    await env.aclose()


async def test_step_events_carry_what_the_sandbox_did(tmp_path):
    env = make(writer=TrajectoryWriter(tmp_path))
    await env.areset(options={"task_id": "q"})
    await env.astep(
        call("bash", command="exit 3") + call("bash", command="sleep 5", timeout=1) + call("read_file", path="no")
    )
    step = [r for r in read_records(tmp_path) if isinstance(r, StepRecord)][0]
    assert [(e["tool"], e["ok"], e.get("exit_code"), e.get("timed_out")) for e in step.events] == [
        ("bash", True, 3, False),
        ("bash", True, None, True),
        ("read_file", False, None, None),
    ]
    assert "NotFound" in step.events[2]["error"]
    await env.aclose()


async def test_a_cancelled_step_leaves_nothing_behind_after_close():
    import asyncio

    class Slow(FakeSandbox):
        async def exec(self, *args, **kwargs):  # hangs without a host process (the fake leaks one on cancel)
            await asyncio.sleep(30)

    class SlowProvider(FakeProvider):
        async def acquire(self):
            self.handed_out.append(Slow())
            return self.handed_out[-1]

    provider = SlowProvider()
    env = make(provider=provider)
    await env.areset(options={"task_id": "q"})
    step = asyncio.ensure_future(env.astep(call("bash", command="sleep 30")))
    await asyncio.sleep(0.3)
    step.cancel()
    with pytest.raises(asyncio.CancelledError):
        await step
    await env.aclose()
    assert provider.handed_out[0].closed


async def test_a_second_call_while_one_runs_is_refused_and_the_first_goes_on():
    import asyncio

    from boxgym.errors import EnvBusy

    env = make()
    await env.areset(options={"task_id": "q"})
    slow = asyncio.ensure_future(env.astep(call("bash", command="sleep 0.3; echo done")))
    await asyncio.sleep(0.05)
    with pytest.raises(EnvBusy, match="one env per thread"):
        await env.astep(call("bash", command="echo second"))
    with pytest.raises(EnvBusy):
        await env.areset()
    obs, *_ , info = await slow
    assert obs[0]["content"].endswith("done\n") and info["turn"] == 1
    await env.aclose()
