"""GuiToolset on the fake sandbox: structured tools and K2.5 calls over one path, a screenshot with
every result, the agent's mistakes as observations; and how the env shows it all to a policy."""

from __future__ import annotations

import time

import gymnasium as gym
import pytest

import boxgym  # noqa: F401 - registers the ids
from boxgym.sandboxes import FakeProvider, FakeSandbox
from boxgym.toolsets.calls import ToolCall
from boxgym.toolsets.gui import GUI_TOOLS, GuiToolset, Termination, code_of
from boxgym.toolsets.gui_format import k25_reply

from ..display import APP, DISPLAY, png_size

pytestmark = DISPLAY


def call(name: str, **arguments) -> ToolCall:
    return ToolCall("c1", name, arguments)


@pytest.fixture
async def app_sandbox():
    async with FakeSandbox() as sb:
        await sb.call("gui.open_app", {"spec": APP}, timeout=60)
        yield sb


async def state(sb) -> dict:
    return (await sb.call("gui.app_state"))["state"]


async def test_structured_tools_reach_the_app_and_answer_with_a_screenshot(app_sandbox):
    tools = GuiToolset()
    clicked = await tools.run(call("click", x=120, y=120), app_sandbox)
    assert clicked.ok and clicked.content == "done" and png_size(clicked.images[0].data) == (1280, 800)
    assert (await tools.run(call("click", x=190, y=186, clicks=3), app_sandbox)).ok
    assert (await tools.run(call("type", text="Ada Park"), app_sandbox)).ok
    assert (await tools.run(call("hotkey", keys=["ctrl", "a"]), app_sandbox)).ok
    assert (await tools.run(call("press", keys=["backspace"]), app_sandbox)).ok
    assert (await tools.run(call("type", text="Bo"), app_sandbox)).ok
    assert (await tools.run(call("drag", x=480, y=142, to_x=700, to_y=300), app_sandbox)).ok
    assert (await tools.run(call("double_click", x=60, y=245), app_sandbox)).ok  # on, then off again
    assert (await tools.run(call("move", x=5, y=5), app_sandbox)).ok
    assert (await tools.run(call("scroll", clicks=-2, x=300, y=600), app_sandbox)).ok
    now = await state(app_sandbox)
    assert [e["kind"] for e in now["events"]] == ["press", "drop"]
    assert now["values"] == {"name": "Bo", "agree": False, "board": {"apple": "fruit"}}


async def test_wait_looks_again_and_terminate_submits(app_sandbox):
    tools = GuiToolset(wait_s=0.3)
    start = time.monotonic()
    waited = await tools.run(call("wait"), app_sandbox)
    assert waited.ok and waited.content == "waited 0.3s" and waited.images and time.monotonic() - start >= 0.3
    assert (await tools.run(call("wait", seconds=0), app_sandbox)).content == "waited 0s"
    ended = await tools.run(call("terminate", status="success", answer="42"), app_sandbox)
    assert ended.submitted and Termination.of(ended.submission) == Termination("success", "42") and not ended.images


@pytest.mark.parametrize(
    ("name", "arguments", "said"),
    [
        pytest.param("click", {"x": 1300, "y": 5}, "off the screen", id="off-screen"),
        pytest.param("click", {"x": 5}, "y must be a number", id="missing-y"),
        pytest.param("click", {"x": 5, "y": 5, "button": "side"}, "button must be left, right or middle", id="bad-button"),
        pytest.param("click", {"x": 5, "y": 5, "force": True}, "unexpected argument(s) force", id="unexpected"),
        pytest.param("press", {"keys": []}, "keys must be", id="no-keys"),
        pytest.param("press", {"keys": "nosuchkey"}, "unknown key 'nosuchkey'", id="unknown-key"),
        pytest.param("hotkey", {"keys": "ctrl"}, "a list of key names", id="hotkey-string"),
        pytest.param("type", {"text": 5}, "text must be a string", id="type-number"),
        pytest.param("wait", {"seconds": 600}, "seconds must be from 0 to 60", id="wait-too-long"),
        pytest.param("terminate", {"status": "done"}, 'status must be "success" or "failure"', id="bad-status"),
        pytest.param("explode", {}, "unknown tool 'explode'", id="unknown-tool"),
        pytest.param("pyautogui", {"code": "import os"}, "refused: import os", id="refused-code"),
        pytest.param("pyautogui", {"code": "x = 1 +"}, "error: SyntaxError", id="syntax-error"),
    ],
)
async def test_the_agents_mistakes_are_observations(app_sandbox, name, arguments, said):
    result = await GuiToolset().run(call(name, **arguments), app_sandbox)
    assert not result.ok and not result.submitted and said in result.content, result.content


async def test_a_slow_action_is_stopped_at_its_timeout_or_the_episodes_time_left(app_sandbox):
    result = await GuiToolset(code_timeout=1.0).run(call("pyautogui", code="time.sleep(30)"), app_sandbox)
    assert not result.ok and "did not finish within 1s" in result.content and result.detail["timed_out"]
    result = await GuiToolset().run(call("pyautogui", code="time.sleep(30)"), app_sandbox, timeout=1.5)
    assert "within 1.5s" in result.content and result.images


def test_structured_calls_are_code_with_their_values_quoted():
    assert code_of(call("type", text="it's \"quoted\"\n")) == "pyautogui.write('it\\'s \"quoted\"\\n')"
    assert code_of(call("hotkey", keys='["ctrl", "s"]')) == "pyautogui.hotkey(*['ctrl', 's'])"  # Qwen XML carries text
    assert code_of(call("click", x="10", y=20.4)) == "pyautogui.click(x=10, y=20, button='left', clicks=1)"
    assert [s["function"]["name"] for s in GUI_TOOLS] == [
        "click", "double_click", "move", "drag", "type", "press", "hotkey", "scroll", "wait", "terminate"]  # fmt: skip
    assert GuiToolset(structured=False).schemas() == []


async def test_the_env_shows_k25_results_as_user_turns_and_starts_with_a_screenshot():
    env = gym.make("boxgym/Desktop-v0", provider=FakeProvider(), kinds=("press",)).unwrapped
    try:
        obs, info = await env.areset(options={"difficulty": 0})
        assert info["tools"] == [] and obs[0]["content"].startswith("You are a GUI agent.")
        assert [part["type"] for part in obs[1]["content"]] == ["text", "image_url"]  # the task, then the screen
        obs, reward, terminated, truncated, info = await env.astep(k25_reply("Look", "Move", "pyautogui.moveTo(5, 5)"))
        assert [m["role"] for m in obs] == ["user"] and obs[0]["content"][0] == {"type": "text", "text": "done"}
        assert obs[0]["content"][1]["type"] == "image_url" and info["images"] == 1 and not terminated
        obs, *_ = await env.astep("I am not sure what to do.")
        assert [m["role"] for m in obs] == ["user"] and "no code block" in obs[0]["content"]
        obs, *_ = await env.astep(k25_reply("t", "a", "pyautogui.click(1,"))
        assert obs[0]["content"][0]["text"].startswith("error: SyntaxError")
        obs, reward, terminated, truncated, info = await env.astep(k25_reply("t", "a", 'computer.terminate(status="failure")'))
        assert terminated and reward == 0.0 and info["end_reason"] == "submitted"
        assert obs == [{"role": "user", "content": "terminated: failure"}]
    finally:
        await env.aclose()


async def test_the_env_answers_structured_calls_in_tool_messages_then_one_image_message():
    env = gym.make("boxgym/Desktop-v0", provider=FakeProvider(), action_format="tools", kinds=("press",)).unwrapped
    try:
        obs, info = await env.areset(options={"difficulty": 0})
        assert [t["function"]["name"] for t in info["tools"]][:2] == ["click", "double_click"]
        message = {"role": "assistant", "content": "", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "move", "arguments": '{"x": 5, "y": 5}'}},
            {"id": "b", "type": "function", "function": {"name": "wait", "arguments": '{"seconds": 0}'}}]}  # fmt: skip
        obs, *_ = await env.astep(message)
        assert [(m["role"], m.get("tool_call_id")) for m in obs] == [("tool", "a"), ("tool", "b"), ("user", None)]
        assert [p["type"] for p in obs[2]["content"]] == ["text", "image_url", "image_url"]
    finally:
        await env.aclose()


async def test_composed_with_the_shell_the_screen_still_opens_the_episode():
    from boxgym.toolsets import ShellToolset, compose

    env = gym.make("boxgym/Desktop-v0", provider=FakeProvider(), action_format="tools", kinds=("press",),
                   toolset=compose(ShellToolset(), GuiToolset())).unwrapped  # fmt: skip
    try:
        obs, info = await env.areset(options={"difficulty": 0})
        assert [part["type"] for part in obs[1]["content"]] == ["text", "image_url"]
        assert {"bash", "click", "terminate"} <= {t["function"]["name"] for t in info["tools"]}
    finally:
        await env.aclose()
