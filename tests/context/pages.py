"""A long-episode env for the context tests: every step reads a long page."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from boxgym.gateway import Reply

READ = {"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}
INITIAL = [{"role": "system", "content": "Read every page."}, {"role": "user", "content": "Summarise the book."}]
IMAGE = {"type": "image_url", "image_url": {"url": "data:,"}}
FIGURE = {"role": "user", "content": [{"type": "text", "text": "Fig. 1"}, IMAGE]}


class PagesEnv:
    """Each step answers the call with a page of ``page_chars`` characters; step 2 adds an image
    message; the episode ends after ``steps`` steps."""

    def __init__(self, steps: int = 8, page_chars: int = 300) -> None:
        self.steps, self.page_chars, self.taken = steps, page_chars, 0

    async def areset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        self.taken = 0
        return [dict(m) for m in INITIAL], {"tools": [READ], "episode_id": (options or {}).get("episode_id")}

    async def astep(self, action: Any):
        self.taken += 1
        [call] = action["tool_calls"]
        page = f"page {self.taken}: " + "word " * (self.page_chars // 5)
        observation = [{"role": "tool", "tool_call_id": call["id"], "content": page}]
        if self.taken == 2:
            observation.append(dict(FIGURE))
        done = self.taken >= self.steps
        return observation, 1.0 if done else 0.0, done, False, {}

    async def aclose(self) -> None:
        pass


def readings(steps: int = 8) -> list[Reply]:
    return [Reply.call("read", page=i) for i in range(steps)]


def history_before(messages: list[dict[str, Any]], step: int) -> list[dict[str, Any]]:
    """The full history up to the call of ``step``: everything before its assistant message."""
    seen = -1
    for index, message in enumerate(messages):
        if message.get("role") == "assistant":
            seen += 1
            if seen == step:
                return messages[:index]
    return messages
