"""Tool calls: the typed record, and parsers that find calls in a model's output.

An action is what the policy produced: raw assistant text, or an OpenAI-style
assistant message (``{"role": "assistant", "content": ..., "tool_calls": [...]}``,
or the OpenAI SDK's message object).
A :class:`ToolCallParser` turns it into a :class:`ParsedAction`: the calls it
found and, separately, what could not be parsed. Parsing never raises for bad
model output; a malformed call is data the environment shows back to the model.

:class:`DefaultParser` reads, in order:

* OpenAI ``tool_calls`` (``function.arguments`` as a JSON string or an object);
* Hermes/Qwen text: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``
  (also unterminated at the end of the text, when generation stopped on the tag);
* Qwen3-Coder XML text: ``<function=name><parameter=p>value</parameter></function>``;
* a message that is only JSON calls (``{"name": ..., "arguments"|"parameters": ...}``
  or a list of them), optionally after Mistral's ``[TOOL_CALLS]`` or Llama's
  ``<|python_tag|>``.

Text inside a reasoning block (up to the last ``</think>``) is not searched.

Swap it by passing another object with a ``parse`` method to the environment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "ToolCall",
    "ParseFailure",
    "ParseError",
    "ParsedAction",
    "ToolCallParser",
    "DefaultParser",
    "as_plain_action",
]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call of a named tool with JSON arguments."""

    id: str
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def to_openai(self) -> dict[str, Any]:
        """The call as an entry of an OpenAI assistant message's ``tool_calls``."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(dict(self.arguments))},
        }


class ParseFailure(StrEnum):
    NO_CALL = "no_call"  # the output contains no tool call at all
    MALFORMED = "malformed"  # a call was started but is not valid JSON / XML
    BAD_SHAPE = "bad_shape"  # valid JSON, but no tool name or arguments that are not an object
    BAD_ACTION = "bad_action"  # the action is neither text nor an assistant message


@dataclass(frozen=True, slots=True)
class ParseError:
    reason: ParseFailure
    message: str  # said to the model, so it can correct itself
    raw: str = ""


@dataclass(frozen=True, slots=True)
class ParsedAction:
    """What a parser found in one action.

    ``answer_in`` says how the env answers the calls: ``"tool"`` messages (one per call, with its
    id), or ``"user"`` turns holding the result's text and images, for calls a model wrote in its
    text in a format of its own rather than as tool calls (the K2.5 GUI format,
    :mod:`boxgym.toolsets.gui_format`): their ids exist only here, and a tool message answering an
    id the model never wrote is not a valid chat history.
    """

    text: str  # the assistant's prose, tool-call markup included, as the model wrote it
    calls: tuple[ToolCall, ...] = ()
    errors: tuple[ParseError, ...] = ()
    answer_in: Literal["tool", "user"] = "tool"

    def to_message(self) -> dict[str, Any]:
        """The action as an OpenAI assistant message (for histories and records)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.calls:
            message["tool_calls"] = [call.to_openai() for call in self.calls]
        return message


@runtime_checkable
class ToolCallParser(Protocol):
    def parse(self, action: object, *, id_prefix: str = "call_") -> ParsedAction:
        """Find the tool calls in ``action``; ids of calls that carry none are ``id_prefix + index``."""


_HERMES = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.DOTALL)
_QWEN_XML = re.compile(r"<function=([^>\s]+)>(.*?)(?:</function>|\Z)", re.DOTALL)
_QWEN_PARAM = re.compile(r"<parameter=([^>\s]+)>\n?(.*?)\n?</parameter>", re.DOTALL)
_SHOWN = 200  # how much of a malformed call is quoted back to the model


def _short(raw: str) -> str:
    return raw if len(raw) <= _SHOWN else raw[:_SHOWN] + "..."


def _arguments(raw: object) -> Mapping[str, Any] | ParseError:
    # Some models emit arguments as a JSON-encoded string, some as an object; an
    # absent argument list means a call with no arguments.
    if raw is None:
        return {}
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            return ParseError(ParseFailure.MALFORMED, f"tool call arguments are not valid JSON: {exc}", _short(raw))
    if not isinstance(raw, Mapping):
        return ParseError(ParseFailure.BAD_SHAPE, "tool call arguments must be a JSON object", _short(repr(raw)))
    return dict(raw)


def _call(obj: object, call_id: str, raw: str) -> ToolCall | ParseError:
    if not isinstance(obj, Mapping):
        return ParseError(
            ParseFailure.BAD_SHAPE, 'a tool call must be an object {"name": ..., "arguments": {...}}', raw
        )
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return ParseError(ParseFailure.BAD_SHAPE, 'the tool call has no "name"', raw)
    args = _arguments(obj.get("arguments", obj.get("parameters")))
    if isinstance(args, ParseError):
        return args
    return ToolCall(id=call_id, name=name, arguments=args)


_BARE_PREFIXES = ("[TOOL_CALLS]", "<|python_tag|>")  # Mistral, Llama 3.1


def _bare_json_calls(text: str, id_prefix: str) -> list[ToolCall]:
    """Calls written as the whole message: a JSON object (or list of them) with a name and arguments.

    Only a message that is nothing but such JSON counts, so prose that quotes
    JSON is never mistaken for a call.
    """
    body = text.strip()
    for prefix in _BARE_PREFIXES:
        body = body.removeprefix(prefix).strip()
    if not body.startswith(("{", "[")):
        return []
    try:
        obj = json.loads(body)
    except json.JSONDecodeError:
        return []
    items = obj if isinstance(obj, list) else [obj]
    if not items or not all(
        isinstance(i, Mapping) and isinstance(i.get("name"), str) and ("arguments" in i or "parameters" in i)
        for i in items
    ):
        return []
    calls = [_call(item, f"{id_prefix}{index}", "") for index, item in enumerate(items)]
    good = [c for c in calls if isinstance(c, ToolCall)]
    return good if len(good) == len(calls) else []  # all of it is calls, or it is not a call at all


def as_plain_action(action: object) -> object:
    """An OpenAI SDK message object (``choices[0].message``) as the plain dict it stands for."""
    dump = getattr(action, "model_dump", None)
    if callable(dump) and not isinstance(action, (str, Mapping)):
        try:
            return dump(exclude_none=True)
        except Exception:  # noqa: BLE001 - not a pydantic model after all: parse it as it is
            return action
    return action


class DefaultParser:
    """OpenAI ``tool_calls``, Hermes/Qwen ``<tool_call>`` JSON and Qwen3-Coder XML."""

    def parse(self, action: object, *, id_prefix: str = "call_") -> ParsedAction:
        action = as_plain_action(action)
        if isinstance(action, str):
            return self._parse_text(action, id_prefix)
        if isinstance(action, Mapping):
            return self._parse_message(action, id_prefix)
        error = ParseError(
            ParseFailure.BAD_ACTION, "the action must be assistant text or an assistant message", _short(repr(action))
        )
        return ParsedAction(text="", errors=(error,))

    def _parse_message(self, message: Mapping[str, Any], id_prefix: str) -> ParsedAction:
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        raw_calls = message.get("tool_calls") or []
        if not raw_calls:
            # A server without a tool parser returns the calls inside the content.
            return self._parse_text(text, id_prefix)
        calls: list[ToolCall] = []
        errors: list[ParseError] = []
        for index, raw in enumerate(raw_calls):
            if not isinstance(raw, Mapping):
                errors.append(
                    ParseError(ParseFailure.BAD_SHAPE, "a tool_calls entry must be an object", _short(repr(raw)))
                )
                continue
            function = raw.get("function", raw)
            call_id = raw.get("id") if isinstance(raw.get("id"), str) and raw.get("id") else f"{id_prefix}{index}"
            result = _call(function, call_id, _short(json.dumps(raw, default=repr)))
            (errors if isinstance(result, ParseError) else calls).append(result)
        return ParsedAction(text=text, calls=tuple(calls), errors=tuple(errors))

    def _parse_text(self, text: str, id_prefix: str) -> ParsedAction:
        calls: list[ToolCall] = []
        errors: list[ParseError] = []
        # A call a reasoning model only considered inside <think> is not a call. The
        # chat template may have opened the block itself, so cut at the last </think>.
        visible = text.rsplit("</think>", 1)[-1]
        for match in _HERMES.finditer(visible):
            body = match.group(1)
            try:
                obj = json.loads(body)
            except json.JSONDecodeError as exc:
                errors.append(
                    ParseError(ParseFailure.MALFORMED, f"the <tool_call> is not valid JSON: {exc}", _short(body))
                )
                continue
            # Some models put several calls in one tag, as a JSON list.
            for item in obj if isinstance(obj, list) and obj else [obj]:
                result = _call(item, f"{id_prefix}{len(calls) + len(errors)}", _short(body))
                (errors if isinstance(result, ParseError) else calls).append(result)
        for match in _QWEN_XML.finditer(visible):
            params = {name: value for name, value in _QWEN_PARAM.findall(match.group(2))}
            calls.append(ToolCall(id=f"{id_prefix}{len(calls) + len(errors)}", name=match.group(1), arguments=params))
        if not calls and not errors:
            calls.extend(_bare_json_calls(visible, id_prefix))
        if not calls and not errors:
            errors.append(
                ParseError(
                    ParseFailure.NO_CALL,
                    'no tool call found; call a tool as <tool_call>{"name": "...", "arguments": {...}}</tool_call>',
                )
            )
        return ParsedAction(text=text, calls=tuple(calls), errors=tuple(errors))
