"""The per-episode coroutine: acquire, reset, step until done, judge, release.

One :class:`Driver` per manager holds what every episode shares (policy, env
factory, sandbox provider, stage limiters, writer, metrics); :meth:`Driver.drive`
runs one episode to its end, or to a pause, and never raises for anything the
episode did: every failure becomes the episode's outcome. Only a cancellation
that the manager did not ask for (the whole run torn down) propagates, after the
episode's env and sandbox are released.

The step loop is the hot path of a 100k-episode run, so it binds what it uses
to locals, takes limiter slots without a coroutine call when one is free, and
leaves deadlines to the manager's watchdog instead of arming a timer per call.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import Fault, UpstreamError, fault_of
from ..judges.base import Verdict
from ..trajectories import EndReason, Outcome, TrajectoryWriter
from .config import RolloutConfig
from .limiter import Limiter
from .metrics import RolloutMetrics
from .policy import EpisodeAware, Policy
from .state import CANCELLABLE, CLOSE_EXPIRED, CLOSING, IDLE, INF, Episode
from .types import AsyncEnv, Completion, EpisodeResult, TaskRef
from .usage import episode_usage

if TYPE_CHECKING:
    from ..sandboxes import Sandbox, SandboxProvider
    from .subagents import SubagentTools

__all__ = ["Driver", "MakeEnv", "RolloutJudge"]

#: Builds the env of one episode; gets the episode's sandbox when the manager has a provider.
#: :class:`boxgym.envs.EnvFactory` is the one that builds boxgym's registered envs.
MakeEnv = Callable[[TaskRef, "Sandbox | None"], "AsyncEnv | Awaitable[AsyncEnv]"]
#: The manager's judge: the final verdict of a finished root episode, given the live episode
#: (its env and sandbox are still open). An env's own judge (:class:`boxgym.judges.Judge`)
#: scores inside the env instead. The manager's cost judge has the same shape; its verdict's
#: reward is the episode's cost.
RolloutJudge = Callable[[Episode], Awaitable[Verdict]]

log = logging.getLogger(__name__)

_now = time.monotonic  # the default event loop's clock: the watchdog compares with loop.time()

_SCORED = (Outcome.TERMINATED, Outcome.TRUNCATED)
_PAUSED = Outcome.PAUSED
_INFRA_FAILURE = Outcome.INFRA_FAILURE
#: What ends an episode, by who caused the exception that ended it (:func:`boxgym.errors.fault_of`).
_REASON_OF_FAULT = {Fault.AGENT: EndReason.SANDBOX_WRECKED, Fault.INFRA: EndReason.INFRA, Fault.BUG: EndReason.ERROR}
#: Static parts of a BoxEnv's step info that a step record does not repeat.
_UNRECORDED_INFO = frozenset({"tools", "timings", "events", "episode_id", "task_id", "difficulty", "metadata"})


_NO_EVENTS: list[Any] = []
_SHARED_REASONS = frozenset(EndReason)


def _env_error(info: dict[str, Any]) -> str:
    return str(info.get("error") or "the env reported an infrastructure failure and gave no message")


def _env_reason(info: dict[str, Any], default: EndReason) -> EndReason:
    reason = info.get("end_reason") if info else None
    if reason is None or reason not in _SHARED_REASONS:
        return default
    reason = EndReason(reason)
    return reason if reason.outcome in _SCORED else default


def _describe(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {tb[0].filename}:{tb[0].lineno}" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


class Driver:
    def __init__(
        self,
        *,
        config: RolloutConfig,
        policy: Policy,
        env_factory: MakeEnv,
        provider: SandboxProvider | None,
        judge: RolloutJudge | None,
        writer: TrajectoryWriter | None,
        metrics: RolloutMetrics,
        versions: Any,
        episode_url: Callable[[str], str] | None,
        on_start: Callable[[Episode], None] | None = None,
        cost: RolloutJudge | None = None,
    ) -> None:
        self.config = config
        self.policy = policy
        self.env_factory = env_factory
        self.provider = provider
        self.judge = judge
        self.cost = cost
        self.writer = writer if config.record_steps else None
        self.metrics = metrics
        self.versions = versions  # has .weight_version and .pause_requested
        self.episode_url = episode_url
        self.on_start = on_start
        self._policy_ended = policy.episode_ended if isinstance(policy, EpisodeAware) else None
        limits = config.concurrency
        self.sandbox_limiter = Limiter("sandbox_acquire", limits.sandbox_acquire)
        self.policy_limiter = Limiter("policy_calls", limits.policy_calls)
        self.judge_limiter = Limiter("judging", limits.judging)
        self.running: dict[str, Episode] = {}  # every episode in a stage, children included
        # Config read once, not per episode: "no bound" becomes a bound nothing reaches.
        deadlines, budget = config.deadlines, config.budget
        self._policy_deadline = deadlines.policy_call or INF
        self._env_deadline = deadlines.env_step or INF
        self._episode_deadline = deadlines.episode
        self._max_turns = budget.max_turns if budget.max_turns is not None else 1 << 62
        self._max_tokens = budget.max_tokens if budget.max_tokens is not None else 1 << 62
        self._max_sandbox_cpu = budget.max_sandbox_cpu_s
        self.subagents: SubagentTools | None = None
        self._retry_counter = 0

    # -- one episode ----------------------------------------------------------------------------
    #
    # ``drive`` is one coroutine frame on purpose: every await in an episode resumes through each
    # frame of the chain, so a drive -> attempt -> loop split costs ~0.4 us per frame per step at
    # 100k episodes (measured: three extra frames cost a third of a bare asyncio step). Setup,
    # judging and release are rare and stay in their own methods.

    async def drive(self, ep: Episode, done: Callable[[Episode, bool], Awaitable[None] | None] | None = None) -> None:
        """Run ``ep`` to its end or its pause; its outcome says which. Resources are released
        unless it paused. ``done(ep, torn_down)`` is called at the end, in this task (the manager
        hands the result on there; an awaitable it returns is awaited). Raises only when the task
        is cancelled by someone else (the run torn down), after releasing.

        Returns nothing on purpose: the task's result would hold the episode, which holds the
        task (``ep.handle``), and that cycle would leave every finished episode to the garbage
        collector instead of freeing it when its result is handed on."""
        self._begin(ep)
        try:
            while True:  # one pass per attempt; a retry after an infrastructure failure loops
                try:
                    ep.phase = CANCELLABLE
                    if ep.stop is not None:  # cancelled before it ran (a cancelled group, or while paused)
                        self._stopped(ep)
                    elif not ep.reset_done:
                        await self._setup(ep)
                    else:
                        self._start_record(ep, resumed=True)
                    if ep.outcome is None and not self._over_budget(ep):
                        # The hot path: one iteration per step of every episode. Every rare condition
                        # is folded into one test whose slow path is a method, no timer is armed (the
                        # watchdog reads ep.stage_until), and the frame keeps few locals: it is
                        # resumed twice per step and visited by every full garbage collection, and at
                        # 100k episodes its size shows (measured: 40 more locals cost 12% of a
                        # null-env run, with or without the collector).
                        policy = ep.policy or self.policy
                        env = ep.env
                        messages = ep.messages
                        limiter = self.policy_limiter
                        control = self.versions
                        writer = self.writer
                        subagents = self._subagents_for(ep)
                        max_turns = self._turns_for(ep)
                        last_record = 0  # sequence number of this episode's last step record
                        t2 = _now()  # the end of the previous step is the start of the next policy call
                        while True:
                            if (ep.stop is not None or control.pause_requested) and self._boundary(ep):
                                break

                            # -- policy stage
                            if limiter._free > 0 and not limiter._waiters:  # Limiter.acquire_nowait, inlined
                                limiter._free -= 1
                                t0 = t2
                            else:
                                ep.stage_until = INF  # waiting for a slot is not the call: no deadline yet
                                await limiter.acquire()
                                t0 = _now()
                            ep.stage_until = t0 + self._policy_deadline
                            try:
                                completion = await policy(ep)
                            except UpstreamError as exc:
                                completion = await self._retry_policy(policy, ep, exc)
                            finally:
                                if limiter._waiters:
                                    limiter.release()
                                else:
                                    limiter._free += 1  # Limiter.release without waiters, inlined
                            t1 = _now()
                            # Leaving stage_until set past this point is safe: the next stage sets it again
                            # before it awaits, and its value is far ahead (saves a store per stage).
                            ep.stage_until = t1 + self._env_deadline
                            ep.t_policy += t1 - t0
                            if completion.weight_version is None and control.weight_version is not None:
                                completion = replace(completion, weight_version=control.weight_version)
                            message = completion.message
                            messages.append(message)
                            ep.completions.append(completion)
                            ep.turn += 1
                            tokens = completion.completion_token_ids
                            if tokens:
                                tokens = len(tokens)
                                ep.completion_tokens += tokens
                                self.metrics.tokens += tokens
                                if self.metrics.tokens >= control.pause_at_tokens:
                                    control.request_pause()
                            if completion.final:
                                ep.finish(EndReason.AGENT_DONE)
                                break

                            # -- env stage
                            if writer is not None and last_record > writer.records_written:
                                # The previous step's record reaches the OS before this step acts
                                # on the env. The policy call in between yielded, so the writer's
                                # once-per-loop-round flush has almost always run already; this
                                # covers a policy that did not yield. (A crash during the policy
                                # call loses nothing: the policy does not touch the env.)
                                writer.flush()
                            if subagents is not None and subagents.wants(message):
                                observation, reward, terminated, truncated, info = await subagents.handle(self, ep, message)
                            else:
                                observation, reward, terminated, truncated, info = await env.astep(message)
                            t2 = _now()
                            ep.t_env += t2 - t1
                            messages.extend(observation)
                            if reward:
                                ep.reward += reward
                            self.metrics.steps += 1
                            if writer is not None:
                                last_record = self._record_step(ep, completion, observation, reward, terminated, truncated, t1 - t0, t2 - t1, info)
                            if (
                                info
                                or terminated
                                or truncated
                                or ep.turn >= max_turns
                                or ep.completion_tokens >= self._max_tokens
                            ) and self._after_step(ep, terminated, truncated, info):
                                break
                    # Only root episodes are judged: children (sub-agents, judge agents) are scored
                    # through their parent. A wrecked sandbox has nothing left to judge: it scores 0.
                    if (
                        ep.outcome in _SCORED
                        and (self.judge is not None or self.cost is not None)
                        and ep.parent is None
                        and ep.reason is not EndReason.SANDBOX_WRECKED
                    ):
                        await self._judge(ep)
                    ep.phase = IDLE
                except asyncio.CancelledError:
                    ep.phase = IDLE
                    if ep.stop is None:
                        raise
                    ep.handle.uncancel()  # type: ignore[union-attr]  # the task running this frame
                    self._stopped(ep)
                except Exception as exc:  # noqa: BLE001 - one episode's failure is that episode's outcome
                    ep.phase = IDLE
                    self._failed(ep, exc)
                ep.stage_until = INF
                if self._retryable(ep):
                    await self._release(ep)
                    self._restart(ep)
                    continue
                break
            if ep.outcome is not _PAUSED:
                await self._release(ep)
        except asyncio.CancelledError:
            # Not a cancel we asked for: the run is being torn down. Release, then let it through.
            ep.phase = IDLE
            ep.finish(EndReason.CANCELLED)
            try:
                await self._release(ep)
            finally:
                self._finish(ep)
                if done is not None:
                    waiter = done(ep, True)
                    if waiter is not None:
                        waiter.close()  # type: ignore[attr-defined]  # torn down: nothing to hand over
            raise
        self._finish(ep)
        if done is not None:
            waiter = done(ep, False)  # an awaitable when the consumer is behind (backpressure)
            if waiter is not None:
                await waiter

    # -- the rare parts of an episode, out of drive's frame -----------------------------------------

    def _begin(self, ep: Episode) -> None:
        handle = ep.handle
        if handle is None or handle.done():
            # The manager sets the handle as it creates the task (asyncio.current_task() is a
            # Python-level call on 3.11); a child episode or a direct caller gets its task here.
            ep.handle = asyncio.current_task()
        started = _now()
        ep.t_total -= started  # _finish adds the end time: t_total sums (end - start) over runs
        if ep.deadline_at == INF and self._episode_deadline is not None:
            ep.deadline_at = started + self._episode_deadline
        self.metrics.running += 1
        if ep.parent is not None:
            self.running[ep.episode_id] = ep  # the manager registers the roots it admits

    def _subagents_for(self, ep: Episode) -> SubagentTools | None:
        subagents = self.subagents
        if subagents is None or not ep.subagent_tools or ep.depth >= subagents.config.max_depth:
            return None
        return subagents

    def _turns_for(self, ep: Episode) -> int:
        turns = ep.max_turns
        return self._max_turns if turns is None else turns

    def _record_step(
        self,
        ep: Episode,
        completion: Completion,
        observation: list[dict[str, Any]],
        reward: float,
        terminated: bool,
        truncated: bool,
        policy_seconds: float,
        env_seconds: float,
        info: dict[str, Any],
    ) -> int:
        assert self.writer is not None
        events, env_timings = _NO_EVENTS, None
        if info:
            # A BoxEnv's info: its events and timings have fields of their own in the record, and
            # what never changes within an episode is in the episode's start record.
            events = info.get("events") or _NO_EVENTS
            env_timings = info.get("timings")
            if info.get("images"):  # stored once per run as files, never inline in a line
                observation = self.writer.images.externalize(observation)
            info = {k: v for k, v in info.items() if k not in _UNRECORDED_INFO}
        if completion.context is not None:  # what a context manager showed the policy (boxgym.context)
            info = {**(info or {}), "context": completion.context.to_json()}
        message = completion.message
        return self.writer.write_step_soon(
            ep.episode_id,
            ep.turn - 1,
            message,
            message.get("tool_calls") or [],
            observation,
            reward,
            terminated,
            truncated,
            policy_seconds,
            env_seconds,
            info,
            completion.weight_version,
            completion.call_id,
            events,
            env_timings,
        )

    def _failed(self, ep: Episode, exc: Exception) -> None:
        """End the episode for an exception, by who caused it (the one rule: :func:`fault_of`)."""
        reason = _REASON_OF_FAULT[fault_of(exc)]
        if reason is EndReason.SANDBOX_WRECKED:
            ep.reward = 0.0  # the agent's doing: scored, and not a free retry
        ep.finish(reason, _describe(exc))

    def _retryable(self, ep: Episode) -> bool:
        return (
            ep.outcome is _INFRA_FAILURE
            and ep.attempts < self.config.retries.episode_attempts
            and ep.stop is None
            # A child is retried too (a sub-agent's sandbox broke, a judge's engine went down); its
            # parent waits for it, and a child whose parent is stopping is not restarted.
            and (ep.parent is None or ep.parent.stop is None)
        )

    def _restart(self, ep: Episode) -> None:
        self.metrics.episode_retries += 1
        self._end_record(ep)
        registered = self.running.pop(ep.episode_id, None) is ep
        self.ended(ep)
        ep.restart(f"{ep.episode_id.split('~')[0]}~retry{ep.attempts}")
        if registered:
            self.running[ep.episode_id] = ep

    # -- sub-rollouts ----------------------------------------------------------------------------

    def child(
        self,
        parent: Episode,
        task: TaskRef,
        *,
        name: str | None = None,
        policy: Policy | None = None,
        env_factory: MakeEnv | None = None,
        max_turns: int | None = None,
        frozen: bool = True,
        share_sandbox: bool = False,
        own_sandbox: bool = True,
        subagent_tools: bool = False,
    ) -> Episode:
        """A child episode of ``parent``, for :meth:`sub_rollout`: sub-agents, agent-as-judge.

        It runs with ``policy`` (default: the manager's) on ``env_factory``'s env
        (default: the manager's), within ``max_turns`` turns and the parent's
        deadline, and is cancelled with the parent. ``share_sandbox`` gives it the
        parent's sandbox; otherwise it gets its own from the provider when
        ``own_sandbox``. ``frozen`` marks its tokens as not training data.
        """
        n = len(parent.children or ()) + parent.children_pending
        parent.children_pending += 1
        child = Episode(f"{parent.episode_id}.{n}", task, group_id=parent.group_id, versions=self.versions, parent=parent)
        child.spawned_at_step = max(parent.turn - 1, 0)
        child.subagent_name = name
        child.frozen = frozen
        child.max_turns = max_turns
        child.deadline_at = parent.deadline_at
        child.policy = policy
        child.env_factory = env_factory
        child.subagent_tools = subagent_tools
        if share_sandbox:
            child.sandbox = parent.sandbox
            child.owns_sandbox = False
        else:
            child.owns_sandbox = own_sandbox
        return child

    async def sub_rollout(self, child: Episode) -> EpisodeResult:
        """Run a :meth:`child` to its end; its result joins the parent's ``children`` (the tree)."""
        parent = child.parent
        if parent is None:
            raise ValueError("sub_rollout runs children made by Driver.child")
        try:
            await self.drive(child)
        finally:
            parent.children_pending -= 1
        result = child.result(keep_messages=self.config.keep_messages)
        if parent.children is None:
            parent.children = []
        parent.children.append(result)
        return result

    def ended(self, ep: Episode) -> None:
        """Tell the episode's policy that the episode is over (``policy.episode_ended(ep)``, for
        policies that keep state per episode, e.g. a black-box agent's task); never raises."""
        policy = ep.policy
        if policy is None:
            hook = self._policy_ended
        else:
            hook = policy.episode_ended if isinstance(policy, EpisodeAware) else None
        if hook is None:
            return
        try:
            hook(ep)
        except Exception:  # noqa: BLE001 - a policy's bookkeeping must not change the episode's outcome
            log.exception("episode_ended of %s failed for %s", type(policy or self.policy).__name__, ep.episode_id)

    def _finish(self, ep: Episode) -> None:
        if ep.outcome is not _PAUSED and (self._policy_ended is not None or ep.policy is not None):
            self.ended(ep)
        if ep.parent is not None:
            self.running.pop(ep.episode_id, None)
        self.metrics.running -= 1
        ep.t_total += _now()
        self._end_record(ep)
        self.metrics.episode_done(ep)

    def _stopped(self, ep: Episode) -> None:
        reason = ep.stop
        if reason is EndReason.DEADLINE:
            ep.finish(EndReason.DEADLINE)
        elif reason is EndReason.STAGE_DEADLINE:
            ep.finish(EndReason.STAGE_DEADLINE, "a stage passed its deadline")
        else:
            ep.finish(EndReason.CANCELLED)

    async def _setup(self, ep: Episode) -> None:
        deadlines = self.config.deadlines
        if self.episode_url is not None and ep.policy is None:
            # A child with a policy of its own (a judge model) talks to its own endpoint, not to
            # the gateway of the model being trained.
            ep.base_url = self.episode_url(ep.episode_id)
        if self.on_start is not None:
            self.on_start(ep)
        if self.provider is not None and ep.sandbox is None and ep.owns_sandbox:
            t0 = _now()
            ep.stage_until = t0 + (deadlines.sandbox_acquire or INF)
            if not self.sandbox_limiter.acquire_nowait():
                await self.sandbox_limiter.acquire()
            try:
                ep.sandbox = await self.provider.acquire()
            finally:
                self.sandbox_limiter.release()
            ep.t_sandbox += _now() - t0
        t0 = _now()
        ep.stage_until = t0 + (deadlines.env_step or INF)
        make = ep.env_factory or self.env_factory
        env = make(ep.task, ep.sandbox)
        if not hasattr(env, "astep") and inspect.isawaitable(env):  # an async factory
            env = await env
        ep.env = env
        observation, info = await env.areset(seed=ep.task.seed, options=ep.task.reset_options(ep.episode_id))
        ep.t_env += _now() - t0
        ep.stage_until = INF
        ep.messages.extend(observation)
        tools = info.get("tools")
        if tools:
            ep.tools = list(tools)
        if self._subagents_for(ep) is not None:
            ep.tools = [*ep.tools, *self.subagents.schemas]  # type: ignore[union-attr]
        ep.reset_done = True
        self._start_record(ep, resumed=False)
        if info.get("infra_failure"):
            ep.finish(EndReason.INFRA, _env_error(info))

    def _boundary(self, ep: Episode) -> bool:
        """The slow path of a step boundary (a stop or a pause asked for): True if the episode
        ends or pauses here."""
        if ep.stop is not None:
            self._stopped(ep)
            return True
        if self.versions.pause_requested and ep.parent is None:
            ep.finish(EndReason.PAUSED)
            return True
        return False  # a child during a pause: children finish their task

    def _over_budget(self, ep: Episode) -> bool:
        """True (and the episode truncated) if a per-episode budget is spent."""
        if ep.turn >= self._turns_for(ep):
            ep.finish(EndReason.MAX_TURNS)
            return True
        if ep.completion_tokens >= self._max_tokens:
            ep.finish(EndReason.MAX_TOKENS)
            return True
        if self._max_sandbox_cpu is not None:
            cpu = (ep.env_usage or {}).get("sandbox_cpu_s")
            if cpu is not None and cpu >= self._max_sandbox_cpu:
                ep.finish(EndReason.MAX_SANDBOX_CPU)
                return True
        return False

    def _after_step(self, ep: Episode, terminated: bool, truncated: bool, info: dict[str, Any]) -> bool:
        """The slow path after a step with news (info, the env's end, a budget spent): True if
        the episode ends here."""
        if info:
            if info.get("infra_failure"):
                ep.finish(EndReason.INFRA, _env_error(info))
                return True
            parts = info.get("reward_parts")
            if parts:
                ep.reward_parts = {**(ep.reward_parts or {}), **parts}
            usage = info.get("usage")
            if usage:
                ep.env_usage = usage
            if info.get("cost") is not None:
                ep.cost, ep.cost_parts = info["cost"], info.get("cost_parts")
        if terminated or truncated:
            # The env's own reason when it gives one it shares with us (a BoxEnv's "submitted",
            # "max_turns", "sandbox_wrecked"...), else the generic one.
            reason = _env_reason(info, EndReason.ENV_TERMINATED if terminated else EndReason.ENV_TRUNCATED)
            ep.finish(reason, info.get("error") if reason is EndReason.SANDBOX_WRECKED else None)
            return True
        return self._over_budget(ep)

    async def _retry_policy(self, policy: Policy, ep: Episode, first: UpstreamError) -> Any:
        retries = self.config.retries
        delay = retries.policy_backoff
        error: UpstreamError = first
        for _ in range(retries.policy_call_attempts - 1):
            self.metrics.policy_retries += 1
            await asyncio.sleep(delay)
            delay *= 2
            try:
                return await policy(ep)
            except UpstreamError as exc:
                error = exc
        raise error

    async def _judge(self, ep: Episode) -> None:
        """The manager's cost judge (when given), then its judge; the env's verdicts are replaced."""
        t0 = _now()
        if not self.judge_limiter.acquire_nowait():
            await self.judge_limiter.acquire()
        # The episode deadline covers acting, not judging (a judge must not run against a sandbox
        # that the episode deadline is about to reclaim); the judge has its own.
        ep.deadline_at = INF
        ep.stage_until = _now() + (self.config.deadlines.judge or INF)
        try:
            if self.cost is not None:
                cost = await self.cost(ep)
                ep.cost = float(cost.reward)
                ep.cost_parts = {**(ep.cost_parts or {}), **cost.parts}
            if self.judge is not None:
                verdict = await self.judge(ep)
                ep.reward = float(verdict.reward)
                ep.reward_parts = {**(ep.reward_parts or {}), **verdict.parts}
        finally:
            self.judge_limiter.release()
            ep.stage_until = INF
        ep.t_judge += _now() - t0

    async def _release(self, ep: Episode) -> None:
        """Close env and (owned) sandbox, each within ``StageDeadlines.close``; never raises but a
        cancellation from outside, and that only after both were tried."""
        env, ep.env = ep.env, None
        sandbox, ep.sandbox = ep.sandbox, None
        ep.reset_done = False
        limit = self.config.deadlines.close
        # While the episode is registered the watchdog enforces the close deadline (no timer per
        # close); otherwise (a paused episode closed by aclose) a timer does.
        watched = self.running.get(ep.episode_id) is ep
        cancelled = False
        for resource in (env, sandbox if ep.owns_sandbox else None):
            if resource is None:
                continue
            try:
                if watched:
                    ep.stage_until = _now() + limit
                    ep.phase = CLOSING
                    await resource.aclose()
                else:
                    async with asyncio.timeout(limit):
                        await resource.aclose()
            except asyncio.CancelledError:
                if ep.phase == CLOSE_EXPIRED:
                    task = asyncio.current_task()
                    if task is not None:
                        task.uncancel()
                    self._close_failed(ep, f"close of {type(resource).__name__} passed {limit}s")
                else:
                    cancelled = True  # finish releasing the rest, then let the cancellation through
            except Exception as exc:  # noqa: BLE001 - a failed close is reported, not raised
                self._close_failed(ep, _describe(exc))
            finally:
                ep.phase = IDLE
                ep.stage_until = INF
        if cancelled:
            raise asyncio.CancelledError

    def _close_failed(self, ep: Episode, why: str) -> None:
        self.metrics.close_failures += 1
        if ep.error is None:
            ep.error = f"close failed: {why}"

    # -- records ----------------------------------------------------------------------------------

    def _start_record(self, ep: Episode, *, resumed: bool) -> None:
        if self.writer is None:
            return
        meta: dict[str, Any] = {"group_id": ep.group_id, "sample_index": ep.sample_index, "attempt": ep.attempts}
        if ep.task.meta:  # the caller's own record of the task (a replay's branch_of); ours win
            meta = {**ep.task.meta, **meta}
        if resumed:
            meta["resumed_at_step"] = ep.turn
        if ep.retry_of is not None:
            meta["retry_of"] = ep.retry_of
        if ep.subagent_name is not None:
            meta.update(subagent=ep.subagent_name, frozen=ep.frozen, spawned_at_step=ep.spawned_at_step)
        task = ep.task
        self.writer.write_start_soon(
            ep.episode_id,
            task.env_id,
            task.task_id,
            task.seed,
            None if ep.parent is None else ep.parent.episode_id,
            meta,
            time.time(),
        )

    def _end_record(self, ep: Episode) -> None:
        if self.writer is None:
            return
        outcome = ep.outcome or _INFRA_FAILURE
        scored = outcome in _SCORED
        meta: dict[str, Any] = {"completion_tokens": ep.completion_tokens}
        if ep.children:
            meta["children"] = [c.episode_id for c in ep.children]
        usage = episode_usage(ep.completions, ep.completion_tokens, ep.t_policy, ep.env_usage)
        cost = ep.cost
        self.writer.write_end_soon(
            ep.episode_id,
            outcome,
            ep.reward if scored else None,
            ep.turn,
            ep.reason,
            dict(ep.reward_parts) if scored and ep.reward_parts else {},
            ep.error,
            meta,
            time.time(),
            cost if scored else None,
            dict(ep.cost_parts) if scored and cost is not None and ep.cost_parts else {},
            usage.to_json(),
        )


