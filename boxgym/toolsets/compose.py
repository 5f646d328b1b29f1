"""Toolsets offered together, and the one tool every env can end with.

``compose(ShellToolset(), IPythonToolset())`` is one toolset with the tools of both: an env offers
shell + IPython, or a browser + ``submit``, without a class of its own. Each call goes to the
toolset that owns its tool's name; a name two toolsets define is refused when composing (say
which one you want by leaving it out of the other), and an unknown name is an observation that
lists the tools, as in every toolset.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from ..sandboxes.base import Sandbox
from ..trajectories.images import Image
from .base import ShowsScreen, ToolResult, Toolset, function_schema
from .calls import ToolCall

__all__ = ["ComposedToolset", "SubmitToolset", "compose"]

SUBMIT_SCHEMA = function_schema(
    "submit",
    "Finish the task. Call it once your work is complete; if the task asks for an answer, pass it as `answer`.",
    {"answer": {"type": "string"}},
    [],
)


def _names(toolset: Toolset) -> list[str]:
    return [schema["function"]["name"] for schema in toolset.schemas()]


class ComposedToolset:
    """The tools of several toolsets as one :class:`~boxgym.toolsets.base.Toolset`."""

    def __init__(self, *toolsets: Toolset) -> None:
        if not toolsets:
            raise ValueError("compose at least one toolset")
        self.toolsets = toolsets
        self._owner: dict[str, Toolset] = {}
        for toolset in toolsets:
            for name in _names(toolset):
                if name in self._owner:
                    raise ValueError(
                        f"tool {name!r} is in both {type(self._owner[name]).__name__} and {type(toolset).__name__}"
                    )
                self._owner[name] = toolset

    def schemas(self) -> list[dict[str, Any]]:
        return [schema for toolset in self.toolsets for schema in toolset.schemas()]

    async def opening_images(self, sandbox: Sandbox) -> tuple[Image, ...]:
        """What its toolsets that show a screen show at the start (none: no images). A GUI toolset
        among others thus starts its display at reset too, before the agent can run a command."""
        images: tuple[Image, ...] = ()
        for toolset in self.toolsets:
            if isinstance(toolset, ShowsScreen):
                images += await toolset.opening_images(sandbox)
        return images

    async def run(self, call: ToolCall, sandbox: Sandbox, *, timeout: float | None = None) -> ToolResult:
        owner = self._owner.get(call.name)
        if owner is None:
            content = f"error: unknown tool {call.name!r}; the tools are: {', '.join(self._owner)}"
            return ToolResult(call.id, call.name, content, ok=False)
        return await owner.run(call, sandbox, timeout=timeout)


def compose(*toolsets: Toolset) -> ComposedToolset:
    """One toolset with the tools of ``toolsets`` (see the module docstring)."""
    return ComposedToolset(*toolsets)


class SubmitToolset:
    """Only ``submit(answer?)``: ends the episode, for envs whose other tools have no way to."""

    def schemas(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(SUBMIT_SCHEMA)]

    async def run(self, call: ToolCall, sandbox: Sandbox, *, timeout: float | None = None) -> ToolResult:
        start = time.monotonic()
        answer = call.arguments.get("answer")
        unexpected = sorted(set(call.arguments) - {"answer"})
        if unexpected or not (answer is None or isinstance(answer, str)):
            why = f"unexpected argument(s) {', '.join(unexpected)}" if unexpected else "answer must be a string"
            return ToolResult(call.id, call.name, f"error: submit: {why}", ok=False)
        return ToolResult(
            call.id, call.name, "submitted", submitted=True, submission=answer, duration_s=time.monotonic() - start
        )
