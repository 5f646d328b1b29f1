"""Assembling streamed chunks into a response, and synthesizing chunks from one."""

from __future__ import annotations

from boxgym.gateway.sse import Assembler, synthesize_chunks


def _chunk(delta: dict, finish: str | None = None) -> dict:
    return {"id": "c", "created": 1, "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_tool_call_arguments_split_over_deltas_are_joined() -> None:
    asm = Assembler("chat.completions")
    asm.add(_chunk({"role": "assistant", "content": ""}))
    asm.add(_chunk({"content": "Let me "}))
    asm.add(_chunk({"content": "look."}))
    asm.add(
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "bash", "arguments": '{"comm'},
                    }
                ]
            }
        )
    )
    asm.add(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'and": "ls"}'}}]}))
    asm.add(
        _chunk(
            {
                "tool_calls": [
                    {"index": 1, "id": "call_2", "type": "function", "function": {"name": "cat", "arguments": "{}"}}
                ]
            }
        )
    )
    asm.add(_chunk({}, "tool_calls"))
    asm.add({"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}})
    resp = asm.response()
    msg = resp["choices"][0]["message"]
    assert msg["content"] == "Let me look."
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in msg["tool_calls"]] == [
        ("call_1", "bash", '{"command": "ls"}'),
        ("call_2", "cat", "{}"),
    ]
    assert resp["choices"][0]["finish_reason"] == "tool_calls" and resp["usage"]["total_tokens"] == 12


def test_synthesized_chunks_assemble_back_to_the_response() -> None:
    response = {
        "id": "x",
        "created": 2,
        "model": "m",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "hi",
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    asm = Assembler("chat.completions")
    for chunk in synthesize_chunks(response, "chat.completions", include_usage=True):
        asm.add(chunk)
    assert asm.response() == response
