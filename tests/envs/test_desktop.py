"""boxgym/Desktop-v0 on the fake sandbox (the host's X server): every kind's reference solution
scores 1 at every level, in the K2.5 format and as tool calls; a random-click policy scores a mean
below 0.1; the generator is deterministic; the judge reads what the app wrote."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import boxgym  # noqa: F401 - registers the ids
from boxgym.envs import reference_messages
from boxgym.envs.suites import desktop
from boxgym.errors import JudgeError
from boxgym.judges.base import FinishedEpisode
from boxgym.judges.desktop import DesktopJudge, Goal, _check
from boxgym.sandboxes import FakeProvider, FakeSandbox
from boxgym.toolsets.gui import GuiToolset

from ..display import needs_display


def make(kind: str, **kwargs):
    return gym.make("boxgym/Desktop-v0", provider=FakeProvider(), kinds=(kind,), **kwargs).unwrapped


async def play(env, task, replies) -> tuple[float, dict]:
    obs, info = await env.areset(options={"task_id": task.id})
    assert not info["infra_failure"], info["error"]
    reward, info = 0.0, {}
    for reply in replies:
        obs, reward, terminated, truncated, info = await env.astep(reply)
        if terminated or truncated:
            break
    return reward, info


def failed_checks(info: dict) -> list:
    return [c for c in (info.get("verdict") or {}).get("checks", []) if not c["passed"]] or info.get("error")


@needs_display
@pytest.mark.slow
@pytest.mark.parametrize("kind", desktop.KINDS)
async def test_the_reference_scores_1_at_every_level_in_the_k25_format(kind):
    env = make(kind)
    try:
        for level in range(desktop.LEVELS):
            task = env.tasks.make(100 + level, level)
            reward, info = await play(env, task, desktop.k25_reference(task))
            assert reward == 1.0 and info["end_reason"] == "submitted", (task.id, failed_checks(info))
    finally:
        await env.aclose()


@needs_display
@pytest.mark.parametrize(("kind", "level"), [(kind, index % desktop.LEVELS) for index, kind in enumerate(desktop.KINDS)])
async def test_the_reference_scores_1_as_tool_calls(kind, level):
    env = make(kind, action_format="tools")
    try:
        task = env.tasks.make(7, level)
        reward, info = await play(env, task, reference_messages(task))
        assert reward == 1.0, (task.id, failed_checks(info))
    finally:
        await env.aclose()


@needs_display
@pytest.mark.parametrize("kind", desktop.KINDS)
async def test_doing_nothing_scores_0(kind):
    env = make(kind)
    try:
        task = env.tasks.make(3, 1)
        reward, info = await play(env, task, ['## Code:\n```python\ncomputer.terminate(status="success")\n```'])
        assert reward == 0.0 and info["end_reason"] == "submitted"
    finally:
        await env.aclose()


@needs_display
@pytest.mark.slow
async def test_a_random_click_policy_scores_a_mean_below_a_tenth():
    """100 random clicks an episode (the default budget), two levels of every kind; the clicks are
    drawn from a fixed seed, so the figure is the same on every run."""
    rng = np.random.default_rng(0)
    rewards = []
    for kind in desktop.KINDS:
        # pause 0: the clicks need no time to settle for a policy that does not look.
        env = make(kind, action_format="tools", toolset=GuiToolset(pause=0.0))
        try:
            assert env.limits.max_turns == 100
            for level in (0, 1):
                clicks = ({"role": "assistant", "content": "", "tool_calls": [{"id": f"c{i}", "type": "function",
                           "function": {"name": "click", "arguments": {"x": int(rng.integers(1280)), "y": int(rng.integers(800))}}}]}
                          for i in range(200))  # fmt: skip
                reward, info = await play(env, env.tasks.make(11 + level, level), clicks)
                assert info["end_reason"] == "max_turns"
                rewards.append(reward)
        finally:
            await env.aclose()
    assert len(rewards) == 14 and sum(rewards) / len(rewards) < 0.1, rewards


def test_tasks_are_the_same_for_a_seed_and_ids_give_them_back():
    tasks = desktop.task_set()
    first, again = tasks.make(5, 2), tasks.get("desktop/d2/s5")
    assert first == again and first.id == "desktop/d2/s5" and first.difficulty == 2
    assert first.oracle.app["dialog"]  # level 2: a notice to close first
    kinds = {tasks.make(seed, 0).metadata["kind"] for seed in range(60)}
    assert kinds == set(desktop.KINDS)
    scrolled = desktop.task_set(kinds=("press",)).make(1, 3)
    assert "scroll" in scrolled.oracle.app and any(c.name == "scroll" for c in scrolled.reference)
    small = desktop.task_set(screen=(1024, 768)).make(1, 1)
    assert small.oracle.screen == (1024, 768) and small.oracle.app["window"] == [1024, 768]
    with pytest.raises(ValueError, match="kinds must be some of"):
        desktop.task_set(kinds=("chess",))


@pytest.mark.parametrize(
    ("goal", "events", "values", "passed"),
    [
        pytest.param(Goal("press", "b1"), [{"kind": "press", "id": "b1"}], {}, True, id="press"),
        pytest.param(Goal("press", "b1"), [{"kind": "press", "id": "b2"}, {"kind": "press", "id": "b1"}], {}, False, id="press-another-too"),
        pytest.param(Goal("submit", "s", values={"e1": "Ada"}), [{"kind": "press", "id": "s", "values": {"e1": " Ada "}}], {}, True, id="submit"),
        pytest.param(Goal("submit", "s", values={"e1": "Ada"}), [{"kind": "press", "id": "s", "values": {"e1": "Bo"}}], {"e1": "Ada"}, False, id="filled-after-submit"),
        pytest.param(Goal("menu", "m0", item="Open"), [{"kind": "menu", "menu": "m0", "item": "Open"}], {}, True, id="menu"),
        pytest.param(Goal("menu", "m0", item="Open"), [{"kind": "menu", "menu": "m0", "item": "Open"}, {"kind": "menu", "menu": "m0", "item": "Close"}], {}, False, id="menu-another-too"),
        pytest.param(Goal("values", values={"s1": 37, "c1": True}), [], {"s1": "37", "c1": True}, True, id="values"),
        pytest.param(Goal("values", values={"c1": False}), [], {"c1": 0}, False, id="bool-is-bool"),
        pytest.param(Goal("saved", "doc", text="a\nb\n"), [{"kind": "save", "id": "doc", "content": "a\nb"}], {}, True, id="saved"),
        pytest.param(Goal("saved", "doc", text="a\n"), [], {"doc": "a\n"}, False, id="edited-not-saved"),
        pytest.param(Goal("placed", "board", values={"pear": "fruit", "saw": None}), [], {"board": {"pear": "fruit", "saw": None}}, True, id="placed"),
        pytest.param(Goal("placed", "board", values={"pear": "fruit", "saw": None}), [], {"board": {"pear": "fruit", "saw": "fruit"}}, False, id="extra-placed"),
    ],
)
def test_the_judge_reads_the_goal_from_the_apps_events_and_values(goal, events, values, passed):
    assert all(check.passed for check in _check(goal, events, values)) is passed


async def test_a_task_without_an_app_is_a_judge_error():
    task = desktop.generate(1, 0)
    broken = type(task)(task.id, task.prompt, oracle=None)  # type: ignore[arg-type]
    async with FakeSandbox() as sb:
        with pytest.raises(JudgeError, match="has no app"):
            await DesktopJudge().score(FinishedEpisode(broken, sb))


def test_the_options_of_the_env():
    env = make("press")
    assert env.limits.max_turns == 100 and env.toolset.wait_s == 20.0 and env.toolset.screen == (1280, 800)
    assert "The password of the computer is password." in env.system_prompt
    env = make("press", max_steps_per_episode=7, password="s3cret", wait_s=5, screen=(1024, 768), action_format="tools")
    assert env.limits.max_turns == 7 and env.toolset.wait_s == 5 and env.toolset.screen == (1024, 768)
    assert env.system_prompt.endswith("The password of the computer is s3cret.") and env.toolset.schemas()
    with pytest.raises(ValueError, match="action_format"):
        make("press", action_format="xml")
