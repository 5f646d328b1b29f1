"""Server-sent events: assembling a streamed answer into one response, and the reverse.

The record of a streamed call holds the response the client would have got without streaming,
assembled from the chunks (text concatenated, each tool call's arguments joined by index). The
reverse, :func:`synthesize_chunks`, serves an SDK retry of a streamed call from its record and
streams the answer of an engine that cannot stream what the gateway needs (SGLang's chat).
"""

from __future__ import annotations

from typing import Any

from ._json import dumps

__all__ = ["Assembler", "synthesize_chunks", "encode_event", "DONE"]

DONE = b"data: [DONE]\n\n"


def encode_event(obj: dict[str, Any]) -> bytes:
    return b"data: " + dumps(obj) + b"\n\n"


class Assembler:
    """Accumulates chunks of one stream (choice 0) into a non-streaming response object."""

    def __init__(self, endpoint: str) -> None:
        self.chat = endpoint == "chat.completions"
        self.head: dict[str, Any] = {}
        self.parts: list[str] = []
        self.role = "assistant"
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        if not self.head:
            self.head = {k: chunk.get(k) for k in ("id", "created", "model")}
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            if not self.chat:
                if choice.get("text"):
                    self.parts.append(choice["text"])
                continue
            delta = choice.get("delta") or {}
            if delta.get("role"):
                self.role = delta["role"]
            if delta.get("content"):
                self.parts.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                slot = self.calls.setdefault(
                    call.get("index", 0), {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
                )
                slot["id"] = call.get("id") or slot["id"]
                fn = call.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""

    def response(self) -> dict[str, Any]:
        text = "".join(self.parts)
        if self.chat:
            message: dict[str, Any] = {"role": self.role, "content": text or None}
            if self.calls:
                message["tool_calls"] = [self.calls[i] for i in sorted(self.calls)]
            choice = {"index": 0, "message": message, "finish_reason": self.finish_reason}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "finish_reason": self.finish_reason}
            obj = "text_completion"
        out = {**self.head, "object": obj, "choices": [choice]}
        if self.usage is not None:
            out["usage"] = self.usage
        return out


def synthesize_chunks(response: dict[str, Any], endpoint: str, *, include_usage: bool = False) -> list[dict[str, Any]]:
    """The chunks of a stream that carries ``response``: content whole, each tool call whole.

    Extra per-choice fields (``logprobs``, ``token_ids``) ride on the content chunk; top-level
    extras (``prompt_token_ids``) on the first chunk, as vLLM sends them.
    """
    head = {k: response.get(k) for k in ("id", "created", "model")}
    choice = (response.get("choices") or [{}])[0]
    extras = {k: v for k, v in choice.items() if k in ("logprobs", "token_ids", "prompt_token_ids", "meta_info")}
    top = {k: v for k, v in response.items() if k == "prompt_token_ids"}
    chunks: list[dict[str, Any]] = []
    if endpoint == "chat.completions":
        head["object"] = "chat.completion.chunk"
        msg = choice.get("message") or {}
        chunks.append(
            {
                **head,
                **top,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": msg.get("role", "assistant"), "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
            }
        )
        delta: dict[str, Any] = {}
        if msg.get("content"):
            delta["content"] = msg["content"]
        if msg.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(msg["tool_calls"])]
        chunks.append(
            {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, **extras, "finish_reason": None}]}
        )
        chunks.append(
            {
                **head,
                "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": choice.get("finish_reason")}],
            }
        )
    else:
        head["object"] = "text_completion"
        chunks.append(
            {
                **head,
                **top,
                "choices": [
                    {
                        "index": 0,
                        "text": choice.get("text", ""),
                        "logprobs": None,
                        **extras,
                        "finish_reason": choice.get("finish_reason"),
                    }
                ],
            }
        )
    if include_usage and response.get("usage"):
        chunks.append({**head, "choices": [], "usage": response["usage"]})
    return chunks
