"""The K2.5 GUI action format: a reply becomes one call, answered in a user turn; what is not the
format is said back to the model; tool calls still go to the default parser."""

from __future__ import annotations

import pytest

from boxgym.toolsets.calls import ParseFailure
from boxgym.toolsets.gui import Termination
from boxgym.toolsets.gui_format import K25Parser, k25_reply, system_prompt

parse = K25Parser().parse


def only_call(reply):
    parsed = parse(reply)
    assert not parsed.errors and len(parsed.calls) == 1 and parsed.answer_in == "user", parsed
    return parsed.calls[0]


def test_a_reply_in_the_format_is_its_code():
    reply = k25_reply("The Save button is at the bottom.", "Click Save.", "pyautogui.click(x=412, y=230)")
    assert reply == "The Save button is at the bottom.\n## Action:\nClick Save.\n## Code:\n```python\npyautogui.click(x=412, y=230)\n```"
    call = only_call(reply)
    assert (call.name, dict(call.arguments)) == ("pyautogui", {"code": "pyautogui.click(x=412, y=230)"})
    assert call.id == "call_0"


@pytest.mark.parametrize(
    ("code", "name", "arguments"),
    [
        pytest.param("computer.wait()", "wait", {}, id="wait"),
        pytest.param("computer.wait(seconds=5)", "wait", {"seconds": 5}, id="wait-seconds"),
        pytest.param('computer.terminate(status="success")', "terminate", {"status": "success"}, id="terminate"),
        pytest.param("computer.terminate('failure', 'no such file')", "terminate", {"status": "failure", "answer": "no such file"}, id="positional"),
        pytest.param('computer.terminate(status="success", answer=None)', "terminate", {"status": "success", "answer": None}, id="answer-none"),
    ],
)
def test_the_two_functions_of_computer(code, name, arguments):
    call = only_call(k25_reply("Done.", "Finish.", code))
    assert (call.name, dict(call.arguments)) == (name, arguments)


@pytest.mark.parametrize(
    ("reply", "reason", "said"),
    [
        pytest.param("I will click the button.", ParseFailure.NO_CALL, "no code block", id="no-code"),
        pytest.param("thought\n## Action:\nnothing\n## Code:\n```python\n\n```", ParseFailure.NO_CALL, "empty", id="empty-code"),
        pytest.param(k25_reply("t", "a", "pyautogui.click(1, 2)\ncomputer.terminate(status='success')"), ParseFailure.BAD_SHAPE,
                     "must be the whole code block", id="mixed"),
        pytest.param(k25_reply("t", "a", "computer.shutdown()"), ParseFailure.BAD_SHAPE, "no other computer functions", id="unknown-function"),
        pytest.param(k25_reply("t", "a", "computer.wait(minutes=2)"), ParseFailure.BAD_SHAPE, "no argument 'minutes'", id="unknown-argument"),
        pytest.param(k25_reply("t", "a", "computer.terminate(status=x)"), ParseFailure.BAD_SHAPE, "plain values", id="not-a-literal"),
    ],
)
def test_what_is_not_the_format_is_said_back(reply, reason, said):
    parsed = parse(reply)
    assert not parsed.calls and parsed.answer_in == "user"
    assert parsed.errors[0].reason is reason and said in parsed.errors[0].message


def test_the_code_after_the_last_code_heading_counts_and_reasoning_does_not():
    reply = (
        "<think>maybe ```python\npyautogui.click(1, 1)\n``` would do</think>"
        "An example:\n```python\npyautogui.press('esc')\n```\n## Action:\nType the name\n## Code:\n```\npyautogui.write('Ada')\n```"
    )
    assert dict(only_call(reply).arguments) == {"code": "pyautogui.write('Ada')"}
    unterminated = "t\n## Action:\na\n## Code:\n```python\npyautogui.click(3, 4)"  # generation stopped at the fence
    assert dict(only_call(unterminated).arguments) == {"code": "pyautogui.click(3, 4)"}


def test_a_syntax_error_is_left_to_the_toolset_which_says_on_which_line():
    assert only_call(k25_reply("t", "a", "pyautogui.click(1,\ncomputer.wait()")).name == "pyautogui"


def test_tool_calls_go_to_the_default_parser_and_are_answered_in_tool_messages():
    message = {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "click", "arguments": '{"x": 1, "y": 2}'}}]}  # fmt: skip
    parsed = parse(message)
    assert parsed.answer_in == "tool" and parsed.calls[0].name == "click" and parsed.calls[0].id == "c1"
    content_only = {"role": "assistant", "content": k25_reply("t", "a", "computer.wait()")}
    assert only_call(content_only).name == "wait"


def test_the_system_prompt_names_the_password_and_the_screen():
    prompt = system_prompt("hunter2", (1024, 768))
    assert prompt.startswith("You are a GUI agent.") and prompt.endswith("The password of the computer is hunter2.")
    assert "1024x768" in prompt and "computer.terminate" in prompt and "## Code:" in prompt


def test_a_termination_travels_as_the_submission():
    assert Termination.of(Termination("failure", "x").to_submission()) == Termination("failure", "x")
    assert Termination.of("42") is None and Termination.of(None) is None and Termination.of('{"status": "maybe"}') is None
