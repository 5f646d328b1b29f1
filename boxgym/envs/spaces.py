"""Gymnasium spaces for chat: real model text, OpenAI messages.

Gymnasium's ``Text`` space allows only alphanumerics by default and a fixed
maximum length; model output has any Unicode, markup and JSON. These spaces
accept what a chat model really reads and writes:

* :class:`ChatMessages`: an observation, a list of OpenAI chat message dicts
  (``role`` in system/user/assistant/tool, ``content`` a string or a list of
  content parts, optional ``tool_call_id``/``name``/``tool_calls``);
* :class:`AssistantAction`: an action, assistant text or an OpenAI assistant
  message dict;
* :class:`FreeText`: any string up to a length (the text part of a ``Dict`` observation).

Neither is flattenable into arrays; a vector env over them keeps Python
objects (``gymnasium.vector`` batches unknown spaces as tuples).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.spaces import Space

__all__ = ["ChatMessages", "AssistantAction", "FreeText"]

_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})
# What sample() draws from: printable ASCII plus some of what models emit.
_SAMPLE_CHARS = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n\t{}[]<>\"':,./\\-_=+*#`|é中ü→✓")


def _sample_text(rng: np.random.Generator, max_chars: int) -> str:
    length = int(rng.integers(0, max_chars + 1))
    return "".join(rng.choice(_SAMPLE_CHARS, size=length))


def _is_message(message: object, max_chars: int) -> bool:
    if not isinstance(message, Mapping) or message.get("role") not in _ROLES:
        return False
    content = message.get("content")
    if isinstance(content, str):
        return len(content) <= max_chars
    if content is None:
        return message.get("role") == "assistant"
    return isinstance(content, Sequence) and all(isinstance(part, Mapping) for part in content)


class ChatMessages(Space[list[dict[str, Any]]]):
    """A list of OpenAI chat messages (the observation of every boxgym env)."""

    def __init__(self, *, max_chars: int = 1_000_000, seed: int | np.random.Generator | None = None) -> None:
        self.max_chars = max_chars  # per message content
        super().__init__(None, None, seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> list[dict[str, Any]]:
        return [{"role": "user", "content": _sample_text(self.np_random, 64)}]

    def contains(self, x: Any) -> bool:
        return isinstance(x, list) and all(_is_message(m, self.max_chars) for m in x)

    def __repr__(self) -> str:
        return f"ChatMessages(max_chars={self.max_chars})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChatMessages) and other.max_chars == self.max_chars


class AssistantAction(Space[Any]):
    """Assistant output: a string, or an OpenAI assistant message (with ``tool_calls``)."""

    def __init__(self, *, max_chars: int = 1_000_000, seed: int | np.random.Generator | None = None) -> None:
        self.max_chars = max_chars
        super().__init__(None, None, seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        return _sample_text(self.np_random, 256)

    def contains(self, x: Any) -> bool:
        if isinstance(x, str):
            return len(x) <= self.max_chars
        return _is_message(x, self.max_chars) and x.get("role") == "assistant"

    def __repr__(self) -> str:
        return f"AssistantAction(max_chars={self.max_chars})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AssistantAction) and other.max_chars == self.max_chars


class FreeText(Space[str]):
    """Any string of at most ``max_chars`` characters: the text beside a screen in a ``Dict``
    observation (:class:`boxgym.envs.screen.ScreenObservation`). Gymnasium's ``Text`` space takes
    a fixed character set; tool results and instructions hold any Unicode."""

    def __init__(self, *, max_chars: int = 1_000_000, seed: int | np.random.Generator | None = None) -> None:
        self.max_chars = max_chars
        super().__init__(None, None, seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        return _sample_text(self.np_random, min(self.max_chars, 256))

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_chars

    def __repr__(self) -> str:
        return f"FreeText(max_chars={self.max_chars})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FreeText) and other.max_chars == self.max_chars
