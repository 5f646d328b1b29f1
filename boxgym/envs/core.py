"""The boxgym environment: one episode, one fresh sandbox, tools in, tool results out.

:class:`BoxEnv` is a :class:`gymnasium.Env` whose pieces are injected:

=========== ================================================================
provider    hands out a fresh sandbox per episode (a warm pool, or fakes)
tasks       a :class:`~boxgym.envs.tasks.TaskSet`
judge       scores the finished episode (:mod:`boxgym.judges`)
cost        an optional judge whose verdict's reward is the episode's cost
toolset     the tools the agent calls (:mod:`boxgym.toolsets`); an ``EpisodeToolset``
            opens tools of their own per episode (a simulated world)
parser      finds tool calls in the model's output
curriculum  picks the difficulty of each episode (adaptive by default)
writer      an optional :class:`~boxgym.trajectories.TrajectoryWriter`
=========== ================================================================

The async methods are the implementation; ``reset``/``step``/``close`` run
them on a per-process background loop. Use one of the two APIs per env.

``await areset(seed=None, options=None) -> (observation, info)``
    Ends any unfinished episode, picks a task (``options``: ``task_id`` or
    ``difficulty``; else the curriculum's level), acquires a sandbox and places
    the task's files. The same seed and options (and curriculum state) give
    the same task and the same first observation: ``[system, user]`` messages.
    ``info``: ``tools`` (OpenAI function schemas), ``task_id``, ``difficulty``,
    ``metadata``, ``episode_id``, ``timings``, ``infra_failure``, ``error``.

``await astep(action) -> (observation, reward, terminated, truncated, info)``
    ``action`` is assistant text or an OpenAI assistant message. Its tool calls
    run in order; the observation is one ``tool`` message per call (with its
    ``tool_call_id``), plus a ``user`` message saying what could not be parsed,
    if anything. A step never raises for what the model did.
    ``terminated``: the agent submitted (or the infrastructure failed).
    ``truncated``: the turn budget or the episode deadline ran out.
    The judge scores the episode when it ends either way; ``reward`` is its
    reward on the last step and 0.0 before. A ``cost`` judge scores it just
    before the judge (``info["cost"]``, ``info["cost_parts"]``; None before
    the end). ``info["usage"]``: ``tool_s`` (seconds in tool calls so far) and
    the sandbox's ``sandbox_cpu_s`` and ``sandbox_peak_memory_mb`` (read from
    outside it after each step; None where it cannot be measured).

Infrastructure failures (the sandbox died, the engine is down, the judge
could not reach a verdict) never raise from ``astep``: the step returns
``reward=0.0``, ``terminated=True``, ``info["infra_failure"] = True`` and
``info["error"]`` (a failure at reset shows in reset's info, and the next
step ends the episode that way). Such an episode is not a sample of the
policy's ability: drop it rather than train on the 0.0.

``aclose()`` ends the episode, returns nothing to the pool (the sandbox is
closed, its container removed) and is idempotent.

Recording (:mod:`boxgym.trajectories`, schema 1): with a ``writer``, reset
writes an ``EpisodeStart`` (``meta``: ``difficulty``, task ``metadata``,
``sandbox_id``, ``infra_error``); every step writes its ``StepRecord`` before
``astep`` returns (``action`` as given, ``tool_calls`` in OpenAI form, the
``observation``, ``reward``, ``timings``, ``events``: one per tool call with
its name, ``ok``, duration and the tool's detail, e.g. bash's ``exit_code``,
``timed_out`` and ``truncated``; ``info``: ``end_reason``, ``infra_failure``,
``error``, ``score``, ``parse_errors``); the episode's last step is followed
by an ``EpisodeEnd`` (``outcome``; ``reward`` is None for an infrastructure
failure), and an episode abandoned by reset or close ends ``cancelled``.
The end record also has the ``cost`` and ``cost_parts`` (None and empty without a
cost judge) and the last ``usage``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
import uuid
from dataclasses import dataclass, field
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
from gymnasium.error import ResetNeeded

from ..errors import EnvBusy, Fault, SandboxClosed, TaskError, fault_of
from ..judges.base import FinishedEpisode, Judge, PreparesSandbox, Verdict
from ..sandboxes.base import Sandbox, SandboxProvider
from ..toolsets.base import EpisodeTools, EpisodeToolset, Opening, StartsEpisode, Toolset
from ..toolsets.calls import DefaultParser, ParsedAction, ToolCallParser, as_plain_action
from ..trajectories import EndReason, EpisodeEnd, EpisodeStart, Outcome, StepRecord, TrajectoryWriter
from ..trajectories.images import Image, image_message, image_part
from .difficulty import AdaptiveDifficulty, Curriculum
from .runner import run_sync
from .spaces import AssistantAction, ChatMessages
from .tasks import Task, TaskSet

__all__ = ["BoxEnv", "EpisodeLimits"]

_RESET_OPTIONS = frozenset({"task_id", "difficulty", "episode_id"})
# What a step record keeps of the step's info (the rest is static, or in the record's own fields).
_RECORDED_INFO = ("end_reason", "infra_failure", "error", "verdict", "cost_verdict", "usage", "parse_errors")


@dataclass(frozen=True, slots=True)
class EpisodeLimits:
    """Per-episode limits, in turns and seconds."""

    max_turns: int = 30
    max_calls_per_turn: int = 16  # further calls in one message are not run (and the model is told)
    episode_seconds: float = 1800.0  # wall clock from reset; tool calls are cut to what is left
    setup_seconds: float = 300.0  # acquiring the sandbox and placing the task's files
    judge_seconds: float = 300.0


@dataclass
class _EnvEpisode:
    """The env's own state of its current episode (the rollout manager's is :class:`boxgym.rollout.Episode`)."""

    id: str
    task: Task
    deadline: float
    sandbox: Sandbox | None = None
    toolset: Toolset | None = None  # the env's, or the tools an EpisodeToolset opened for this episode
    turn: int = 0
    steps: list[StepRecord] = field(default_factory=list)
    submitted: bool = False
    submission: str | None = None
    tool_s: float = 0.0
    usage: dict[str, float | None] = field(default_factory=dict)
    # Set once something ended the episode that is not the judge's to score: an infrastructure
    # failure (INFRA: no reward) or the agent's wreck of its sandbox (AGENT: reward 0).
    fault: Fault | None = None
    error: str | None = None
    done: bool = False

    def fail(self, exc: BaseException) -> None:
        """Record who broke the episode; a bug (Fault.BUG) is not recorded but raised."""
        fault = fault_of(exc)
        if fault is Fault.BUG:
            raise exc
        self.fault, self.error = fault, _describe(exc)

    @property
    def end_reason(self) -> EndReason | None:
        if self.fault is None:
            return None
        return EndReason.INFRA if self.fault is Fault.INFRA else EndReason.SANDBOX_WRECKED


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _not_run(capped: bool, reason: EndReason | None, fault: Fault | None, cap: int) -> str:
    if fault is Fault.INFRA:
        return "the sandbox failed"
    if fault is Fault.AGENT:
        return "the sandbox is unusable after what an earlier call ran"
    if reason is EndReason.SUBMITTED:
        return "the episode ended at submit"
    if capped:
        return f"at most {cap} tool calls run per message"
    return "the episode ran out of time"


def _first_message(task: Task, opening: Opening | None) -> str | list[dict[str, Any]]:
    """The task's prompt and images (the same bytes the sandbox holds, so seeing and reading the
    file agree), then what the tools show at the start (the page a browser opened)."""
    images = [Image(bytes(task.files[path])) for path in task.images]
    text = task.prompt
    if opening is not None:
        text = "\n\n".join(part for part in (text, opening.text) if part)
        images += opening.images
    if not images:
        return text
    return [{"type": "text", "text": text}, *(image_part(image) for image in images)]


def _feedback(parsed: ParsedAction) -> dict[str, Any]:
    lines = [f"- {error.message}" + (f" (in: {error.raw})" if error.raw else "") for error in parsed.errors]
    return {"role": "user", "content": "Your last message had problems:\n" + "\n".join(lines)}


class BoxEnv(gym.Env[list[dict[str, Any]], Any]):
    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        *,
        provider: SandboxProvider,
        tasks: TaskSet,
        judge: Judge,
        toolset: Toolset | EpisodeToolset,
        system_prompt: str,
        parser: ToolCallParser | None = None,
        limits: EpisodeLimits = EpisodeLimits(),
        curriculum: Curriculum | None = None,
        writer: TrajectoryWriter | None = None,
        owns_provider: bool = False,
        cost: Judge | None = None,
    ) -> None:
        self.provider, self.tasks, self.judge, self.toolset = provider, tasks, judge, toolset
        self.cost = cost
        # Judges that set the sandbox up before the agent's first step (bait, a baseline).
        self._preparers = [j for j in (cost, judge) if isinstance(j, PreparesSandbox)]
        if len(self._preparers) == 2 and cost is judge:
            del self._preparers[1]  # one object given as both: its bait is planted once
        self.system_prompt = system_prompt
        self.parser = parser or DefaultParser()
        self.limits = limits
        self.curriculum = curriculum if curriculum is not None else AdaptiveDifficulty(tasks.levels)
        self.writer = writer
        self._owns_provider = owns_provider  # True when the env made the provider (gym.make defaults)
        self.observation_space = ChatMessages()
        self.action_space = AssistantAction()
        self._episode: _EnvEpisode | None = None
        self._in_call: str | None = None
        self._notes: dict[str, Any] = {}  # annotate_next_step
        self._closed = False

    # -- sync API ---------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # type: ignore[override]
        return run_sync(self.areset(seed=seed, options=options))

    def step(self, action: Any):  # type: ignore[override]
        return run_sync(self.astep(action))

    @contextlib.contextmanager
    def _one_call(self, name: str) -> Iterator[None]:
        # One env is one episode at a time: a second reset/step while one runs (two threads on
        # one env, or an un-awaited call) would mix up the episode's turns and records.
        if self._in_call is not None:
            raise EnvBusy(f"{name}() called while {self._in_call}() runs on this env; use one env per thread or task")
        self._in_call = name
        try:
            yield
        finally:
            self._in_call = None

    def close(self) -> None:
        if not self._closed:
            run_sync(self.aclose())

    # -- async core ---------------------------------------------------------------

    async def areset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        with self._one_call("reset"):
            return await self._reset(seed, options)

    async def astep(self, action: Any):
        with self._one_call("step"):
            return await self._step(action)

    async def _reset(self, seed: int | None, options: dict[str, Any] | None):
        super().reset(seed=seed)
        if self._closed:
            raise SandboxClosed("the environment is closed")
        await self._abandon()
        options = dict(options or {})
        # Generating a task takes a millisecond or two (building a database, running a
        # reference solution): off the event loop, as thousands of envs share it.
        task = await asyncio.to_thread(self._choose_task, options)
        episode_id = str(options.get("episode_id") or uuid.uuid4().hex)
        episode = _EnvEpisode(episode_id, task, time.monotonic() + self.limits.episode_seconds)
        if not isinstance(self.toolset, EpisodeToolset):
            episode.toolset = self.toolset
        self._episode = episode
        self._notes = {}
        timings: dict[str, float] = {}
        start = time.monotonic()
        opening: Opening | None = None
        try:
            async with asyncio.timeout(self.limits.setup_seconds):
                episode.sandbox = await self.provider.acquire()
                timings["acquire_s"] = time.monotonic() - start
                for path, data in task.files.items():
                    await episode.sandbox.write_file(path, data)
                if episode.toolset is None:
                    episode.toolset = await self.toolset.open_episode(task, episode.id)  # type: ignore[union-attr]
                for judge in self._preparers:
                    await judge.prepare(episode.sandbox, task)
                if isinstance(episode.toolset, StartsEpisode):  # a browser opens the task's page
                    opening = await episode.toolset.start_episode(episode.sandbox, task)
        except Exception as exc:  # noqa: BLE001 - sorted by fault_of: a bug raises, the rest is recorded
            episode.fail(exc)
        timings["reset_s"] = time.monotonic() - start
        self._record(
            EpisodeStart(
                episode.id,
                self._env_id(),
                task.id,
                seed=seed,
                meta={
                    "difficulty": task.difficulty,
                    "metadata": dict(task.metadata),
                    "sandbox_id": episode.sandbox.id if episode.sandbox is not None else None,
                    "error": episode.error,
                },
                time=time.time(),
            )
        )
        observation = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": _first_message(task, opening)},
        ]
        return observation, self._info(episode, timings)

    async def _step(self, action: Any):
        episode = self._episode
        if episode is None or episode.done:
            raise ResetNeeded("call reset() before step(), and again after an episode ends")
        start = time.monotonic()
        episode.turn += 1
        timings: dict[str, float] = {}
        action = as_plain_action(action)
        parsed = self.parser.parse(action, id_prefix=f"call_{episode.turn}_")
        observation: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        images: list[tuple[str, Image]] = []  # (call id, image) in call order
        reason: EndReason | None = None
        cap = self.limits.max_calls_per_turn
        calls, skipped = parsed.calls[:cap], parsed.calls[cap:]
        answered: set[str] = set()
        shown = 0  # images the results carry, in tool answers' image message or in user turns
        if episode.fault is None and episode.sandbox is not None and episode.toolset is not None:
            for call in calls:
                left = episode.deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    result = await episode.toolset.run(call, episode.sandbox, timeout=left)
                except Exception as exc:  # noqa: BLE001 - sorted by fault_of: a bug raises, the rest is recorded
                    episode.fail(exc)
                    break
                if parsed.answer_in == "user":  # a call written in the text: its answer is a user turn
                    observation.append(result.to_user_message())
                else:
                    observation.append(result.to_message())
                    images.extend((call.id, image) for image in result.images)
                answered.add(call.id)
                shown += len(result.images)
                events.append(
                    {"call_id": call.id, "tool": call.name, "ok": result.ok, "duration_s": result.duration_s}
                    | dict(result.detail)
                )
                if result.submitted:
                    episode.submitted, episode.submission = True, result.submission
                    reason = result.ends_as or EndReason.SUBMITTED
                    break
        timings["tools_s"] = time.monotonic() - start
        episode.tool_s += timings["tools_s"]
        await self._measure(episode)
        # Every call gets an answer, run or not, so the conversation stays a valid chat history.
        for call in parsed.calls:
            if call.id not in answered:
                why = _not_run(call in skipped, reason, episode.fault, cap)
                if parsed.answer_in == "user":
                    observation.append({"role": "user", "content": f"not run: {why}"})
                else:
                    observation.append({"role": "tool", "tool_call_id": call.id, "content": f"not run: {why}"})
        if images:
            # After every tool message: a chat template wants a call's answers right after it.
            ids = ", ".join(dict.fromkeys(call_id for call_id, _ in images))
            observation.append(image_message([image for _, image in images], f"Images from the tool calls above ({ids}):"))
        if parsed.errors and reason is None and episode.fault is None:
            observation.append(_feedback(parsed))
        if episode.fault is None and reason is None:
            if time.monotonic() >= episode.deadline:
                reason = EndReason.DEADLINE
            elif episode.turn >= self.limits.max_turns:
                reason = EndReason.MAX_TURNS
        verdict = cost = None
        if reason is not None and episode.fault is None:
            # The cost judge first: it reads the sandbox as the agent left it, before a judge
            # runs tests in it.
            if self.cost is not None:
                cost = await self._judge(episode, timings, self.cost, "cost_s")
            if episode.fault is None:
                verdict = await self._judge(episode, timings, self.judge, "judge_s")
        reason = episode.end_reason or reason  # a failure, even the judge's, overrides the reason
        if episode.fault is not None:
            verdict = cost = None
        reward = verdict.reward if verdict is not None else 0.0
        outcome = None if reason is None else reason.outcome
        terminated = outcome is Outcome.TERMINATED or outcome is Outcome.INFRA_FAILURE
        truncated = outcome is Outcome.TRUNCATED
        timings["env_s"] = time.monotonic() - start
        info = self._info(episode, timings)
        info.update(
            turn=episode.turn,
            end_reason=None if reason is None else reason.value,
            verdict=None if verdict is None else verdict.to_json(),
            reward_parts={} if verdict is None else dict(verdict.parts),
            cost=None if cost is None else cost.reward,
            cost_parts={} if cost is None else dict(cost.parts),
            cost_verdict=None if cost is None else cost.to_json(),
            usage=dict(episode.usage),
            parse_errors=[{"reason": e.reason.value, "message": e.message} for e in parsed.errors],
            events=events,
            images=shown,
        )
        notes, self._notes = self._notes, {}
        info.update(notes)
        record = StepRecord(
            episode.id,
            episode.turn - 1,
            action if isinstance(action, (str, dict)) else repr(action),
            tool_calls=[call.to_openai() for call in parsed.calls],
            observation=observation,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            timings=dict(timings),
            events=events,
            info={k: info[k] for k in _RECORDED_INFO} | notes,
        )
        episode.steps.append(record)
        self._record(record)
        if reason is not None:
            await self._finish(episode, reason, verdict, cost)
        return observation, reward, terminated, truncated, info

    def annotate_next_step(self, **info: Any) -> None:
        """Record ``info`` with the next step, in its ``info`` and its record's: what a wrapper
        changed about how that step's action was produced (:class:`boxgym.context.ContextWindow`
        records the context the policy was shown)."""
        self._notes.update(info)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._abandon()
        finally:
            if self._owns_provider:
                await self.provider.aclose()

    # -- helpers ------------------------------------------------------------------

    def _choose_task(self, options: dict[str, Any]) -> Task:
        unknown = set(options) - _RESET_OPTIONS
        if unknown:
            raise TaskError(f"unknown reset options {sorted(unknown)}; use {', '.join(sorted(_RESET_OPTIONS))}")
        if options.get("task_id") is not None:
            return self.tasks.get(str(options["task_id"]))
        level = options.get("difficulty")
        if level is None:
            level = self.curriculum.sample(self.np_random)
        return self.tasks.sample(self.np_random, int(level))

    async def _judge(self, episode: _EnvEpisode, timings: dict[str, float], judge: Judge, key: str) -> Verdict | None:
        assert episode.sandbox is not None
        start = time.monotonic()
        opened = self._opened(episode)
        view = FinishedEpisode(
            episode.task,
            episode.sandbox,
            tuple(episode.steps),
            episode.submitted,
            episode.submission,
            episode.id,
            world=None if opened is None else opened.world(),
        )
        try:
            async with asyncio.timeout(self.limits.judge_seconds):
                return await judge.score(view)
        except Exception as exc:  # noqa: BLE001 - sorted by fault_of: a bug raises, the rest is recorded
            episode.fail(exc)
            return None
        finally:
            timings[key] = time.monotonic() - start

    async def _measure(self, episode: _EnvEpisode) -> None:
        """The episode's runtime figures so far (``info["usage"]``), the sandbox's read from outside it."""
        sandbox = episode.sandbox
        usage = None if sandbox is None or episode.fault is not None else await sandbox.usage()
        if usage is not None or not episode.usage:  # a dead sandbox keeps its last figures
            episode.usage["sandbox_cpu_s"] = None if usage is None else usage.cpu_s
            episode.usage["sandbox_peak_memory_mb"] = None if usage is None else usage.peak_memory_mb
        episode.usage["tool_s"] = episode.tool_s

    def _opened(self, episode: _EnvEpisode) -> EpisodeTools | None:
        """The tools the env opened for this episode (an EpisodeToolset's), if any."""
        return episode.toolset if isinstance(self.toolset, EpisodeToolset) else None  # type: ignore[return-value]

    async def _release(self, episode: _EnvEpisode) -> None:
        opened = self._opened(episode)
        try:
            if opened is not None:
                await opened.aclose()
        finally:
            # A sandbox lent by its owner (the rollout manager's, through GivenSandbox) stays open for
            # the owner to close: it may still judge the episode in it (an agent judge reads it).
            if episode.sandbox is not None and not self.provider.lends:
                await episode.sandbox.aclose()

    async def _finish(
        self, episode: _EnvEpisode, reason: EndReason, verdict: Verdict | None, cost: Verdict | None
    ) -> None:
        episode.done = True
        try:
            await self._release(episode)
        finally:
            if verdict is not None:
                self.curriculum.update(episode.task.difficulty, verdict.passed)
            scored = reason is not EndReason.INFRA
            self._record(
                EpisodeEnd(
                    episode.id,
                    reason.outcome,
                    (0.0 if verdict is None else verdict.reward) if scored else None,
                    episode.turn,
                    reason,
                    reward_parts={} if verdict is None else dict(verdict.parts),
                    error=episode.error,
                    meta={"verdict": None if verdict is None else verdict.to_json()},
                    time=time.time(),
                    cost=cost.reward if cost is not None and scored else None,
                    cost_parts=dict(cost.parts) if cost is not None and scored else {},
                    usage=dict(episode.usage),
                )
            )

    async def _abandon(self) -> None:
        """End an episode the caller walked away from (reset or close mid-episode)."""
        episode, self._episode = self._episode, None
        if episode is None or episode.done:
            return
        episode.done = True
        try:
            await self._release(episode)
        finally:
            self._record(
                EpisodeEnd(
                    episode.id, Outcome.CANCELLED, None, episode.turn, EndReason.CANCELLED, time=time.time(),
                    usage=dict(episode.usage),
                )
            )

    def _info(self, episode: _EnvEpisode, timings: dict[str, float]) -> dict[str, Any]:
        # Fresh objects every call: callers keep infos, and check_env insists.
        return {
            "episode_id": episode.id,
            "task_id": episode.task.id,
            "difficulty": episode.task.difficulty,
            "metadata": copy.deepcopy(dict(episode.task.metadata)),
            "tools": [] if episode.toolset is None else episode.toolset.schemas(),
            "timings": dict(timings),
            "infra_failure": episode.fault is Fault.INFRA,
            "error": episode.error,
        }

    def _env_id(self) -> str:
        return self.spec.id if self.spec is not None else type(self).__name__

    def _record(self, record: Any) -> None:
        if self.writer is not None:
            self.writer.write(record)
