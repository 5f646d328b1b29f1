"""What the scripted engine says: scripted replies per episode, seeded text, or tool calls.

A script is a list of replies per episode; the reply used for a request is the one at the index
of the number of assistant turns already in the conversation, so a retried or re-sent request
gets the same reply and a conversation replays the same way every time::

    Reply.say("Let me look."), Reply.call("bash", command="ls"), Reply.say("Done.")
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .tokenizer import ByteTokenizer, render_tool_call

__all__ = ["ScriptedCall", "Reply", "MockEngineConfig", "Plan", "ScriptExhausted", "plan_reply", "logprob_of"]

_WORDS = (
    "the agent reads a file then runs tests and edits code until every check passes while "
    "logs show each step of work on the task in its sandbox"
).split()


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    name: str
    arguments: str = "{}"  # JSON text, as the OpenAI API carries it

    @classmethod
    def of(cls, name: str, **arguments: Any) -> ScriptedCall:
        return cls(name, json.dumps(arguments))


@dataclass(frozen=True, slots=True)
class Reply:
    """One assistant turn: text, tool calls, or both."""

    text: str = ""
    tool_calls: tuple[ScriptedCall, ...] = ()

    @classmethod
    def say(cls, text: str) -> Reply:
        return cls(text=text)

    @classmethod
    def call(cls, name: str, **arguments: Any) -> Reply:
        return cls(tool_calls=(ScriptedCall.of(name, **arguments),))

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Reply:
        """``{"text": ...}`` and/or ``{"tool_calls": [{"name": ..., "arguments": {...} or "json"}]}``."""
        calls = []
        for c in d.get("tool_calls") or ():
            args = c.get("arguments", {})
            calls.append(ScriptedCall(c["name"], args if isinstance(args, str) else json.dumps(args)))
        return cls(text=d.get("text") or "", tool_calls=tuple(calls))


@dataclass(frozen=True, slots=True)
class MockEngineConfig:
    """How the scripted engine behaves when a request's episode has no script."""

    model: str = "boxgym-mock"
    host: str = "127.0.0.1"
    port: int = 0
    mode: Literal["seeded", "tools"] = "seeded"  # tools: call the first offered tool, then answer in text
    seed: int = 0
    reply_tokens: int = 16  # length of seeded text
    chunk_tokens: int = 4  # tokens per streamed chunk
    token_delay: float = 0.0  # seconds per generated token (to test cancellation and timeouts)
    episode_header: str = "X-Boxgym-Episode-Id"
    weight_version: str | None = None  # sent back as X-Weight-Version when set
    scripts: Mapping[str, Sequence[Reply]] = field(default_factory=dict)


class ScriptExhausted(Exception):
    """The episode's script has no reply at this turn."""


@dataclass(slots=True)
class Plan:
    """What to answer: content, tool calls (id, name, arguments) and every completion token."""

    content: str
    tool_calls: list[tuple[str, str, str]]
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str
    content_len: int  # token_ids[:content_len] are the text; then each tool call's tokens; then EOS if any
    call_lens: list[int]
    stop_reason: str | None = None  # the stop string that ended it (its tokens end token_ids, not the text)


def logprob_of(seed: int, prompt_len: int, index: int, token: int) -> float:
    h = zlib.crc32(f"{seed}:{prompt_len}:{index}:{token}".encode())
    return -round((h % 4000) / 1000.0 + 0.001, 6)


def _seeded_text(seed: int, prompt_ids: Sequence[int], n: int) -> str:
    rng = random.Random(seed ^ zlib.crc32(bytes(t & 0xFF for t in prompt_ids[-512:])) ^ len(prompt_ids))
    words: list[str] = []
    size = 0
    while size < n:
        w = rng.choice(_WORDS)
        words.append(w)
        size += len(w) + 1
    return " ".join(words)[:n]


def _schema_args(tool: Mapping[str, Any]) -> str:
    params = tool.get("function", tool).get("parameters") or {}
    props = params.get("properties") or {}
    args: dict[str, Any] = {}
    for name in params.get("required") or list(props)[:1]:
        kind = (props.get(name) or {}).get("type")
        args[name] = 1 if kind in ("integer", "number") else True if kind == "boolean" else "ls"
    return json.dumps(args)


def _choose(
    config: MockEngineConfig,
    script: Sequence[Reply] | None,
    turn: int,
    tools: Sequence[Mapping[str, Any]] | None,
    last_role: str | None,
    seed: int,
    prompt_ids: Sequence[int],
) -> Reply:
    if script is not None:
        if turn >= len(script):
            raise ScriptExhausted(f"the script has {len(script)} replies; this is turn {turn + 1}")
        return script[turn]
    if config.mode == "tools" and tools and last_role != "tool":
        fn = tools[0].get("function", tools[0])
        return Reply(tool_calls=(ScriptedCall(fn["name"], _schema_args(tools[0])),))
    return Reply.say(_seeded_text(seed, prompt_ids, config.reply_tokens))


def plan_reply(
    config: MockEngineConfig,
    tokenizer: ByteTokenizer,
    *,
    prompt_ids: Sequence[int],
    script: Sequence[Reply] | None,
    turn: int,
    tools: Sequence[Mapping[str, Any]] | None = None,
    last_role: str | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
    call_prefix: str = "call",
    stop: Sequence[str] = (),
) -> Plan:
    """The answer to one request. Like vLLM, generation ends at the first of: a ``stop`` string
    in the text (its tokens are sampled, the text stops before it, ``stop_reason`` names it),
    ``max_tokens`` (finish ``length``), or the end of the reply (EOS)."""
    seed = config.seed if seed is None else seed
    reply = _choose(config, script, turn, tools, last_role, seed, prompt_ids)
    ids = tokenizer.encode(reply.text, specials=False)
    content_len, calls, call_lens = len(ids), [], []
    for i, c in enumerate(reply.tool_calls):
        call_ids = tokenizer.encode(render_tool_call(c.name, c.arguments))
        ids += call_ids
        call_lens.append(len(call_ids))
        calls.append((f"{call_prefix}_{turn}_{i}", c.name, c.arguments))
    ids.append(tokenizer.eos_id)
    content, finish, stop_reason = reply.text, "tool_calls" if calls else "stop", None
    cut = _first_stop(reply.text, stop)
    if cut is not None:
        at, stop_reason = cut
        visible = len(reply.text[:at].encode())
        ids = ids[: visible + len(stop_reason.encode())]  # byte tokens: the stop string's bytes were sampled
        content, calls, call_lens, content_len, finish = reply.text[:at], [], [], visible, "stop"
    if max_tokens is not None and len(ids) > max_tokens:
        ids = ids[:max_tokens]
        content, calls, call_lens, content_len, finish = tokenizer.decode(ids), [], [], len(ids), "length"
        stop_reason = None
    n = len(prompt_ids)
    lps = [logprob_of(seed, n, i, t) for i, t in enumerate(ids)]
    return Plan(content, calls, ids, lps, finish, content_len, call_lens, stop_reason)


def _first_stop(text: str, stop: Sequence[str]) -> tuple[int, str] | None:
    """Where the earliest stop string begins in the text, and which it is."""
    found = [(text.find(s), s) for s in stop if s and s in text]
    return min(found) if found else None
