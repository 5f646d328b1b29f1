"""A real, deterministic byte-level tokenizer and chat template for the scripted engine.

Ids 0-255 are the bytes of UTF-8 text; ids from 256 are special tokens, which are recognised in
text only where the template writes them. The template is ChatML-like, with Hermes-style tool
calls, so that the prefix behaviour of multi-turn conversations is the real one: an assistant turn
re-rendered from the client's history extends the tokens the engine sampled exactly (CLEAN) as long
as the client sends back what it received.

    <|system|>Tools: [...]<|end|>\\n          (only when tools are given)
    <|user|>hi<|end|>\\n
    <|assistant|>text<tool_call>{"name": ..., "arguments": {...}}</tool_call><|end|>\\n
    <|tool|>result<|end|>\\n
    <|assistant|>                             (the generation prompt)
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["ByteTokenizer", "render_chat", "render_tool_call", "SPECIAL_TOKENS", "EOS"]

SPECIAL_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|tool|>", "<|end|>", "<tool_call>", "</tool_call>")
EOS = "<|end|>"
_SPECIAL_RE = re.compile("(" + "|".join(re.escape(s) for s in SPECIAL_TOKENS) + ")")


class ByteTokenizer:
    """UTF-8 bytes plus a handful of special tokens. Deterministic and lossless."""

    def __init__(self) -> None:
        self.special_ids = {s: 256 + i for i, s in enumerate(SPECIAL_TOKENS)}
        self.special_text = {i: s for s, i in self.special_ids.items()}
        self.eos_id = self.special_ids[EOS]
        self.vocab_size = 256 + len(SPECIAL_TOKENS)

    def encode(self, text: str, *, specials: bool = True) -> list[int]:
        if not specials:
            return list(text.encode())
        ids: list[int] = []
        for i, part in enumerate(_SPECIAL_RE.split(text)):
            if i % 2:
                ids.append(self.special_ids[part])
            elif part:
                ids.extend(part.encode())
        return ids

    def decode(self, ids: Sequence[int], *, skip_special: bool = False) -> str:
        out: list[str] = []
        buf = bytearray()
        for t in ids:
            if t < 256:
                buf.append(t)
                continue
            if buf:
                out.append(buf.decode(errors="replace"))
                buf.clear()
            if not skip_special:
                out.append(self.special_text[t])
        if buf:
            out.append(buf.decode(errors="replace"))
        return "".join(out)

    def token_bytes(self, token_id: int) -> bytes:
        return bytes([token_id]) if token_id < 256 else self.special_text[token_id].encode()


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    # OpenAI content parts: keep the text ones
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))


def render_tool_call(name: str, arguments: str) -> str:
    """The text of one tool call, as the engine samples it and the template re-renders it."""
    try:
        args: Any = json.loads(arguments)
    except ValueError:
        args = arguments  # the template shows what it got; a model could emit this too
    return "<tool_call>" + json.dumps({"name": name, "arguments": args}) + "</tool_call>"


def render_chat(
    messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None, *, generation_prompt: bool = True
) -> str:
    parts: list[str] = []
    if tools:
        fns = [t.get("function", t) for t in tools]
        parts.append("<|system|>Tools: " + json.dumps(fns, sort_keys=True) + "<|end|>\n")
    for m in messages:
        role = m.get("role")
        if role == "assistant":
            body = _text(m.get("content"))
            for call in m.get("tool_calls") or ():
                fn = call.get("function", {})
                body += render_tool_call(fn.get("name", ""), fn.get("arguments", ""))
            parts.append("<|assistant|>" + body + "<|end|>\n")
        elif role in ("system", "developer"):
            parts.append("<|system|>" + _text(m.get("content")) + "<|end|>\n")
        elif role == "tool":
            parts.append("<|tool|>" + _text(m.get("content")) + "<|end|>\n")
        else:
            parts.append("<|user|>" + _text(m.get("content")) + "<|end|>\n")
    if generation_prompt:
        parts.append("<|assistant|>")
    return "".join(parts)
