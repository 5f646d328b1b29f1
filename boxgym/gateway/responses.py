"""The Responses API (``POST /v1/responses``) for agents built on it, served over chat completions.

The gateway turns a Responses request into a chat-completions request to the engine, so its
token ids are recorded exactly as for chat (the engine's own ids, through the same adapters),
and turns the answer back into a Responses object, or, streaming, into Responses events as the
engine's chunks arrive. The record keeps the client's Responses body as its request and the
Responses object as its response.

What maps (request): ``instructions`` (a system message first), ``input`` as a string or a list
of items (messages with text parts, ``function_call`` and ``function_call_output``; an assistant
message and the function calls after it become one assistant turn, as the engine sampled it),
function ``tools``, ``tool_choice``, ``max_output_tokens``, ``temperature``, ``top_p``,
``parallel_tool_calls``, ``text.format`` (as ``response_format``). What is refused with a 400:
``previous_response_id`` (the gateway keeps no conversation state: send the whole input),
``background``, hosted tools (web search, file search, ...). Reasoning items are dropped.
Answer: one ``message`` item (``output_text``) if the engine wrote text, then one
``function_call`` item per tool call; ``status`` is ``incomplete`` when the token limit cut it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..errors import GatewayRefused
from ._json import dumps

__all__ = ["chat_body", "response_object", "ResponseEvents", "replay_events"]

_PASSED = ("model", "temperature", "top_p", "parallel_tool_calls", "user", "seed", "stream")


def _refuse(message: str, param: str | None = None) -> GatewayRefused:
    return GatewayRefused(message, param=param)


def _text(content: Any, param: str) -> str | list[dict[str, Any]]:
    """A Responses content value as chat content: a string when every part is text."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _refuse(f"{param} must be a string or an array of content parts", param)
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        else:
            raise _refuse(f"{param}[{i}]: content parts of type {kind!r} are not supported", f"{param}[{i}]")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise _refuse("'instructions' must be a string", "instructions")
        messages.append({"role": "system", "content": instructions})
    items = body.get("input")
    if isinstance(items, str):
        return [*messages, {"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise _refuse("'input' must be a string or a non-empty array of items", "input")
    for i, item in enumerate(items):
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise _refuse(f"{param} must be an object", param)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise _refuse(f"{param}.role must be user, assistant, system or developer", param)
            messages.append({"role": role, "content": _text(item.get("content"), f"{param}.content")})
        elif kind == "function_call":
            name, args, call_id = item.get("name"), item.get("arguments"), item.get("call_id")
            if not (isinstance(name, str) and isinstance(args, str) and isinstance(call_id, str)):
                raise _refuse(f"{param}: a function_call needs string call_id, name and arguments", param)
            call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and isinstance(last.get("content"), str | None):
                last.setdefault("tool_calls", []).append(call)  # one turn: the text, then its calls
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str):
                raise _refuse(f"{param}: a function_call_output needs a string call_id", param)
            messages.append({"role": "tool", "tool_call_id": call_id, "content": _text(output, f"{param}.output")})
        elif kind == "reasoning":
            continue  # nothing the engine should see again
        else:
            raise _refuse(f"{param}: items of type {kind!r} are not supported", param)
    return messages


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _refuse("'tools' must be an array", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("name"), str):
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise _refuse(f"tools[{i}]: only function tools are supported (got {kind!r})", f"tools[{i}]")
        fn = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
        out.append({"type": "function", "function": fn})
    return out


def chat_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """The chat-completions request that answers a Responses request (a GatewayRefused if it cannot)."""
    if body.get("previous_response_id") is not None:
        raise _refuse(
            "previous_response_id is not supported: the gateway keeps no conversation state; send the whole input",
            "previous_response_id",
        )
    if body.get("background"):
        raise _refuse("background responses are not supported", "background")
    chat: dict[str, Any] = {k: body[k] for k in _PASSED if body.get(k) is not None}
    chat["messages"] = _messages(body)
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif choice is not None:
        chat["tool_choice"] = choice
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    return chat


def _msg_id(call_id: str) -> str:
    return f"msg_{call_id}"


def _fc_id(call_id: str, index: int) -> str:
    return f"fc_{call_id}_{index}"


def _usage(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    n_in, n_out = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    return {
        "input_tokens": n_in,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": n_out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": n_in + n_out,
    }


def _shell(body: Mapping[str, Any], call_id: str, created: int, status: str) -> dict[str, Any]:
    """The fields of a Responses object that echo the request."""
    return {
        "id": call_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model"),
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "temperature": body.get("temperature"),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p"),
        "truncation": "disabled",
        "usage": None,
        "metadata": body.get("metadata") or {},
    }


def _message_item(call_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": []}
    return {"type": "message", "id": _msg_id(call_id), "status": status, "role": "assistant", "content": [part]}


def _call_item(call_id: str, index: int, call: Mapping[str, Any], status: str = "completed") -> dict[str, Any]:
    fn = call.get("function") or {}
    return {
        "type": "function_call",
        "id": _fc_id(call_id, index),
        "call_id": call.get("id") or _fc_id(call_id, index),
        "name": fn.get("name", ""),
        "arguments": fn.get("arguments", ""),
        "status": status,
    }


def response_object(chat: Mapping[str, Any], body: Mapping[str, Any], call_id: str) -> dict[str, Any]:
    """The Responses object of a chat completion (as the engine answered, or assembled from a stream)."""
    choice = (chat.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    incomplete = choice.get("finish_reason") == "length"
    created = chat.get("created") if isinstance(chat.get("created"), int) else int(time.time())
    out = _shell(body, call_id, created, "incomplete" if incomplete else "completed")
    if incomplete:
        out["incomplete_details"] = {"reason": "max_output_tokens"}
    if message.get("content"):
        out["output"].append(_message_item(call_id, message["content"]))
    for i, call in enumerate(message.get("tool_calls") or ()):
        out["output"].append(_call_item(call_id, i, call))
    out["usage"] = _usage(chat.get("usage"))
    return out


class ResponseEvents:
    """Responses stream events from chat-completion chunks, as they arrive.

    ``start()`` opens the stream, ``chunk(c)`` turns one chat chunk into events, and
    ``finish(response)`` closes the open items and sends ``response.completed`` with the final
    object (from :func:`response_object`, whose item ids are the ones streamed here).
    """

    def __init__(self, body: Mapping[str, Any], call_id: str) -> None:
        self.body, self.call_id = body, call_id
        self.seq = 0
        self.outputs = 0  # output items opened so far
        self.text: list[str] | None = None  # the open message item's text
        self.text_index = 0
        self.call: tuple[int, int, dict[str, Any]] | None = None  # (tool call index, output index, call) open
        self.created = int(time.time())

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + dumps(data) + b"\n\n"

    def start(self) -> bytes:
        shell = _shell(self.body, self.call_id, self.created, "in_progress")
        return self._event("response.created", response=shell) + self._event("response.in_progress", response=shell)

    def chunk(self, chunk: Mapping[str, Any]) -> bytes:
        out = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if self.text is None:
                    out.append(self._close_call())
                    out.append(self._open_text())
                self.text.append(delta["content"])  # type: ignore[union-attr]
                out.append(self._text_event("response.output_text.delta", delta=delta["content"]))
            for call in delta.get("tool_calls") or ():
                out.append(self._tool_delta(call))
        return b"".join(out)

    def _open_text(self) -> bytes:
        self.text, self.text_index = [], self.outputs
        self.outputs += 1
        item = _message_item(self.call_id, "", "in_progress")
        item["content"] = []
        part = {"type": "output_text", "text": "", "annotations": []}
        return self._event("response.output_item.added", output_index=self.text_index, item=item) + self._text_event(
            "response.content_part.added", part=part
        )

    def _text_event(self, kind: str, **fields: Any) -> bytes:
        return self._event(kind, item_id=_msg_id(self.call_id), output_index=self.text_index, content_index=0, **fields)

    def _close_text(self) -> bytes:
        if self.text is None:
            return b""
        text, self.text = "".join(self.text), None
        part = {"type": "output_text", "text": text, "annotations": []}
        return (
            self._text_event("response.output_text.done", text=text)
            + self._text_event("response.content_part.done", part=part)
            + self._event(
                "response.output_item.done", output_index=self.text_index, item=_message_item(self.call_id, text)
            )
        )

    def _tool_delta(self, call: Mapping[str, Any]) -> bytes:
        index = call.get("index", 0)
        fn = call.get("function") or {}
        out = b""
        if self.call is None or self.call[0] != index:
            out = self._close_text() + self._close_call()
            state = {"id": call.get("id"), "function": {"name": fn.get("name") or "", "arguments": ""}}
            self.call = (index, self.outputs, state)
            self.outputs += 1
            item = _call_item(self.call_id, index, state, "in_progress")
            out += self._event("response.output_item.added", output_index=self.call[1], item=item)
        else:
            state = self.call[2]
            state["id"] = state["id"] or call.get("id")
            state["function"]["name"] += fn.get("name") or ""
        if fn.get("arguments"):
            state["function"]["arguments"] += fn["arguments"]
            out += self._event(
                "response.function_call_arguments.delta",
                item_id=_fc_id(self.call_id, index),
                output_index=self.call[1],
                delta=fn["arguments"],
            )
        return out

    def _close_call(self) -> bytes:
        if self.call is None:
            return b""
        index, output_index, state = self.call
        self.call = None
        item = _call_item(self.call_id, index, state)
        return self._event(
            "response.function_call_arguments.done",
            item_id=item["id"],
            output_index=output_index,
            arguments=item["arguments"],
        ) + self._event("response.output_item.done", output_index=output_index, item=item)

    def finish(self, response: Mapping[str, Any]) -> bytes:
        kind = "response.incomplete" if response.get("status") == "incomplete" else "response.completed"
        return self._close_text() + self._close_call() + self._event(kind, response=response)

    def error(self, status: int, type_: str, message: str) -> bytes:
        """The stream failed after it began: the SDKs raise on a ``response.failed``."""
        failed = _shell(self.body, self.call_id, self.created, "failed")
        failed["error"] = {"code": type_, "message": message}
        return self._event("response.failed", response=failed)


def replay_events(response: Mapping[str, Any], body: Mapping[str, Any]) -> bytes:
    """A whole recorded Responses object as a stream (an SDK retry of a streamed call)."""
    events = ResponseEvents(body, str(response.get("id")))
    out = [events.start()]
    calls = 0
    for item in response.get("output") or ():
        if item.get("type") == "message":
            text = "".join(p.get("text", "") for p in item.get("content") or ())
            out.append(events.chunk({"choices": [{"index": 0, "delta": {"content": text}}]}))
        elif item.get("type") == "function_call":
            fn = {"name": item.get("name"), "arguments": item.get("arguments")}
            call = {"index": calls, "id": item.get("call_id"), "function": fn}
            calls += 1
            out.append(events.chunk({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}))
    out.append(events.finish(response))
    return b"".join(out)
