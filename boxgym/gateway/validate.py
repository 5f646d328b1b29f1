"""Checks on a client's body, before anything is sent upstream.

What the gateway needs to be true is checked: the shape of ``messages`` / ``prompt`` / ``input``,
the types of the fields the gateway reads, and ``n == 1``, because a record holds one
completion. So are the ranges of the sampling parameters, as vLLM checks them: an engine that
let ``max_tokens: 0`` or ``temperature: -1`` through would leave a record that looks like a
training sample of a request no one could have meant. The engine checks the rest, and its
refusal is passed on.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import GatewayRefused

__all__ = ["validate_body", "MAX_TOP_LOGPROBS"]

#: vLLM's default ``max_logprobs``, and the OpenAI API's limit.
MAX_TOP_LOGPROBS = 20


def _check(cond: bool, message: str, param: str) -> None:
    if not cond:
        raise GatewayRefused(message, param=param)


def _is_int(v: Any) -> bool:
    return type(v) is int


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _chat(body: dict[str, Any]) -> None:
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
    _tools(body)
    lp = body.get("logprobs")
    _check(lp is None or isinstance(lp, bool), "'logprobs' must be a boolean", "logprobs")
    top = body.get("top_logprobs")
    _check(
        top is None or (_is_int(top) and 0 <= top <= MAX_TOP_LOGPROBS),
        f"'top_logprobs' must be an integer from 0 to {MAX_TOP_LOGPROBS}",
        "top_logprobs",
    )


def _tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    _check(
        tools is None or (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)),
        "'tools' must be an array of objects",
        "tools",
    )


def _completions(body: dict[str, Any]) -> None:
    prompt = body.get("prompt")
    _check(prompt is not None, "'prompt' is required", "prompt")
    ok = isinstance(prompt, str) or (
        isinstance(prompt, list)
        and len(prompt) > 0
        and (all(_is_int(t) for t in prompt) or (len(prompt) == 1 and isinstance(prompt[0], str)))
    )
    _check(ok, "'prompt' must be a string, one string in an array, or an array of token ids", "prompt")
    lp = body.get("logprobs")
    _check(
        lp is None or (_is_int(lp) and 0 <= lp <= MAX_TOP_LOGPROBS),
        f"'logprobs' must be an integer from 0 to {MAX_TOP_LOGPROBS}",
        "logprobs",
    )


def _responses(body: dict[str, Any]) -> None:
    items = body.get("input")
    _check(items is not None, "'input' is required", "input")
    _check(
        isinstance(items, str) or (isinstance(items, list) and len(items) > 0),
        "'input' must be a string or a non-empty array of items",
        "input",
    )
    _tools(body)
    v = body.get("max_output_tokens")
    _check(v is None or (_is_int(v) and v >= 1), "'max_output_tokens' must be a positive integer", "max_output_tokens")


def _positive_int(v: Any, key: str) -> None:
    _check(_is_int(v), f"'{key}' must be an integer", key)
    _check(v >= 1, f"'{key}' must be at least 1", key)


def _n(v: Any, key: str) -> None:
    _positive_int(v, key)
    _check(v == 1, "the recording gateway takes n=1 only (send n requests instead)", key)


def _seed(v: Any, key: str) -> None:
    _check(_is_int(v), "'seed' must be an integer", key)


def _temperature(v: Any, key: str) -> None:
    _check(_is_number(v), "'temperature' must be a number", key)
    _check(v >= 0, "'temperature' must be at least 0", key)


def _top_p(v: Any, key: str) -> None:
    _check(_is_number(v), "'top_p' must be a number", key)
    _check(0 < v <= 1, "'top_p' must be in (0, 1]", key)


def _penalty(v: Any, key: str) -> None:
    _check(_is_number(v) and -2 <= v <= 2, f"'{key}' must be a number from -2 to 2", key)


def _stop(v: Any, key: str) -> None:
    ok = isinstance(v, str) or (isinstance(v, list) and all(isinstance(s, str) for s in v))
    _check(ok, "'stop' must be a string or an array of strings", key)


def _model(v: Any, key: str) -> None:
    _check(isinstance(v, str), "'model' must be a string", key)


def _stream(v: Any, key: str) -> None:
    _check(isinstance(v, bool), "'stream' must be a boolean", key)


def _stream_options(v: Any, key: str) -> None:
    _check(isinstance(v, dict), "'stream_options' must be an object", key)


# the fields every endpoint shares, checked only when present (a null is left to the engine)
_COMMON = {
    "model": _model,
    "stream": _stream,
    "stream_options": _stream_options,
    "n": _n,
    "max_tokens": _positive_int,
    "max_completion_tokens": _positive_int,
    "seed": _seed,
    "temperature": _temperature,
    "top_p": _top_p,
    "presence_penalty": _penalty,
    "frequency_penalty": _penalty,
    "stop": _stop,
}


def validate_body(body: dict[str, Any], endpoint: str) -> None:
    if endpoint == "chat.completions":
        _chat(body)
    elif endpoint == "responses":
        _responses(body)
    else:
        _completions(body)
    for key in body.keys() & _COMMON.keys():
        value = body[key]
        if value is not None:
            _COMMON[key](value, key)
