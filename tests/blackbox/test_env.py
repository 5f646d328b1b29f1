"""BlackBoxEnv over a scripted program in the fake sandbox: one program across resets, text and
tool actions, the simulator's reward and ends, the budgets, records, and who is at fault."""

from __future__ import annotations

import asyncio
import json

import pytest
from gymnasium.error import ResetNeeded

from boxgym.blackbox import BlackBoxEnv
from boxgym.envs import EpisodeLimits
from boxgym.errors import EnvBusy
from boxgym.sandboxes import FakeProvider
from boxgym.toolsets.shell import ShellToolset
from boxgym.trajectories import TrajectoryWriter

from .scripted import Scripted


def call(name: str, call_id: str, **arguments) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def message(*calls: dict, content: str = "") -> dict:
    return {"role": "assistant", "content": content, "tool_calls": list(calls)}


@pytest.fixture
def made():
    provider = FakeProvider()
    blackbox = Scripted()
    env = BlackBoxEnv(provider=provider, blackbox=blackbox, limits=EpisodeLimits(max_turns=5))
    yield env, blackbox, provider
    env.close()


def test_text_commands_get_the_simulators_text_reward_and_end(made):
    env, _, _ = made
    obs, info = env.reset(seed=3)
    assert [m["role"] for m in obs] == ["system", "user"] and obs[1]["content"].endswith("begins")
    assert info["tools"][0]["function"]["name"] == "act" and not info["infra_failure"]
    assert "simulator_start_s" in info["timings"] and "acquire_s" in info["timings"]
    obs, reward, terminated, truncated, info = env.step("<think>which?</think>\n points 4 \n")
    assert obs == [{"role": "user", "content": f"{info['task_id']}: you said 'points 4'"}]
    assert (reward, terminated, truncated) == (0.4, False, False) and info["simulator"] == {"points": 4}
    obs, reward, terminated, truncated, info = env.step({"role": "assistant", "content": "win"})
    assert terminated and not truncated and info["end_reason"] == "env_terminated"
    with pytest.raises(ResetNeeded):
        env.step("again")


def test_tool_calls_run_in_order_and_stop_at_the_end(made):
    env, _, _ = made
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(
        message(
            call("valid_actions", "v", contains="DOOR"),
            call("act", "a", command="points 2"),
            call("act", "b", command="tired"),
            call("act", "c", command="points 5"),
        )
    )
    listing = "5 valid actions, 2 containing 'DOOR':\nopen the door\nclose the door"
    assert obs[0] == {"role": "tool", "tool_call_id": "v", "content": listing}
    assert [m["tool_call_id"] for m in obs] == ["v", "a", "b", "c"]
    assert obs[3]["content"] == "not run: the episode ended"
    assert reward == pytest.approx(0.2) and truncated and not terminated and info["end_reason"] == "env_truncated"


def test_malformed_and_unknown_calls_are_observations(made):
    env, _, _ = made
    env.reset(seed=0)
    obs, reward, *_ = env.step(message(call("act", "a", order="x"), call("fly", "f"), call("valid_actions", "v", n=1)))
    assert [m["content"].split(":")[0] for m in obs] == ["error"] * 3
    assert "the tools are: act, valid_actions" in obs[1]["content"] and reward == 0
    obs, *_ = env.step('<tool_call>{"name": "act", "arguments": </tool_call>')
    assert obs[-1]["role"] == "user" and "Your last message had problems" in obs[-1]["content"]


def test_one_program_serves_every_reset_and_the_seed_picks_the_task(made):
    env, blackbox, provider = made
    _, first = env.reset(seed=7)
    env.step("points 1")
    _, second = env.reset(seed=7)
    _, third = env.reset(options={"task_id": "chosen"})
    assert first["task_id"] == second["task_id"] and third["task_id"] == "chosen"
    assert len(set(blackbox.pids)) == 1 and len(provider.handed_out) == 1
    assert "simulator_start_s" not in second["timings"] and "acquire_s" not in second["timings"]


def test_the_turn_budget_truncates_and_reference_actions_come_before_the_first_step(made):
    env, _, _ = made
    env.reset(seed=1)
    assert env.unwrapped.reference_actions() == ["points 3", "points 7", "win"]
    for _ in range(4):
        _, _, terminated, truncated, _ = env.step("look")
        assert not (terminated or truncated)
    with pytest.raises(ResetNeeded):
        env.reference_actions()
    _, _, terminated, truncated, info = env.step("look")
    assert truncated and not terminated and info["end_reason"] == "max_turns"


def test_a_program_that_dies_is_an_infrastructure_failure_and_the_next_episode_starts_fresh(made):
    env, blackbox, provider = made
    env.reset(seed=0)
    crash = message(call("act", "a", command="crash"), call("act", "b", command="win"))
    obs, reward, terminated, truncated, info = env.step(crash)
    assert terminated and info["infra_failure"] and info["end_reason"] == "infra" and reward == 0.0
    assert "exited with status 9" in info["error"] and "simulated crash" in info["error"]
    assert [m["content"] for m in obs] == ["not run: the simulator failed"] * 2
    assert provider.handed_out[0].closed
    _, info = env.reset(seed=0)
    assert not info["infra_failure"] and len(provider.handed_out) == 2 and len(set(blackbox.pids)) == 2


def test_extra_tools_get_a_fresh_sandbox_each_episode(made):
    _, _, provider = made
    env = BlackBoxEnv(provider=provider, blackbox=Scripted(), tools=ShellToolset())
    try:
        _, info = env.reset(seed=0)
        assert {"act", "valid_actions", "bash"} <= {t["function"]["name"] for t in info["tools"]}
        obs, *_ = env.step(message(call("bash", "s", command="echo hi > note && cat note")))
        assert "hi" in obs[0]["content"]
        env.step("win")
        env.reset(seed=0)
        assert len(provider.handed_out) == 2 and provider.handed_out[0].closed
    finally:
        env.close()
    with pytest.raises(ValueError, match="may not redefine"):
        BlackBoxEnv(provider=provider, blackbox=Scripted(), tools=_Clashing())


class _Clashing:
    def schemas(self):
        return [{"type": "function", "function": {"name": "act", "parameters": {}}}]

    async def run(self, call, sandbox, *, timeout=None):
        raise AssertionError


def test_records_follow_the_episode(made, tmp_path):
    env, _, _ = made
    env.writer = TrajectoryWriter(tmp_path)
    env.reset(seed=0, options={"episode_id": "ep1"})
    env.step("points 5")
    env.step("win")
    env.reset(seed=0, options={"episode_id": "ep2"})
    env.close()
    env.writer.close()
    lines = [json.loads(line) for line in (tmp_path / "trajectories.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["episode_id"]) for r in lines] == [
        ("episode_start", "ep1"), ("step", "ep1"), ("step", "ep1"), ("episode_end", "ep1"),
        ("episode_start", "ep2"), ("episode_end", "ep2"),
    ]
    assert lines[3]["reward"] == pytest.approx(0.5) and lines[3]["reason"] == "env_terminated"
    assert lines[5]["outcome"] == "cancelled"


async def test_one_call_at_a_time_on_one_env():
    env = BlackBoxEnv(provider=FakeProvider(), blackbox=Scripted())
    try:
        reset = asyncio.ensure_future(env.areset(seed=0))
        await asyncio.sleep(0)
        with pytest.raises(EnvBusy):
            await env.astep("look")
        await reset
    finally:
        await env.aclose()
