"""The toolset contract: named tools with OpenAI schemas, run against one sandbox.

A toolset never raises for the agent's mistakes (an unknown tool, bad
arguments, a missing file, a refusal of the sandbox, a command that fails or
times out): each becomes a :class:`ToolResult` with ``ok=False`` that the model
reads. It lets the sandbox's own infrastructure errors
(:class:`~boxgym.errors.SandboxBroken`, :class:`~boxgym.errors.SandboxClosed`,
:class:`~boxgym.errors.EngineError`) propagate, so the environment can report
them as infrastructure failures, and :class:`~boxgym.errors.SandboxWrecked`
(the agent left the sandbox unusable), which ends the episode with a reward of 0.

A toolset that must set the sandbox up before the agent's first step and show where the agent
starts (a browser opens the task's page) is :class:`StartsEpisode`: the env calls its
``start_episode(sandbox, task)`` at reset and adds the :class:`Opening` it returns to the first
user message.

A toolset whose tools depend on the episode (a simulated world, :mod:`boxgym.simulated`:
its tools come from the task, and it keeps a world state per episode) is an
:class:`EpisodeToolset`: the env opens one :class:`EpisodeTools` per episode
(``open_episode(task, episode_id)``, after the sandbox is ready), runs that episode's
calls on it, shows its ``world()`` to the judge (:attr:`FinishedEpisode.world
<boxgym.judges.base.FinishedEpisode.world>`) and closes it when the episode ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import ToolCallError
from ..sandboxes.base import TRUNCATION_MARKER, Sandbox
from ..trajectories.images import Image, image_part
from ..trajectories.records import EndReason
from .calls import ToolCall

if TYPE_CHECKING:
    from ..envs.tasks import Task
    from ..judges.base import EpisodeWorld

__all__ = [
    "EpisodeTools",
    "EpisodeToolset",
    "Opening",
    "StartsEpisode",
    "ToolResult",
    "Toolset",
    "cap_text",
    "function_schema",
]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The outcome of one tool call, as the model will see it."""

    call_id: str
    name: str
    content: str
    ok: bool = True
    submitted: bool = False  # the call ends the episode (``submit``)
    # Why it ends, when that is not the agent's own submit (a simulated user ended the conversation).
    ends_as: EndReason | None = None
    submission: str | None = None  # what was submitted (an answer, a query), if anything
    duration_s: float = 0.0
    detail: Mapping[str, Any] = field(default_factory=dict)  # for the record: exit code, timeout, truncation
    # Images the call produced (a plot, a screenshot). The env shows them to the policy in one
    # user message after the step's tool messages (boxgym.trajectories.images).
    images: tuple[Image, ...] = ()

    def to_message(self) -> dict[str, Any]:
        # Only the keys every OpenAI-compatible server and chat template accepts.
        return {"role": "tool", "tool_call_id": self.call_id, "content": self.content}

    def to_user_message(self) -> dict[str, Any]:
        """The result as a user turn, its images inline after its text: the answer to a call the
        model wrote in its text rather than as a tool call (:attr:`ParsedAction.answer_in
        <boxgym.toolsets.calls.ParsedAction.answer_in>`)."""
        if not self.images:
            return {"role": "user", "content": self.content}
        return {"role": "user", "content": [{"type": "text", "text": self.content}, *(image_part(i) for i in self.images)]}


@runtime_checkable
class Toolset(Protocol):
    def schemas(self) -> list[dict[str, Any]]:
        """The tools in OpenAI function format (a fresh list on every call)."""

    async def run(self, call: ToolCall, sandbox: Sandbox, *, timeout: float | None = None) -> ToolResult:
        """Run one call; ``timeout`` caps any command it starts (the episode's time left)."""


@dataclass(frozen=True, slots=True)
class Opening:
    """What the agent sees of its tools before its first step (the page a browser opened),
    added to the first user message after the task's prompt."""

    text: str
    images: tuple[Image, ...] = ()


@runtime_checkable
class StartsEpisode(Protocol):
    """A toolset that sets the sandbox up for the task before the agent's first step and shows
    where the agent starts: a browser opens the task's page. The env calls it at reset, once the
    task's files are placed; what it raises is sorted as any failure at reset."""

    async def start_episode(self, sandbox: Sandbox, task: Task) -> Opening | None: ...


@runtime_checkable
class ShowsScreen(Protocol):
    """A toolset whose agent sees a screen (:class:`~boxgym.toolsets.gui.GuiToolset`): the env puts
    what it shows into the first observation, after the task, once the sandbox is set up (the
    judge's ``prepare`` included: an app under test is open by then)."""

    async def opening_images(self, sandbox: Sandbox) -> tuple[Image, ...]:
        """The images the agent starts from (a screenshot)."""


@runtime_checkable
class EpisodeTools(Toolset, Protocol):
    """The tools of one episode, opened by an :class:`EpisodeToolset` (see the module docstring)."""

    def world(self) -> EpisodeWorld | None:
        """What the judge reads of this episode's tools (a simulated world's final state), if anything."""

    async def aclose(self) -> None:
        """Release what the episode held (model clients); idempotent."""


@runtime_checkable
class EpisodeToolset(Protocol):
    """A toolset that opens tools of their own for each episode (see the module docstring)."""

    async def open_episode(self, task: Task, episode_id: str) -> EpisodeTools:
        """The tools of the episode ``episode_id`` of ``task``; a task it cannot serve is a TaskError."""


def function_schema(name: str, description: str, properties: Mapping[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": dict(properties), "required": required},
        },
    }


Params = dict[str, dict[str, tuple[str, bool]]]  # tool -> argument -> (JSON type, required)


def schema_params(schemas: Sequence[Mapping[str, Any]]) -> Params:
    """Each tool's arguments, their JSON types and whether they are required, from its schema."""
    return {
        spec["function"]["name"]: {
            name: (prop["type"], name in spec["function"]["parameters"]["required"])
            for name, prop in spec["function"]["parameters"]["properties"].items()
        }
        for spec in schemas
    }


def checked_arguments(call: ToolCall, params: Params) -> dict[str, Any]:
    """``call``'s arguments checked against ``params``; a ``ToolCallError`` (the agent's mistake,
    an observation) names an unknown tool, an unexpected, missing or mistyped argument. Text-form
    calls (Qwen XML, Hermes) carry every value as a string: integers (models also write ids as
    ``[12]``) and booleans are read from it."""
    tool = params.get(call.name)
    if tool is None:
        raise ToolCallError(f"unknown tool {call.name!r}; the tools are: {', '.join(params)}")
    unexpected = sorted(set(call.arguments) - set(tool))
    if unexpected:
        raise ToolCallError(f"{call.name}: unexpected argument(s) {', '.join(unexpected)}")
    args: dict[str, Any] = {}
    for name, (kind, required) in tool.items():
        value = call.arguments.get(name)
        if value is None:
            if required:
                raise ToolCallError(f"{call.name}: missing required argument {name!r}")
            continue
        args[name] = _coerce(call.name, name, kind, value)
    return args


def _coerce(tool: str, name: str, kind: str, value: Any) -> Any:
    if kind == "integer":
        if isinstance(value, str) and value.strip().strip("[]").strip().lstrip("-").isdigit():
            value = int(value.strip().strip("[]"))
        if not isinstance(value, int) or isinstance(value, bool):
            raise ToolCallError(f"{tool}: argument {name!r} must be an integer")
    elif kind == "boolean":
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            value = value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise ToolCallError(f"{tool}: argument {name!r} must be true or false")
    elif not isinstance(value, str):
        raise ToolCallError(f"{tool}: argument {name!r} must be a string")
    return value


def cap_text(text: str, limit: int) -> str:
    """Cut ``text`` to about ``limit`` characters, keeping head and tail, and say so."""
    if len(text) <= limit:
        return text
    half = limit // 2
    marker = TRUNCATION_MARKER.format(omitted=len(text) - 2 * half).replace("bytes", "characters")
    return f"{text[:half]}\n{marker}\n{text[len(text) - half :]}"
