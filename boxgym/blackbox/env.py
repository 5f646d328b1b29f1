"""A black-box environment: an external simulator run in a sandbox and exposed unchanged.

The simulator (ScienceWorld's JVM, a game engine, anything with a text interface) runs in the
sandbox as a program speaking JSON lines (:mod:`boxgym.blackbox.program`). :class:`BlackBoxEnv`
keeps one sandbox, and the program in it, across episodes: a reset asks the simulator to load
the next task, with no new container and no new process. Its pieces:

=========== ================================================================
blackbox    a :class:`BlackBox`: the program, and how to reset and step it
provider    hands out the sandbox (``gym.make``: a warm pool of the simulator's image)
tools       an optional toolset offered beside the simulator's (a shell): since the agent may
            then change the sandbox, each episode gets a fresh one (and starts the program anew)
limits      :class:`~boxgym.envs.EpisodeLimits`: turns (truncation), calls per turn, seconds
writer      an optional :class:`~boxgym.trajectories.TrajectoryWriter` (records as BoxEnv's)
=========== ================================================================

``await areset(seed=None, options=None) -> (observation, info)``
    ``observation`` is ``[system, user]``: the black box's system prompt, and the simulator's
    first text. ``options`` are the black box's (``task_id`` replays a task exactly) and
    ``episode_id``; a seed picks the task reproducibly. ``info``: ``tools``, ``task_id``,
    ``metadata``, ``episode_id``, ``timings`` (``acquire_s`` when a sandbox was acquired,
    ``simulator_start_s`` when the program was started, ``reset_s``), ``infra_failure``, ``error``.

``await astep(action) -> (observation, reward, terminated, truncated, info)``
    The action is the simulator's command as text (what follows a ``</think>``, stripped), or
    an assistant message whose tool calls are ``act(command)`` and ``valid_actions(contains?)``
    (and the extra tools'). A text command is answered by one ``user`` message with the
    simulator's text; calls by one ``tool`` message each. ``reward`` is the simulator's, summed
    over the step's commands; ``terminated``/``truncated`` are the simulator's, and the turn
    budget and the episode's deadline truncate too. ``info["simulator"]`` is what the
    simulator reported with its last command (ScienceWorld: score, moves).

Failures are sorted as everywhere in boxgym (:func:`boxgym.errors.fault_of`): a simulator or
sandbox that breaks ends the episode as an infrastructure failure (``info["infra_failure"]``,
no reward to train on; the next reset starts on a fresh sandbox); a malformed option raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
from gymnasium.error import ResetNeeded

from ..envs.core import EpisodeLimits
from ..envs.runner import run_sync
from ..envs.spaces import AssistantAction, ChatMessages
from ..errors import EnvBusy, Fault, SandboxClosed, TaskError, fault_of
from ..sandboxes.base import Sandbox, SandboxProvider
from ..toolsets.base import ToolResult, Toolset, cap_text, function_schema
from ..toolsets.calls import DefaultParser, ParsedAction, ParseFailure, ToolCall, ToolCallParser, as_plain_action
from ..trajectories import EndReason, EpisodeEnd, EpisodeStart, Outcome, StepRecord, TrajectoryWriter
from .program import Program, ProgramSpec

__all__ = ["BlackBox", "BlackBoxEnv", "BlackBoxReset", "BlackBoxStep"]

#: What ``valid_actions`` returns at most, in characters (a long list is cut, and says so).
VALID_ACTIONS_CHARS = 16_000
_RECORDED_INFO = ("end_reason", "infra_failure", "error", "simulator", "usage", "parse_errors")


@dataclass(frozen=True, slots=True)
class BlackBoxReset:
    """A loaded task: its id (reset with ``options={"task_id": ...}`` loads it again), the text the
    agent reads first, and what ``info["metadata"]`` says about it."""

    task_id: str
    observation: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BlackBoxStep:
    """The simulator's answer to one command."""

    observation: str
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class BlackBox(Protocol):
    """One kind of simulator: the program to run in the sandbox, and how to drive it."""

    program: ProgramSpec
    system_prompt: str
    command_help: str  # the ``act`` tool's description of a command

    async def reset(self, program: Program, rng: np.random.Generator, options: Mapping[str, Any]) -> BlackBoxReset:
        """Load a task (``options``, else one drawn with ``rng``); a bad option is a TaskError."""

    async def step(self, program: Program, command: str) -> BlackBoxStep:
        """Run one command of the agent's; never raises for what the command says."""

    async def valid_actions(self, program: Program) -> list[str] | None:
        """The commands the simulator accepts now, or None if it cannot list them."""

    async def reference(self, program: Program, task_id: str) -> list[str] | None:
        """Commands that solve ``task_id`` (the simulator's own, if it has them), leaving the
        simulator at that task's start; None when there are none."""


@dataclass
class _Episode:
    id: str
    task_id: str
    metadata: Mapping[str, Any]
    deadline: float
    turn: int = 0
    tool_s: float = 0.0
    returned: float = 0.0  # the rewards so far: the episode's return
    simulator: Mapping[str, Any] = field(default_factory=dict)
    fault: Fault | None = None
    error: str | None = None
    done: bool = False

    def fail(self, exc: BaseException) -> None:
        fault = fault_of(exc)
        if fault is Fault.BUG:
            raise exc
        self.fault, self.error = fault, f"{type(exc).__name__}: {exc}"


def _schemas(blackbox: BlackBox) -> list[dict[str, Any]]:
    return [
        function_schema("act", blackbox.command_help, {"command": {"type": "string"}}, ["command"]),
        function_schema(
            "valid_actions",
            "List the commands the simulator accepts right now (optionally only those containing a text).",
            {"contains": {"type": "string", "description": "keep only commands containing this text"}},
            [],
        ),
    ]


class BlackBoxEnv(gym.Env[list[dict[str, Any]], Any]):
    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        *,
        provider: SandboxProvider,
        blackbox: BlackBox,
        tools: Toolset | None = None,
        parser: ToolCallParser | None = None,
        limits: EpisodeLimits = EpisodeLimits(),
        writer: TrajectoryWriter | None = None,
        owns_provider: bool = False,
        curriculum: None = None,  # accepted for EnvFactory: a black box has no difficulty levels
    ) -> None:
        self.provider, self.blackbox, self.tools = provider, blackbox, tools
        self.parser = parser or DefaultParser()
        self.limits = limits
        self.writer = writer
        self.curriculum = curriculum
        self._owns_provider = owns_provider
        own = {schema["function"]["name"] for schema in _schemas(blackbox)}
        clash = own & {schema["function"]["name"] for schema in (tools.schemas() if tools else [])}
        if clash:
            raise ValueError(f"the extra tools may not redefine {sorted(clash)}")
        self.observation_space = ChatMessages()
        self.action_space = AssistantAction()
        self._sandbox: Sandbox | None = None
        self._program: Program | None = None
        self._episode: _Episode | None = None
        self._in_call: str | None = None
        self._closed = False

    @property
    def sandbox(self) -> Sandbox | None:
        """The sandbox the simulator runs in (kept across resets); None before the first reset."""
        return self._sandbox

    @property
    def program(self) -> Program | None:
        """The simulator's program in :attr:`sandbox` (the adapter's handle on it)."""
        return self._program

    # -- sync API -------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # type: ignore[override]
        return run_sync(self.areset(seed=seed, options=options))

    def step(self, action: Any):  # type: ignore[override]
        return run_sync(self.astep(action))

    def reference_actions(self) -> list[str] | None:
        return run_sync(self.areference_actions())

    def close(self) -> None:
        if not self._closed:
            run_sync(self.aclose())

    @contextlib.contextmanager
    def _one_call(self, name: str) -> Iterator[None]:
        if self._in_call is not None:
            raise EnvBusy(f"{name}() called while {self._in_call}() runs on this env; use one env per thread or task")
        self._in_call = name
        try:
            yield
        finally:
            self._in_call = None

    # -- async core -------------------------------------------------------------------

    async def areset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        with self._one_call("reset"):
            return await self._reset(seed, dict(options or {}))

    async def astep(self, action: Any):
        with self._one_call("step"):
            return await self._step(action)

    async def areference_actions(self) -> list[str] | None:
        """The simulator's own solution of the current task, before its first step (a test's
        or a data set's reference; the agent never sees it)."""
        with self._one_call("reference_actions"):
            episode = self._episode
            if episode is None or episode.turn or episode.fault is not None or self._program is None:
                raise ResetNeeded("reference_actions() needs a fresh episode: call reset() and ask before any step")
            return await self.blackbox.reference(self._program, episode.task_id)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._abandon()
            await self._drop_sandbox()
        finally:
            if self._owns_provider:
                await self.provider.aclose()

    async def _reset(self, seed: int | None, options: dict[str, Any]):
        super().reset(seed=seed)
        if self._closed:
            raise SandboxClosed("the environment is closed")
        await self._abandon()
        episode_id = str(options.pop("episode_id", None) or uuid.uuid4().hex)
        timings: dict[str, float] = {}
        start = time.monotonic()
        episode = _Episode(episode_id, "", {}, start + self.limits.episode_seconds)
        first = ""
        try:
            async with asyncio.timeout(self.limits.setup_seconds):
                program = await self._ready(timings)
                loaded = await self.blackbox.reset(program, self.np_random, options)
            episode.task_id, episode.metadata, first = loaded.task_id, dict(loaded.metadata), loaded.observation
        except TaskError:
            raise
        except Exception as exc:  # noqa: BLE001 - sorted by fault_of: a bug raises, the rest is recorded
            episode.fail(exc)
            await self._drop_sandbox()
        self._episode = episode
        timings["reset_s"] = time.monotonic() - start
        meta = {"metadata": dict(episode.metadata), "error": episode.error}
        meta["sandbox_id"] = self._sandbox.id if self._sandbox is not None else None
        self._record(EpisodeStart(episode.id, self._env_id(), episode.task_id, seed=seed, meta=meta, time=time.time()))
        observation = [
            {"role": "system", "content": self.blackbox.system_prompt},
            {"role": "user", "content": first},
        ]
        return observation, self._info(episode, timings)

    async def _step(self, action: Any):
        episode = self._episode
        if episode is None or episode.done:
            raise ResetNeeded("call reset() before step(), and again after an episode ends")
        start = time.monotonic()
        episode.turn += 1
        action = as_plain_action(action)
        parsed = self.parser.parse(action, id_prefix=f"call_{episode.turn}_")
        observation: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        reward, reason = 0.0, None
        command = _text_command(parsed)
        try:
            if episode.fault is not None:
                pass
            elif command is not None:
                moved = await self._act(episode, command)
                reward, reason = moved.reward, _ending(moved)
                observation.append({"role": "user", "content": moved.observation})
                events.append({"command": command, "reward": moved.reward})
            else:
                reward, reason = await self._calls(episode, parsed, observation, events)
        except Exception as exc:  # noqa: BLE001 - sorted by fault_of: a bug raises, the rest is recorded
            episode.fail(exc)
            await self._drop_sandbox()
        answered = {m.get("tool_call_id") for m in observation}
        for call in parsed.calls:
            if call.id not in answered:
                why = "the episode ended" if episode.fault is None else "the simulator failed"
                observation.append({"role": "tool", "tool_call_id": call.id, "content": f"not run: {why}"})
        if command is None and parsed.errors and not parsed.calls and episode.fault is None:
            lines = "\n".join(f"- {e.message}" for e in parsed.errors)
            observation.append({"role": "user", "content": f"Your last message had problems:\n{lines}"})
        if episode.fault is not None:
            reason, reward = EndReason.INFRA, 0.0
        elif reason is None and time.monotonic() >= episode.deadline:
            reason = EndReason.DEADLINE
        elif reason is None and episode.turn >= self.limits.max_turns:
            reason = EndReason.MAX_TURNS
        episode.tool_s += time.monotonic() - start
        outcome = None if reason is None else reason.outcome
        terminated = outcome is Outcome.TERMINATED or outcome is Outcome.INFRA_FAILURE
        truncated = outcome is Outcome.TRUNCATED
        info = self._info(episode, {"env_s": time.monotonic() - start})
        info.update(
            turn=episode.turn,
            end_reason=None if reason is None else reason.value,
            simulator=dict(episode.simulator),
            reward_parts={},
            verdict=None,
            usage={"tool_s": episode.tool_s},
            parse_errors=[] if command is not None else [_parse_error(e) for e in parsed.errors],
            events=events,
        )
        self._record(
            StepRecord(
                episode.id, episode.turn - 1, action if isinstance(action, (str, dict)) else repr(action),
                tool_calls=[call.to_openai() for call in parsed.calls], observation=observation, reward=reward,
                terminated=terminated, truncated=truncated, timings=dict(info["timings"]), events=events,
                info={k: info[k] for k in _RECORDED_INFO},
            )
        )
        if reason is not None:
            episode.done = True
            self._record(
                EpisodeEnd(
                    episode.id, reason.outcome, None if reason is EndReason.INFRA else episode.returned,
                    episode.turn, reason, error=episode.error, meta={"simulator": dict(episode.simulator)},
                    time=time.time(), usage={"tool_s": episode.tool_s},
                )
            )
            if self.tools is not None:
                await self._drop_sandbox()  # the agent may have changed it: the next episode gets a fresh one
        return observation, reward, terminated, truncated, info

    # -- helpers ------------------------------------------------------------------------

    async def _ready(self, timings: dict[str, float]) -> Program:
        """The program, running, in the env's sandbox (acquired and started when needed)."""
        if self._sandbox is not None and (self.tools is not None or self._sandbox.closed):
            await self._drop_sandbox()
        if self._sandbox is None:
            start = time.monotonic()
            self._sandbox = await self.provider.acquire()
            self._program = Program(self._sandbox, self.blackbox.program)
            timings["acquire_s"] = time.monotonic() - start
        assert self._program is not None
        opened = await self._program.open()
        if opened.started:
            timings["simulator_start_s"] = opened.start_s
        return self._program

    async def _act(self, episode: _Episode, command: str) -> BlackBoxStep:
        assert self._program is not None
        moved = await self.blackbox.step(self._program, command)
        episode.simulator = dict(moved.metadata)
        episode.returned += moved.reward
        return moved

    async def _calls(
        self, episode: _Episode, parsed: ParsedAction, observation: list[dict[str, Any]], events: list[dict[str, Any]]
    ) -> tuple[float, EndReason | None]:
        reward, reason = 0.0, None
        cap = self.limits.max_calls_per_turn
        for index, call in enumerate(parsed.calls):
            if index >= cap:
                why = f"not run: at most {cap} tool calls run per message"
                observation.append({"role": "tool", "tool_call_id": call.id, "content": why})
                continue
            if reason is not None or time.monotonic() >= episode.deadline:
                break
            result = await self._run(episode, call)
            observation.append(result.to_message())
            events.append({"call_id": call.id, "tool": call.name, "ok": result.ok, **dict(result.detail)})
            reward += float(result.detail.get("reward", 0.0))
            reason = result.ends_as
        return reward, reason

    async def _run(self, episode: _Episode, call: ToolCall) -> ToolResult:
        """One tool call: the simulator's own tools here, the rest to the extra toolset."""
        start = time.monotonic()
        if call.name == "act":
            command = call.arguments.get("command")
            if not isinstance(command, str) or set(call.arguments) - {"command"}:
                return ToolResult(call.id, call.name, "error: act takes one string argument, command", ok=False)
            moved = await self._act(episode, command)
            return ToolResult(
                call.id, call.name, moved.observation, ends_as=_ending(moved), duration_s=time.monotonic() - start,
                detail={"reward": moved.reward},
            )
        if call.name == "valid_actions":
            contains = call.arguments.get("contains", "")
            if not isinstance(contains, str) or set(call.arguments) - {"contains"}:
                why = "error: valid_actions takes one optional string, contains"
                return ToolResult(call.id, call.name, why, ok=False)
            assert self._program is not None
            valid = await self.blackbox.valid_actions(self._program)
            if valid is None:
                return ToolResult(call.id, call.name, "error: this simulator cannot list its valid actions", ok=False)
            return ToolResult(call.id, call.name, _listing(valid, contains), duration_s=time.monotonic() - start)
        if self.tools is not None and self._sandbox is not None:
            left = max(episode.deadline - time.monotonic(), 0.001)
            return await self.tools.run(call, self._sandbox, timeout=left)
        names = ", ".join(s["function"]["name"] for s in self._schemas())
        return ToolResult(call.id, call.name, f"error: unknown tool {call.name!r}; the tools are: {names}", ok=False)

    def _schemas(self) -> list[dict[str, Any]]:
        return _schemas(self.blackbox) + (self.tools.schemas() if self.tools is not None else [])

    async def _drop_sandbox(self) -> None:
        sandbox, self._sandbox, self._program = self._sandbox, None, None
        if sandbox is not None and not self.provider.lends:
            await sandbox.aclose()  # the program stops with it

    async def _abandon(self) -> None:
        episode, self._episode = self._episode, None
        if episode is None or episode.done:
            return
        episode.done = True
        self._record(
            EpisodeEnd(
                episode.id, EndReason.CANCELLED.outcome, None, episode.turn, EndReason.CANCELLED, time=time.time()
            )
        )
        if self.tools is not None:
            await self._drop_sandbox()

    def _info(self, episode: _Episode, timings: dict[str, float]) -> dict[str, Any]:
        return {
            "episode_id": episode.id,
            "task_id": episode.task_id,
            "metadata": dict(episode.metadata),
            "tools": self._schemas(),
            "timings": dict(timings),
            "infra_failure": episode.fault is Fault.INFRA,
            "error": episode.error,
        }

    def _env_id(self) -> str:
        return self.spec.id if self.spec is not None else type(self).__name__

    def _record(self, record: Any) -> None:
        if self.writer is not None:
            self.writer.write(record)


def _text_command(parsed: ParsedAction) -> str | None:
    """The action as a plain command: text with no tool call in it (and no broken one)."""
    if parsed.calls or any(error.reason is not ParseFailure.NO_CALL for error in parsed.errors):
        return None
    return parsed.text.rsplit("</think>", 1)[-1].strip()


def _parse_error(error: Any) -> dict[str, str]:
    return {"reason": error.reason.value, "message": error.message}


def _ending(moved: BlackBoxStep) -> EndReason | None:
    if moved.terminated:
        return EndReason.ENV_TERMINATED
    if moved.truncated:
        return EndReason.ENV_TRUNCATED
    return None


def _listing(valid: list[str], contains: str) -> str:
    kept = [action for action in valid if contains.lower() in action.lower()] if contains else list(valid)
    head = f"{len(valid)} valid actions" + (f", {len(kept)} containing {contains!r}" if contains else "") + ":"
    return cap_text("\n".join([head, *kept]), VALID_ACTIONS_CHARS)
