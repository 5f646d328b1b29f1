"""The tools of a simulated env: answered by a world model, some run for real, one talks to a user.

:class:`SimulatedToolset` is an :class:`~boxgym.toolsets.EpisodeToolset`: for each episode the
env opens :class:`SimulatedTools` from the task's spec (:class:`~boxgym.simulated.spec.WorldTask`):

* a **simulated** tool: the arguments are checked against its parameter schema (what does not
  fit is the agent's error, an observation, and the world model is not asked), then the world
  model answers (:class:`~boxgym.simulated.world.WorldModel`) and the world state moves on;
* a **real** tool (``real = true`` in the spec): run in the sandbox by the real toolset
  (:class:`~boxgym.toolsets.ShellToolset` by default), its result told to the world model with
  the next simulated call, so one episode mixes both;
* ``message_user`` when the task has a simulated user (:mod:`boxgym.simulated.user`): the reply,
  and the end of the episode when the user ends the conversation;
* ``submit`` unless the spec says ``submit = false``.

Each simulated call's event in the step record carries the world model's call ids (the
gateway's records under ``<episode>.world``), its attempts, and the new state when it changed,
so the record shows how the world moved. At the end the judge reads a :class:`WorldOutcome`:
the final state, the user's conversation and how it ended, and what the simulators cost.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import TaskError
from ..judges.base import Evidence
from ..modelcalls import ModelClient, ModelEndpoint, Usage, role_episode_id
from ..sandboxes.base import Sandbox
from ..toolsets.base import ToolResult, Toolset, cap_text, function_schema
from ..toolsets.calls import ToolCall
from ..toolsets.compose import SubmitToolset
from ..toolsets.shell import ShellToolset
from ..trajectories.records import EndReason
from .checks import schema_errors
from .spec import MESSAGE_USER, SUBMIT, WorldTask
from .user import Ending, UserSimulator
from .world import WorldModel, WorldModelConfig

if TYPE_CHECKING:
    from ..envs.tasks import Task

__all__ = ["SimulatedToolset", "SimulatedTools", "WorldOutcome", "WORLD_ROLE", "USER_ROLE"]

#: The suffixes of the episode ids the world model's and the simulated user's calls are made under.
WORLD_ROLE = "world"
USER_ROLE = "user"

_MESSAGE_USER_SCHEMA = function_schema(
    MESSAGE_USER,
    "Send a message to the user you are helping and get their reply. Ask them for what you need to know, "
    "and tell them what you did.",
    {"message": {"type": "string", "description": "what you say to the user"}},
    ["message"],
)


@dataclass(frozen=True, slots=True)
class WorldOutcome:
    """What a simulated episode's judge reads (:attr:`FinishedEpisode.world`)."""

    task: WorldTask
    state: Mapping[str, Any]  # the final world state
    conversation: tuple[tuple[str, str], ...] = ()  # with the simulated user: (who, text), who "agent" or "user"
    ended: Ending | None = None  # how the user ended the conversation, if they did
    world_usage: Usage = field(default_factory=Usage)
    user_usage: Usage = field(default_factory=Usage)

    def evidence(self) -> tuple[Evidence, ...]:
        """What a judge model is shown besides the transcript: the user's goal, the conversation, the states."""
        items: list[Evidence] = []
        user = self.task.user
        if user is not None:
            goal = user.goal + (f"\n(Who they are: {user.persona})" if user.persona else "")
            items.append(Evidence("The user's goal, which the agent was not told and had to find out", goal, True))
            said = "\n".join(f"[{who}] {text}" for who, text in self.conversation)
            how = {"goal_met": "the user said the goal was met", "refused": "the user ended it as refused"}
            ending = how.get(self.ended or "", "the user did not end it")
            items.append(Evidence(f"The conversation with the user ({ending})", said))
        items.append(Evidence("The world state at the start (JSON)", _dump(self.task.state), True))
        items.append(Evidence("The world state at the end (JSON)", _dump(self.state)))
        return tuple(items)

    def costs(self) -> str:
        """What the simulators cost the episode, in a line for the verdict's messages."""
        parts = [f"world model {_usage(self.world_usage)}"]
        if self.task.user is not None:
            parts.append(f"user model {_usage(self.user_usage)}")
        return "simulators: " + "; ".join(parts)


def _usage(usage: Usage) -> str:
    return f"{usage.calls} calls, {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens"


def _dump(state: Mapping[str, Any]) -> str:
    return json.dumps(state, ensure_ascii=False, sort_keys=True)


class SimulatedToolset:
    """The toolset of ``boxgym/Simulated-v0``: opens :class:`SimulatedTools` per episode.

    ``world`` is the world model's endpoint, ``user`` the simulated user's (default: the world
    model's); both are :class:`~boxgym.modelcalls.ModelEndpoint` (a gateway gives each call
    its episode's role id, ``<episode>.world`` or ``<episode>.user``). ``real`` runs the tools a
    spec marks real (default: the shell toolset). A call that needs an endpoint nobody gave is
    a ``ValueError``: a configuration bug, raised, not an observation.
    """

    def __init__(
        self,
        world: ModelEndpoint | None = None,
        *,
        user: ModelEndpoint | None = None,
        real: Toolset | None = None,
        config: WorldModelConfig = WorldModelConfig(),
        max_output: int = 16_000,
    ) -> None:
        self.world_endpoint = world
        self.user_endpoint = user if user is not None else world
        self.real = real if real is not None else ShellToolset()
        self.config = config
        self.max_output = max_output

    async def open_episode(self, task: Task, episode_id: str) -> SimulatedTools:
        if not isinstance(task.oracle, WorldTask):
            raise TaskError(f"task {task.id} is not a simulated task (its oracle is {type(task.oracle).__name__})")
        return SimulatedTools(self, task.oracle, task.prompt, episode_id)


class SimulatedTools:
    """One episode's tools (see the module docstring); the env closes them with the episode."""

    def __init__(self, toolset: SimulatedToolset, task: WorldTask, prompt: str, episode_id: str) -> None:
        spec = task.world
        self.task = task
        self.max_output = toolset.max_output
        self.real = toolset.real
        real_schemas = {s["function"]["name"]: s for s in toolset.real.schemas()}
        self._real_schemas = {}
        for tool in spec.tools:
            if tool.real:
                if tool.name not in real_schemas:
                    raise TaskError(f"{spec.id}: the real tool {tool.name!r} is not one of {', '.join(real_schemas)}")
                self._real_schemas[tool.name] = real_schemas[tool.name]
        self._world_client = None if toolset.world_endpoint is None else ModelClient(toolset.world_endpoint)
        self._user_client = None
        self.model = WorldModel(  # without a client, a call that needs one is a ValueError
            self._world_client,
            role_episode_id(episode_id, WORLD_ROLE),
            spec,
            task.state,
            toolset.config,
        )
        self.user: UserSimulator | None = None
        if task.user is not None:
            if toolset.user_endpoint is not None:
                self._user_client = ModelClient(toolset.user_endpoint)
            self.user = UserSimulator(
                self._user_client,
                role_episode_id(episode_id, USER_ROLE),
                task.user,
                prompt,
                toolset.config.reasks,
                toolset.config.call_retries,
            )

    def schemas(self) -> list[dict[str, Any]]:
        schemas = [self._real_schemas[t.name] if t.real else t.schema() for t in self.task.world.tools]
        if self.user is not None:
            schemas.append(_MESSAGE_USER_SCHEMA)
        if self.task.world.submit:
            schemas += SubmitToolset().schemas()
        return json.loads(json.dumps(schemas))  # a fresh copy: callers keep and may change them

    async def run(self, call: ToolCall, sandbox: Sandbox, *, timeout: float | None = None) -> ToolResult:
        start = time.monotonic()
        if call.name in self._real_schemas:
            result = await self.real.run(call, sandbox, timeout=timeout)
            self.model.saw_real(call, result)
            return result
        if call.name == SUBMIT and self.task.world.submit:
            return await SubmitToolset().run(call, sandbox, timeout=timeout)
        if call.name == MESSAGE_USER and self.user is not None:
            return await self._message_user(call, timeout, start)
        tool = self.task.world.tool(call.name)
        if tool is None:
            names = ", ".join(s["function"]["name"] for s in self.schemas())
            content = f"error: unknown tool {call.name!r}; the tools are: {names}"
            return ToolResult(call.id, call.name, content, ok=False)
        problems = schema_errors(call.arguments, tool.parameters or {})
        if problems:
            content = f"error: the arguments do not fit {tool.name}'s parameters: {'; '.join(problems)}"
            return ToolResult(call.id, call.name, content, ok=False, duration_s=time.monotonic() - start)
        async with asyncio.timeout(timeout):
            answer, answers = await self.model.answer(tool, call)
        detail: dict[str, Any] = {
            "simulated": True,
            "world_calls": [a.call_id for a in answers],
            "attempts": len(answers),
            "state_changed": answer.state is not None,
        }
        if answer.state is not None:
            detail["state"] = answer.state
        return ToolResult(
            call.id,
            call.name,
            cap_text(answer.content(), self.max_output),
            ok=answer.error is None,
            duration_s=time.monotonic() - start,
            detail=detail,
        )

    async def _message_user(self, call: ToolCall, timeout: float | None, start: float) -> ToolResult:
        assert self.user is not None
        message = call.arguments.get("message")
        unexpected = sorted(set(call.arguments) - {"message"})
        if not isinstance(message, str) or not message.strip() or unexpected:
            why = f"unexpected argument(s) {', '.join(unexpected)}" if unexpected else "message must be non-empty text"
            return ToolResult(call.id, call.name, f"error: {MESSAGE_USER}: {why}", ok=False)
        async with asyncio.timeout(timeout):
            reply, answers = await self.user.reply(message)
        content = reply.text or "(no reply)"
        if reply.ended is not None:
            content += "\n[The user ended the conversation.]"
        return ToolResult(
            call.id,
            call.name,
            cap_text(content, self.max_output),
            submitted=reply.ended is not None,
            ends_as=EndReason.USER_ENDED if reply.ended is not None else None,
            duration_s=time.monotonic() - start,
            detail={"user_calls": [a.call_id for a in answers], "attempts": len(answers), "user_ended": reply.ended},
        )

    def world(self) -> WorldOutcome:
        user = self.user
        return WorldOutcome(
            self.task,
            self.model.state,
            tuple(user.conversation) if user is not None else (),
            user.ended if user is not None else None,
            Usage(**self.model.usage.to_json()),
            Usage(**user.usage.to_json()) if user is not None else Usage(),
        )

    async def aclose(self) -> None:
        try:
            if self._world_client is not None:
                await self._world_client.aclose()
        finally:
            if self._user_client is not None:
                await self._user_client.aclose()
