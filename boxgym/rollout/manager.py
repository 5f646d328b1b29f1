"""The rollout manager: one asyncio task per episode, results streamed as they finish.

    async with RolloutManager(make_env, policy, config=RolloutConfig(), run_dir="runs/r1") as manager:
        async for group in manager.run_groups(tasks, group_size=8):      # GRPO: K samples per task
            trainer.add(group)

A manager is a per-process scheduler with no hidden globals: everything it
shares (limiters, counters, the writer, the watchdog) hangs off the instance,
so a later step can run one per Ray actor, each with its own container engine
and gateway.

Admission control takes one slot of ``Concurrency.episodes`` per root episode, for
its whole life including the hand-off of its result; the tasks iterable is
consumed lazily, so a million tasks cost memory only as they are admitted, and
a consumer that stops reading results stops admission (a bounded results
buffer, never an unbounded queue).

Partial rollout: a run given an :class:`~boxgym.rollout.config.IterationBudget`
stops admitting when the budget is spent and pauses every running episode at
its next step boundary, keeping its state (messages, completions, env and
sandbox alive). The next ``run`` resumes paused episodes first, then the
tasks not yet admitted, then its own tasks. Every completion carries the
weight version it was sampled with (:meth:`RolloutManager.set_weight_version`).
Each ``run`` (or ``run_groups``) is one iteration: :attr:`RolloutManager.iteration`
counts them from 0, and a group carries the iteration that completed it (Toggle's phase
follows it, :mod:`boxgym.rollout.toggle`).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..trajectories import EndReason, Outcome, TrajectoryWriter
from .config import IterationBudget, RolloutConfig
from .driver import Driver, MakeEnv, RolloutJudge
from .limiter import Limiter
from .metrics import RolloutMetrics
from .policy import EpisodeView, Policy
from .progress import ProgressLine
from .state import CANCELLABLE, CLOSE_EXPIRED, CLOSING, INF, Episode
from .types import EpisodeResult, Group, TaskRef

__all__ = ["RolloutManager"]

_DONE = object()
_PAUSED = Outcome.PAUSED


class _Results:
    """A bounded hand-off from finishing episodes to the consumer.

    ``asyncio.Queue`` wakes the consumer through a future per item and lets a
    newcomer take the slot a woken putter was promised; this takes a result
    without a coroutine call while there is room (:meth:`offer`), wakes the
    consumer once per batch, and hands slots to waiting putters in FIFO order
    (a slot freed by :meth:`get` is reserved for the oldest putter). Full means
    backpressure: the finishing episode waits in :meth:`put`, holding its
    admission slot, so admission stops too.
    """

    __slots__ = ("_bound", "_getter", "_items", "_putters", "_reserved")

    def __init__(self, bound: int) -> None:
        self._items: deque[Any] = deque()
        self._bound = bound
        self._getter: asyncio.Future[None] | None = None
        self._putters: deque[asyncio.Future[None]] = deque()
        self._reserved = 0

    def _append(self, item: Any) -> None:
        self._items.append(item)
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)

    def offer(self, item: Any) -> bool:
        if self._putters or len(self._items) + self._reserved >= self._bound:
            return False
        self._append(item)
        return True

    async def put(self, item: Any) -> None:
        if self.offer(item):
            return
        fut = asyncio.get_running_loop().create_future()
        self._putters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._reserved -= 1  # woken (a slot was reserved for us) but leaving: pass it on
                self._wake_putter()
            else:
                try:
                    self._putters.remove(fut)  # O(n), on cancellation only
                except ValueError:
                    pass
            raise
        self._reserved -= 1
        self._append(item)

    def _wake_putter(self) -> None:
        while self._putters and len(self._items) + self._reserved < self._bound:
            fut = self._putters.popleft()
            if not fut.done():
                self._reserved += 1
                fut.set_result(None)

    def force(self, item: Any) -> None:
        """Past the bound: for the end-of-run marker and the manager's own errors."""
        self._append(item)

    async def get(self) -> Any:
        while not self._items:
            self._getter = asyncio.get_running_loop().create_future()
            await self._getter
        item = self._items.popleft()
        if self._putters:
            self._wake_putter()
        return item


class _Control:
    """What every episode of one manager reads on each step: weight version and pause request."""

    __slots__ = ("pause_at_tokens", "pause_requested", "weight_version")

    def __init__(self) -> None:
        self.weight_version: str | None = None
        self.pause_requested = False
        self.pause_at_tokens: float = INF  # metrics.tokens at which this iteration's token budget is spent

    def request_pause(self) -> None:
        self.pause_requested = True


class _Iteration:
    """The state of one ``run``: its results channel, budget and count of live root episodes."""

    __slots__ = ("budget", "finished", "idle", "live", "queue")

    def __init__(self, queue: _Results, budget: IterationBudget) -> None:
        self.queue = queue
        self.budget = budget
        self.finished = 0
        self.live = 0  # root episodes admitted whose result is not out yet (they are in driver.running)
        self.idle = asyncio.Event()


class RolloutManager:
    """Runs episodes of ``env_factory``'s envs driven by ``policy``; see the module docstring.

    ``episode_base_url`` gives each episode its own policy base URL: a
    template with ``{episode_id}`` (e.g. the embedded gateway's
    ``http://127.0.0.1:PORT/episodes/{episode_id}/v1``) or a function.
    ``gateway`` is an embedded, started :class:`boxgym.gateway.Gateway`: its
    ``base_url_for`` becomes the episodes' base URL and weight versions are
    forwarded to it. ``on_episode_start(episode)`` runs before an episode's
    reset (e.g. to script a mock engine for that episode id). Episode ids are
    ``{name}-{n}``, ``n`` counting up from 0 in task order (K per task).
    ``progress=None`` shows the progress line only on a terminal. ``cost`` is the manager's
    cost judge, shaped like ``judge`` (e.g. :class:`~boxgym.rollout.UsageCost`): its verdict's
    reward is the episode's cost, in place of the env's (``info["cost"]``) when both give one.
    """

    def __init__(
        self,
        env_factory: MakeEnv,
        policy: Policy,
        *,
        config: RolloutConfig | None = None,
        provider: Any = None,
        judge: RolloutJudge | None = None,
        run_dir: str | Path | None = None,
        episode_base_url: str | Callable[[str], str] | None = None,
        gateway: Any = None,
        on_episode_start: Callable[[EpisodeView], None] | None = None,
        subagent_env: MakeEnv | None = None,
        progress: bool | None = None,
        name: str | None = None,
        cost: RolloutJudge | None = None,
    ) -> None:
        self.config = config or RolloutConfig()
        self.name = name or uuid.uuid4().hex[:6]
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.writer = None if self.run_dir is None else TrajectoryWriter(self.run_dir)
        self.metrics = RolloutMetrics()
        self._control = _Control()
        # An embedded gateway (boxgym.gateway.Gateway, started) gives every episode its own base
        # URL, so each call of a black-box agent is recorded under its episode, and follows the
        # manager's weight version.
        self.gateway = gateway
        if gateway is not None and episode_base_url is None:
            episode_base_url = gateway.base_url_for
        if isinstance(episode_base_url, str):
            template = episode_base_url
            episode_url: Callable[[str], str] | None = lambda episode_id: template.format(episode_id=episode_id)
        else:
            episode_url = episode_base_url
        self._driver = Driver(
            config=self.config,
            policy=policy,
            env_factory=env_factory,
            provider=provider,
            judge=judge,
            writer=self.writer,
            metrics=self.metrics,
            versions=self._control,
            episode_url=episode_url,
            on_start=on_episode_start,
            cost=cost,
        )
        # A judge that runs sub-rollouts of its own (an agent as judge) gets the driver to make them with.
        for scorer in (judge, cost):
            bind = getattr(scorer, "bind", None)
            if callable(bind):
                bind(self._driver)
        if self.config.subagents is not None:
            from .subagents import ConversationEnv, SubagentTools

            self._driver.subagents = SubagentTools(self.config.subagents, subagent_env or ConversationEnv.factory)
        self._admission = Limiter("episodes", self.config.concurrency.episodes)
        self._progress_enabled = progress
        self._ids = itertools.count()
        self._groups = itertools.count()
        self._paused: list[Episode] = []
        self._carry: Iterator[Episode] = iter(())
        self._partial_groups: dict[str, list[EpisodeResult]] = {}
        self._group_sizes: dict[str, int] = {}  # only while run_groups reads: group id -> K
        self._cancelled_groups: set[str] = set()
        # Every episode the manager is responsible for, by id: root episodes from admission until
        # their result is out (the manager adds and removes them), children while the driver runs
        # them (the driver does). The watchdog, cancellation and teardown all read this one dict.
        self._live = self._driver.running
        self._iterating = False
        self._it: _Iteration | None = None
        self._runs = 0  # runs started: the current (or last) one is iteration _runs - 1
        self._closed = False

    # -- weights and control ------------------------------------------------------------------

    @property
    def weight_version(self) -> str | None:
        return self._control.weight_version

    def set_weight_version(self, version: str | int | None) -> None:
        """Completions from now on are stamped with ``version`` unless the policy says otherwise."""
        self._control.weight_version = None if version is None else str(version)
        if self.gateway is not None:
            self.gateway.set_weight_version(self._control.weight_version)

    def pause(self) -> None:
        """End the current run as its budget would: stop admitting and pause every running
        episode at its next step boundary (the next ``run`` resumes them). For a budget that
        spans several managers (``boxgym.rollout.ray``); nothing happens outside a run."""
        if self._iterating:
            self._control.request_pause()

    @property
    def iteration(self) -> int:
        """The iteration of the current run, or of the next one between runs: the number of
        runs (``run``/``run_groups`` calls) started before it, from 0."""
        return self._runs - 1 if self._iterating else self._runs

    @property
    def paused(self) -> tuple[str, ...]:
        """Ids of the episodes paused by the last run, resumed first by the next."""
        return tuple(ep.episode_id for ep in self._paused)

    @property
    def live_episodes(self) -> tuple[EpisodeView, ...]:
        """Root episodes admitted and not yet out, and children being driven (read-only views)."""
        return tuple(self._live.values())

    def cancel(self, episode_id: str) -> bool:
        """Cancel one episode (running or paused); its policy call is cancelled, its sandbox released."""
        ep = self._live.get(episode_id)
        if ep is None:
            ep = next((p for p in self._paused if p.episode_id == episode_id), None)
        if ep is None:
            return False
        self._stop(ep, EndReason.CANCELLED)
        return True

    def cancel_group(self, group_id: str) -> int:
        """Cancel every episode of a group, including those not admitted yet."""
        self._cancelled_groups.add(group_id)
        hits = [ep for ep in (*self._live.values(), *self._paused) if ep.group_id == group_id and ep.parent is None]
        for ep in hits:
            self._stop(ep, EndReason.CANCELLED)
        return len(hits)

    def cancel_all(self) -> int:
        """Cancel every running and paused episode and stop admitting: the current run ends."""
        self._carry = iter(())
        self._control.request_pause()  # stops the feeder; running episodes get cancelled below
        hits = [*(ep for ep in self._live.values() if ep.parent is None), *self._paused]
        for ep in hits:
            self._stop(ep, EndReason.CANCELLED)
        return len(hits)

    def _stop(self, ep: Episode, reason: EndReason) -> None:
        if ep.stop is None:
            ep.stop = reason
        if ep.phase == CANCELLABLE and ep.handle is not None:
            ep.handle.cancel()

    # -- metrics ----------------------------------------------------------------------------------

    def prometheus_text(self) -> str:
        d = self._driver
        return self.metrics.prometheus_text([self._admission, d.sandbox_limiter, d.policy_limiter, d.judge_limiter])

    # -- runs -------------------------------------------------------------------------------------

    def run(
        self, tasks: Iterable[TaskRef] = (), *, group_size: int = 1, budget: IterationBudget | None = None
    ) -> AsyncIterator[EpisodeResult]:
        """Stream results as episodes finish (paused ones are kept, not streamed)."""
        if group_size < 1:
            raise ValueError("group_size must be >= 1")
        return self._iterate(tasks, group_size, budget, track_groups=False)

    async def run_groups(
        self, tasks: Iterable[TaskRef] = (), *, group_size: int, budget: IterationBudget | None = None
    ) -> AsyncIterator[Group]:
        """Stream whole groups: the K episodes of a task, once all K have finished (over iterations)."""
        if group_size < 1:
            raise ValueError("group_size must be >= 1")
        async for result in self._iterate(tasks, group_size, budget, track_groups=True):
            members = self._partial_groups.setdefault(result.group_id, [])
            members.append(result)
            if len(members) == self._group_sizes.get(result.group_id, group_size):
                del self._partial_groups[result.group_id]
                self._group_sizes.pop(result.group_id, None)
                members.sort(key=lambda r: r.sample_index)
                yield Group(result.group_id, result.task, tuple(members), self._runs - 1)

    async def collect(self, tasks: Iterable[TaskRef] = (), **kwargs: Any) -> list[EpisodeResult]:
        """Run to the end and return every result (for small runs and tests)."""
        return [result async for result in self.run(tasks, **kwargs)]

    def _expand(self, tasks: Iterable[TaskRef], group_size: int, track_groups: bool) -> Iterator[Episode]:
        now = time.monotonic
        for task in tasks:
            group_id = f"{self.name}-g{next(self._groups)}"
            if track_groups:
                self._group_sizes[group_id] = group_size
            for k in range(group_size):
                episode_id = f"{self.name}-{next(self._ids)}"
                yield Episode(
                    episode_id, task, group_id=group_id, sample_index=k, versions=self._control, created_at=now()
                )

    async def _iterate(
        self, tasks: Iterable[TaskRef], group_size: int, budget: IterationBudget | None, *, track_groups: bool
    ) -> AsyncIterator[EpisodeResult]:
        if self._closed:
            raise RuntimeError("the rollout manager is closed")
        if self._iterating:
            raise RuntimeError("one run at a time per manager; start another manager for a concurrent run")
        self._iterating = True
        self._runs += 1
        control = self._control
        control.pause_requested = False
        budget = budget or IterationBudget()
        control.pause_at_tokens = self.metrics.tokens + budget.max_tokens if budget.max_tokens is not None else INF
        loop = asyncio.get_running_loop()
        it = self._it = _Iteration(_Results(self.config.concurrency.results_buffer), budget)
        queue = it.queue
        paused, self._paused = self._paused, []
        source = itertools.chain(paused, self._carry, self._expand(tasks, group_size, track_groups))
        self._carry = iter(())
        feeder = loop.create_task(self._feed(source, it))
        watchdog = loop.create_task(self._watchdog())
        timer = loop.call_later(budget.max_seconds, control.request_pause) if budget.max_seconds is not None else None
        progress = ProgressLine.start(self.metrics, enabled=self._progress_enabled)
        try:
            items = queue._items
            while True:
                # Take what is there without a coroutine call; wait only when nothing is.
                item = items.popleft() if items and not queue._putters else await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            if timer is not None:
                timer.cancel()
            if not feeder.done():
                # The consumer left early (or failed): cancel everything this run started.
                self.cancel_all()
                feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)
            progress.stop()
            if self.writer is not None:
                self.writer.flush()
            self._it = None
            self._iterating = False

    async def _feed(self, source: Iterator[Episode], it: _Iteration) -> None:
        loop = asyncio.get_running_loop()
        control = self._control
        admission = self._admission
        drive = self._driver.drive
        done = self._done
        live = self._live
        now = time.monotonic
        # The garbage collector is off while this loop admits a burst without yielding, and back
        # on before every await and at the end, so no other code ever runs with it off. Everything
        # a burst makes lives as long as its episodes, and the collector's full passes while the
        # burst grows would each revisit every episode admitted so far (measured at 100k
        # episodes: 10 full passes, about a quarter of the run's time, against 2 with this).
        pause_gc = self.config.gc_pause_admission
        gc_off = False  # this loop holds the collector off now
        try:
            if pause_gc and gc.isenabled():
                gc.disable()
                gc_off = True
            for ep in source:
                if control.pause_requested:
                    self._carry = itertools.chain((ep,), source)
                    break
                if not admission.acquire_nowait():
                    if gc_off:
                        gc.enable()
                        gc_off = False
                    await admission.acquire()
                    if pause_gc and gc.isenabled():  # (the process may have turned it off meanwhile)
                        gc.disable()
                        gc_off = True
                if control.pause_requested:
                    admission.release()
                    self._carry = itertools.chain((ep,), source)
                    break
                if ep.group_id in self._cancelled_groups and ep.stop is None:
                    ep.stop = EndReason.CANCELLED  # (checked after waiting: the group may have been cancelled meanwhile)
                live[ep.episode_id] = ep
                it.live += 1
                if not ep.reset_done:
                    self.metrics.started += 1
                ep.t_queued += now() - ep.created_at
                # The task runs the driver's frame directly (no wrapper coroutine: every frame in
                # the chain costs on every step); the driver calls _done at the end.
                ep.handle = loop.create_task(drive(ep, done))
            if gc_off:
                gc.enable()
                gc_off = False
            while it.live:  # idle may be stale: it was set whenever live emptied while feeding
                it.idle.clear()
                await it.idle.wait()
            it.queue.force(_DONE)
        except BaseException as exc:
            if gc_off:
                gc.enable()
                gc_off = False
            tasks = [ep.handle for ep in live.values() if ep.parent is None and ep.handle is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if not isinstance(exc, asyncio.CancelledError):
                it.queue.force(exc)  # a bug of the manager itself: the consumer sees it
            raise

    def _done(self, ep: Episode, torn_down: bool) -> Awaitable[None] | None:
        """Called by the driver at the end of a root episode, in its task."""
        it = self._it
        if torn_down or it is None:
            self._slot_free(it, ep)
            return None
        if ep.outcome is _PAUSED:
            ep.outcome = ep.reason = None
            ep.created_at = time.monotonic()
            self._paused.append(ep)
            self._slot_free(it, ep)
            return None
        result = ep.result(keep_messages=self.config.keep_messages)
        if it.queue.offer(result):
            self._delivered(it, ep)
            return None
        return self._deliver(it, ep, result)  # the consumer is behind: backpressure

    async def _deliver(self, it: _Iteration, ep: Episode, result: EpisodeResult) -> None:
        try:
            await it.queue.put(result)
        finally:
            self._delivered(it, ep)

    def _delivered(self, it: _Iteration, ep: Episode) -> None:
        it.finished += 1
        if it.budget.max_episodes is not None and it.finished >= it.budget.max_episodes:
            self._control.request_pause()
        self._slot_free(it, ep)

    def _slot_free(self, it: _Iteration | None, ep: Episode) -> None:
        self._admission.release()
        if self._live.pop(ep.episode_id, None) is not None and it is not None:
            it.live -= 1
            if not it.live:
                it.idle.set()

    async def _watchdog(self) -> None:
        """Enforce every deadline of every episode from one task (see StageDeadlines)."""
        tick = self.config.deadlines.watchdog_tick()
        running = self._driver.running
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for ep in list(running.values()):
                if now < ep.stage_until and now < ep.deadline_at:
                    continue  # nothing due (every case below needs one of the two passed): ~100k per tick
                phase = ep.phase
                if phase == CLOSING:
                    if now >= ep.stage_until and ep.handle is not None:
                        ep.phase = CLOSE_EXPIRED
                        ep.handle.cancel()
                    continue
                if phase != CANCELLABLE or ep.stop is not None:
                    continue
                if now >= ep.deadline_at:
                    self._stop(ep, EndReason.DEADLINE)
                elif now >= ep.stage_until:
                    self._stop(ep, EndReason.STAGE_DEADLINE)

    # -- lifecycle --------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Release paused episodes' envs and sandboxes and close the writer. Idempotent."""
        if self._closed:
            return
        if self._iterating:
            self.cancel_all()  # a run still being read ends with cancelled results
        self._closed = True
        self._carry = iter(())
        paused, self._paused = self._paused, []
        for ep in paused:
            ep.finish(EndReason.CANCELLED)
            self._driver.ended(ep)
            await self._driver._release(ep)
            self._driver._end_record(ep)
        if self.writer is not None:
            self.writer.close()

    async def __aenter__(self) -> RolloutManager:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
