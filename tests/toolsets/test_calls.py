"""Tool-call parsing: every form models emit, and every way it goes wrong becomes data."""

from __future__ import annotations

import json

import pytest

from boxgym.toolsets import DefaultParser, ParseFailure, ToolCall

parse = DefaultParser().parse


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('<tool_call>{"name": "bash", "arguments": {"command": "ls"}}</tool_call>', id="hermes"),
        pytest.param(
            'Let me look.\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>', id="prose"
        ),
        pytest.param(
            '<tool_call>{"name": "bash", "arguments": "{\\"command\\": \\"ls\\"}"}</tool_call>', id="args-str"
        ),
        pytest.param('<tool_call>{"name": "bash", "parameters": {"command": "ls"}}</tool_call>', id="parameters"),
        pytest.param('<tool_call>{"name": "bash", "arguments": {"command": "ls"}}', id="unterminated"),
        pytest.param("<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>", id="qwen-xml"),
        pytest.param('{"name": "bash", "arguments": {"command": "ls"}}', id="bare-json"),
        pytest.param('[TOOL_CALLS][{"name": "bash", "arguments": {"command": "ls"}}]', id="mistral"),
        pytest.param('<|python_tag|>{"name": "bash", "parameters": {"command": "ls"}}', id="llama"),
    ],
)
def test_text_forms_give_one_call(text):
    parsed = parse(text, id_prefix="c")
    assert parsed.errors == ()
    assert parsed.calls == (ToolCall("c0", "bash", {"command": "ls"}),)
    assert parsed.text == text


def test_several_calls_keep_their_order_and_get_distinct_ids():
    text = "".join(
        f'<tool_call>{{"name": "bash", "arguments": {{"command": "echo {i}"}}}}</tool_call>' for i in range(3)
    )
    parsed = parse(text, id_prefix="call_1_")
    assert [c.arguments["command"] for c in parsed.calls] == ["echo 0", "echo 1", "echo 2"]
    assert [c.id for c in parsed.calls] == ["call_1_0", "call_1_1", "call_1_2"]


def test_openai_message_keeps_the_call_ids():
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "abc", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a.py"}'}},
            {"id": "def", "type": "function", "function": {"name": "submit", "arguments": {}}},
        ],
    }
    parsed = parse(message)
    assert parsed.calls == (ToolCall("abc", "read_file", {"path": "a.py"}), ToolCall("def", "submit", {}))
    assert parsed.to_message()["tool_calls"][0] == {
        "id": "abc",
        "type": "function",
        "function": {"name": "read_file", "arguments": json.dumps({"path": "a.py"})},
    }


def test_openai_message_without_tool_calls_is_parsed_from_its_content():
    parsed = parse({"role": "assistant", "content": '<tool_call>{"name": "submit"}</tool_call>'})
    assert parsed.calls == (ToolCall("call_0", "submit", {}),)


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        pytest.param("I think the answer is 4.", ParseFailure.NO_CALL, id="prose-only"),
        pytest.param('Use {"name": "bash", "arguments": {}} to run it.', ParseFailure.NO_CALL, id="quoted-json"),
        pytest.param('{"name": "Ada", "age": 3}', ParseFailure.NO_CALL, id="json-answer"),
        pytest.param("", ParseFailure.NO_CALL, id="empty"),
        pytest.param("<tool_call>{name: bash}</tool_call>", ParseFailure.MALFORMED, id="bad-json"),
        pytest.param('<tool_call>{"arguments": {}}</tool_call>', ParseFailure.BAD_SHAPE, id="no-name"),
        pytest.param('<tool_call>["bash"]</tool_call>', ParseFailure.BAD_SHAPE, id="not-object"),
        pytest.param("<tool_call>[]</tool_call>", ParseFailure.BAD_SHAPE, id="empty-list"),
        pytest.param(
            '<tool_call>{"name": "bash", "arguments": [1]}</tool_call>', ParseFailure.BAD_SHAPE, id="args-list"
        ),
        pytest.param(
            '<tool_call>{"name": "bash", "arguments": "{oops"}</tool_call>', ParseFailure.MALFORMED, id="args-bad-str"
        ),
        pytest.param(42, ParseFailure.BAD_ACTION, id="not-text"),
        pytest.param(
            {"role": "assistant", "tool_calls": [{"id": "x", "function": {"arguments": "{}"}}]},
            ParseFailure.BAD_SHAPE,
            id="openai-no-name",
        ),
        pytest.param({"role": "assistant", "tool_calls": ["bash"]}, ParseFailure.BAD_SHAPE, id="openai-not-object"),
    ],
)
def test_bad_output_becomes_an_error_not_an_exception(action, reason):
    parsed = parse(action)
    assert parsed.calls == ()
    assert [e.reason for e in parsed.errors] == [reason]
    assert parsed.errors[0].message


def test_good_and_bad_calls_in_one_message_are_both_reported():
    text = '<tool_call>{"name": "bash", "arguments": {"command": "ls"}}</tool_call><tool_call>{oops}</tool_call>'
    parsed = parse(text)
    assert [c.name for c in parsed.calls] == ["bash"]
    assert [e.reason for e in parsed.errors] == [ParseFailure.MALFORMED]


def test_openai_sdk_message_objects_are_accepted():
    from openai.types.chat import ChatCompletionMessage

    message = ChatCompletionMessage.model_validate(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "submit", "arguments": "{}"}}],
        }
    )
    assert parse(message).calls == (ToolCall("t1", "submit", {}),)


def test_a_json_list_in_one_tag_is_several_calls():
    text = '<tool_call>[{"name": "bash", "arguments": {"command": "ls"}}, {"name": "submit"}]</tool_call>'
    assert [(c.id, c.name) for c in parse(text).calls] == [("call_0", "bash"), ("call_1", "submit")]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('<think>maybe <tool_call>{"name": "bash"}</tool_call>?</think>', id="closed"),
        pytest.param('maybe <tool_call>{"name": "bash"}</tool_call>? no.</think>', id="opened-by-template"),
    ],
)
def test_calls_inside_reasoning_do_not_count(text):
    parsed = parse(text + '\n<tool_call>{"name": "submit"}</tool_call>')
    assert [c.name for c in parsed.calls] == ["submit"]
    assert parse(text).errors[0].reason is ParseFailure.NO_CALL
