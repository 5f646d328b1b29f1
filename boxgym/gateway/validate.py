"""Checks on a client's body, before anything is sent upstream.

Only what the gateway needs to be true is checked (the engine checks the rest and its refusal is
passed on): the shape of ``messages`` / ``prompt``, the types of the fields the gateway reads, and
``n == 1``, because a record holds one completion.
"""

from __future__ import annotations

from typing import Any

from ..errors import GatewayRefused

__all__ = ["validate_body"]


def _check(cond: bool, message: str, param: str) -> None:
    if not cond:
        raise GatewayRefused(message, param=param)


def _is_int(v: Any) -> bool:
    return type(v) is int


def validate_body(body: dict[str, Any], endpoint: str) -> None:
    if endpoint == "chat.completions":
        messages = body.get("messages")
        _check(messages is not None, "'messages' is required", "messages")
        _check(isinstance(messages, list) and len(messages) > 0, "'messages' must be a non-empty array", "messages")
        for i, m in enumerate(messages):
            _check(
                isinstance(m, dict) and isinstance(m.get("role"), str),
                f"messages[{i}] must be an object with a string 'role'",
                f"messages[{i}]",
            )
            content = m.get("content")
            _check(
                content is None or isinstance(content, (str, list)),
                f"messages[{i}].content must be a string or an array",
                f"messages[{i}].content",
            )
        tools = body.get("tools")
        _check(
            tools is None or (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)),
            "'tools' must be an array of objects",
            "tools",
        )
    else:
        prompt = body.get("prompt")
        _check(prompt is not None, "'prompt' is required", "prompt")
        ok = isinstance(prompt, str) or (
            isinstance(prompt, list)
            and len(prompt) > 0
            and (all(_is_int(t) for t in prompt) or (len(prompt) == 1 and isinstance(prompt[0], str)))
        )
        _check(ok, "'prompt' must be a string, one string in an array, or an array of token ids", "prompt")
    model = body.get("model")
    _check(model is None or isinstance(model, str), "'model' must be a string", "model")
    _check(body.get("stream") is None or isinstance(body.get("stream"), bool), "'stream' must be a boolean", "stream")
    so = body.get("stream_options")
    _check(so is None or isinstance(so, dict), "'stream_options' must be an object", "stream_options")
    n = body.get("n")
    _check(n is None or n == 1, "the recording gateway takes n=1 only (send n requests instead)", "n")
    for key in ("max_tokens", "max_completion_tokens", "top_logprobs", "seed"):
        v = body.get(key)
        _check(v is None or _is_int(v), f"'{key}' must be an integer", key)
    for key in ("temperature", "top_p"):
        v = body.get(key)
        _check(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)), f"'{key}' must be a number", key)
