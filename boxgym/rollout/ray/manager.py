"""The driver side: one object with the rollout manager's API over many Ray actors.

Tasks are consumed lazily, as one process's manager does. Each task becomes a ticket sent to
one actor: an actor is given tasks up to its manager's admission bound plus a few queued
ahead, so its manager never waits for the driver, and the actor that asks first gets the
next ones. Results come back in batches, each with its ticket. A task's K samples run on one
actor and come back together (``run`` then streams them one by one), so a task is the unit
of everything below.

An actor that dies (its process, or its node) fails its pending ``exchange`` call. The tasks
it held whose results had not come back are sent to the other actors, each such attempt
counted as lost to an infrastructure failure (the results' ``attempts`` say so); a task whose
attempts reach ``Retries.episode_attempts`` is reported as infrastructure failures, reward
``None``, instead. Results that came back are never run again and the ones that did not are
never kept. The dead actor's containers are removed by ``boxgym gc`` on its node, the
manifest records the loss, and a fresh actor takes its place while
``Placement.replacements`` allows.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray
from ray import cloudpickle
from ray.exceptions import RayActorError, RayTaskError

from ...errors import RolloutActorsLost
from ...trajectories import EndReason, Outcome
from ...trajectories.run import SHARDS, ShardLost, ShardStarted, record_shard
from ..config import IterationBudget, Retries
from ..metrics import RolloutMetrics
from ..progress import ProgressLine
from ..types import EpisodeResult, Group, TaskRef
from .actor import ActorInfo, Batch, MakeManager, RolloutActor, Shard, read_items, task_fields, unpack
from .metrics import merged_metrics, tally
from .placement import Placement, Slots, gc_node
from .state import ActorState, RunState, Ticket

__all__ = ["RayRolloutManager"]

_END = object()
_POLL_WAIT = 1.0  # longest an exchange waits for results (so retries reach a busy actor within it)
_START_TIMEOUT = 300.0  # placing an actor and building its manager (images, pools)


class RayRolloutManager:
    """The :class:`~boxgym.rollout.RolloutManager` API over one manager per Ray actor.

    ``build(shard, resources)`` makes each actor's manager in the actor's process (see
    :data:`~boxgym.rollout.ray.MakeManager`). Ray must be initialized (:func:`connect`).
    ``run_dir`` gets ``shards/<name>/`` per actor and the manifest ``shards.jsonl``; read it
    back as one run with :class:`boxgym.trajectories.RunDir`. ``retries.episode_attempts``
    bounds the attempts of a sample whose actor died.
    """

    def __init__(
        self,
        build: MakeManager,
        *,
        placement: Placement | None = None,
        run_dir: str | Path | None = None,
        retries: Retries | None = None,
        progress: bool | None = None,
        name: str | None = None,
        poll_interval: float = 0.5,
    ) -> None:
        if not ray.is_initialized():
            raise RuntimeError("Ray is not initialized: call boxgym.rollout.ray.connect() (or ray.init()) first")
        self.name = name or "r" + uuid.uuid4().hex[:6]
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.placement = placement or Placement()
        self.retries = retries or Retries()
        self.metrics = RolloutMetrics()  # merged over the actors; refreshed while a run goes on
        self._build = build
        self._progress = progress
        self._poll_interval = poll_interval
        self._slots = Slots(self.placement)
        self._actors: list[ActorState] = []
        self._lost: list[ActorState] = []
        self._replacements = self.placement.replacements
        self._count = itertools.count()  # shard indices
        self._tickets = itertools.count()
        self._retry: deque[Ticket] = deque()
        self._carry: Iterator[Ticket] = iter(())
        self._source: Iterator[Ticket] = iter(())
        self._source_done = True
        self._retried = 0  # samples sent again after their actor died
        self._cleanups: set[asyncio.Task[int]] = set()  # gc on the nodes of lost actors
        self._weight_version: str | None = None
        self._paused: tuple[str, ...] = ()
        self._paused_group_size = 1
        self._run: RunState | None = None
        self._started = False
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Reserve the placement and start every actor (each builds its manager)."""
        if self._started:
            return
        self._started = True
        await self._slots.reserve()
        try:
            await asyncio.gather(*(self._spawn(position) for position in range(len(self._slots.strategies))))
        except BaseException:
            await self.aclose()
            raise

    async def _spawn(self, position: int) -> ActorState:
        index = next(self._count)
        name = f"{self.name}_{index}"  # no '-': episode ids are '<name>-<n>', and routing splits there
        shard = Shard(index, name, None if self.run_dir is None else self.run_dir / SHARDS / name)
        remote = ray.remote(RolloutActor).options(
            num_cpus=self.placement.num_cpus, max_restarts=0, scheduling_strategy=self._slots.strategies[position]
        )
        actor = ActorState(shard, position, remote.remote(self._build, shard))
        try:
            actor.info = await asyncio.wait_for(actor.handle.start.remote(), timeout=_START_TIMEOUT)
            if self._weight_version is not None:
                await actor.handle.set_weight_version.remote(self._weight_version)
        except BaseException as exc:
            ray.kill(actor.handle)
            if isinstance(exc, RayTaskError):
                raise exc.as_instanceof_cause() from None  # the builder's own error (no engine, a bad config)
            raise
        info = actor.info
        if self.run_dir is not None:
            record_shard(self.run_dir, ShardStarted(info.name, info.node_id, info.host, info.pid, time.time()))
        self._actors.append(actor)
        return actor

    async def aclose(self) -> None:
        """Close every actor's manager and resources, end the actors, free the placement. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._run is not None:
            self.pause()
        actors, self._actors = self._actors, []
        await asyncio.gather(*(self._close_actor(a) for a in actors))
        await asyncio.gather(*self._cleanups, return_exceptions=True)
        self._slots.release()

    async def _close_actor(self, actor: ActorState) -> None:
        try:
            await asyncio.wait_for(actor.handle.aclose.remote(), timeout=60)
        except Exception:  # noqa: BLE001 - closing a dead or stuck actor: kill it regardless
            pass
        ray.kill(actor.handle)

    async def __aenter__(self) -> RayRolloutManager:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- what the manager has too -----------------------------------------------------------------

    @property
    def actors(self) -> tuple[ActorInfo, ...]:
        """The live actors: name, node, host, pid, capacity."""
        return tuple(a.info for a in self._actors if a.info is not None)

    @property
    def lost_actors(self) -> tuple[ActorInfo, ...]:
        return tuple(a.info for a in self._lost if a.info is not None)

    @property
    def weight_version(self) -> str | None:
        return self._weight_version

    def set_weight_version(self, version: str | int | None) -> None:
        """Broadcast to every actor; an actor applies it before anything sent to it later."""
        self._weight_version = None if version is None else str(version)
        for actor in self._actors:
            actor.handle.set_weight_version.remote(self._weight_version)

    def pause(self) -> None:
        """End the current run as a spent budget does: every actor stops admitting and pauses its
        running episodes; the next run resumes them (on the same actors)."""
        run = self._run
        if run is None or run.pausing:
            return
        run.pausing = True
        for actor in self._actors:
            actor.handle.pause.remote()
        run.changed.set()

    @property
    def paused(self) -> tuple[str, ...]:
        """Ids of the episodes the last run paused, over every actor."""
        return self._paused

    async def cancel_all(self) -> int:
        """Cancel every running and paused episode and stop admitting: the current run ends."""
        self._carry = iter(())
        self._retry.clear()
        self._source, self._source_done = iter(()), True
        if self._run is not None:
            self._run.pausing = True
            self._run.changed.set()
        counts = await asyncio.gather(*(a.handle.cancel_all.remote(False) for a in self._actors), return_exceptions=True)
        return sum(c for c in counts if isinstance(c, int))

    def prometheus_text(self) -> str:
        return self.metrics.prometheus_text()

    async def refresh_metrics(self) -> RolloutMetrics:
        """Ask every actor for its counters and merge them into :attr:`metrics`."""
        snapshots = await asyncio.gather(*(a.handle.metrics.remote() for a in self._actors), return_exceptions=True)
        for actor, snapshot in zip(list(self._actors), snapshots):
            if isinstance(snapshot, RolloutMetrics):
                actor.final = snapshot
        merged_metrics(self.metrics, self._actors, self._lost, self._retried)
        return self.metrics

    # -- runs -------------------------------------------------------------------------------------

    def run(self, tasks: Iterable[TaskRef] = (), *, group_size: int = 1, budget: IterationBudget | None = None) -> AsyncIterator[EpisodeResult]:
        """Stream results as episodes finish, from every actor (paused ones are kept, not streamed)."""
        if group_size < 1:
            raise ValueError("group_size must be >= 1")
        return self._iterate(tasks, group_size, budget, groups=False)

    def run_groups(self, tasks: Iterable[TaskRef] = (), *, group_size: int, budget: IterationBudget | None = None) -> AsyncIterator[Group]:
        """Stream whole groups: a task's K episodes run on one actor and arrive together."""
        if group_size < 1:
            raise ValueError("group_size must be >= 1")
        return self._iterate(tasks, group_size, budget, groups=True)

    async def collect(self, tasks: Iterable[TaskRef] = (), **kwargs: Any) -> list[EpisodeResult]:
        """Run to the end and return every result (for small runs and tests)."""
        return [result async for result in self.run(tasks, **kwargs)]

    async def _iterate(self, tasks: Iterable[TaskRef], group_size: int, budget: IterationBudget | None, *, groups: bool) -> AsyncIterator[Any]:
        if self._closed or not self._started:
            raise RuntimeError("the Ray rollout manager is closed or not started (use it as `async with`)")
        if self._run is not None:
            raise RuntimeError("one run at a time per manager")
        if self._paused and group_size != self._paused_group_size:
            raise ValueError(f"resume paused episodes with the group_size they started with ({self._paused_group_size})")
        budget = budget or IterationBudget()
        await self.refresh_metrics()
        run = self._run = RunState(group_size, groups, budget, self.metrics.tokens)
        fresh = (Ticket(next(self._tickets), task, group_size) for task in tasks)
        self._source, self._carry = itertools.chain(self._carry, fresh), iter(())
        self._source_done = False
        loop = asyncio.get_running_loop()
        run.pumps = [loop.create_task(self._pump(actor, run)) for actor in self._actors]
        poller = loop.create_task(self._poll(run))
        timer = loop.call_later(budget.max_seconds, self.pause) if budget.max_seconds is not None else None
        progress = ProgressLine.start(self.metrics, enabled=self._progress)
        finished = False
        try:
            while True:
                item = await run.out.get()
                if item is _END:
                    finished = True
                    break
                if isinstance(item, BaseException):
                    raise item
                for thing in item:
                    yield thing
        finally:
            if timer is not None:
                timer.cancel()
            for task in (*run.pumps, poller):
                task.cancel()
            await asyncio.gather(*run.pumps, poller, return_exceptions=True)
            if not finished:
                # The consumer left early (or failed): cancel what this run started, drop its results.
                self._carry = iter(())
                self._retry.clear()
                await asyncio.gather(*(a.handle.cancel_all.remote(True) for a in self._actors), return_exceptions=True)
                for actor in self._actors:
                    actor.outstanding.clear()
            elif run.pausing and not self._source_done:
                self._carry = self._source  # the tasks not sent yet, for the next run
            self._source, self._source_done = iter(()), True
            self._paused, self._paused_group_size = tuple(run.paused), group_size
            self._run = None
            await self.refresh_metrics()
            progress.stop()

    async def _poll(self, run: RunState) -> None:
        max_tokens = run.budget.max_tokens
        while True:
            await asyncio.sleep(self._poll_interval)
            await self.refresh_metrics()
            if max_tokens is not None and self.metrics.tokens - run.tokens0 >= max_tokens:
                self.pause()  # (overshoots by what is sampled within one poll interval)

    # -- one actor's share of a run -----------------------------------------------------------------

    def _capacity(self, actor: ActorState, run: RunState) -> int:
        """The actor's admission bound, in tasks."""
        return math.ceil((actor.info.capacity if actor.info is not None else 1) / run.group_size)

    def _want(self, actor: ActorState, run: RunState) -> int:
        """Tasks the actor should be given now: up to its admission bound, and a few more queued
        ahead (so that its manager never finds its feed dry while the driver has more) once
        every other actor has its own bound's worth (so that the first to ask does not take all)."""
        capacity = self._capacity(actor, run)
        if self._others_short(actor, run):
            return max(0, capacity - len(actor.outstanding))
        return capacity + max(4, capacity // 4) - len(actor.outstanding)

    def _others_short(self, actor: ActorState, run: RunState) -> bool:
        return any(
            len(other.outstanding) < self._capacity(other, run)
            for other in self._actors
            if other is not actor and not run.idle.get(other.shard.name, False)
        )

    def _take(self, actor: ActorState, run: RunState) -> list[Ticket]:
        if run.pausing:
            return []
        n = self._want(actor, run)
        taken: list[Ticket] = []
        while len(taken) < n and self._retry:
            taken.append(self._retry.popleft())
        while len(taken) < n and not self._source_done:
            ticket = next(self._source, None)
            if ticket is None:
                self._source_done = True
                for other in self._actors:
                    if other is not actor:
                        other.handle.close_input.remote()  # (a long poll there would hold its end back)
            else:
                taken.append(ticket)
        for ticket in taken:
            actor.outstanding[ticket.id] = ticket
        return taken

    def _over(self, run: RunState) -> bool:
        return (
            (run.pausing or (self._source_done and not self._retry))
            and not run.spawning
            and all(run.idle.get(a.shard.name, False) for a in self._actors)
        )

    async def _pump(self, actor: ActorState, run: RunState) -> None:
        """Feed one actor and hand its results on until the run is over or the actor is lost."""
        name = actor.shard.name
        run.idle[name] = False
        try:
            await actor.handle.begin.remote(run.group_size)
            if run.pausing:  # a replacement that joined after the pause was broadcast
                await actor.handle.pause.remote()
            while True:
                tickets = self._take(actor, run)
                if run.idle[name] and not tickets:
                    if self._over(run):
                        if not run.ended:
                            run.ended = True
                            await run.out.put(_END)
                        return
                    run.changed.clear()
                    await run.changed.wait()
                    continue
                wait = _POLL_WAIT
                if not self._source_done and not run.pausing:
                    if self._want(actor, run) > 0:
                        wait = 0.0  # more to take at once
                    elif self._others_short(actor, run):
                        wait = 0.05  # more to take once the others have theirs: ask again soon
                # One pickle for the whole list, not Ray's walk over it with one pickle per task.
                payload = cloudpickle.dumps([(t.id, *task_fields(t.task)) for t in tickets]) if tickets else b""
                batch = await actor.handle.exchange.remote(payload, self._source_done, wait)
                await self._received(actor, run, batch)
                run.idle[name] = batch.done
                if batch.done:
                    run.paused.extend(batch.paused)
                    run.changed.set()
        except RayActorError as exc:
            run.idle.pop(name, None)
            await self._on_lost(actor, run, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a manager's own failure: the consumer sees it
            await run.out.put(exc.as_instanceof_cause() if isinstance(exc, RayTaskError) else exc)

    async def _received(self, actor: ActorState, run: RunState, batch: Batch) -> None:
        if not batch.count:
            return
        # A batch is thousands of new objects at once, all alive until the consumer takes them: the
        # collector's passes over them while they are made would cost more than making them
        # (measured: 13 us per result with it, 1.4 us without), so it waits until they are.
        paused_gc = gc.isenabled()
        if paused_gc:
            gc.disable()
        try:
            out = self._results(actor, run, read_items(batch))
        finally:
            if paused_gc:
                gc.enable()
        if run.budget.max_episodes is not None and run.delivered >= run.budget.max_episodes:
            self.pause()
        await run.out.put(out)

    def _results(self, actor: ActorState, run: RunState, items: list[tuple[int, Any]]) -> list[Any]:
        out: list[Any] = []
        ids: list[str] = []
        outstanding = actor.outstanding
        single = run.group_size == 1
        for ticket_id, item in items:
            ticket = outstanding.pop(ticket_id)
            task, lost = ticket.task, ticket.lost
            results = (unpack(item, task),) if single else tuple(unpack(p, task) for p in item[1])
            if lost:  # a retry of a task lost with another actor: its attempts count the lost ones
                results = tuple(replace(r, attempts=r.attempts + lost) for r in results)
            for result in results:
                tally(actor.tally, result)
                ids.append(result.episode_id)
            if run.groups:
                out.append(Group(results[0].group_id, task, results))
            else:
                out.extend(results)
            run.delivered += len(results)
        actor.last_ids = tuple(ids)
        return out

    # -- a lost actor ---------------------------------------------------------------------------------

    async def _on_lost(self, actor: ActorState, run: RunState, exc: BaseException) -> None:
        """Send what the dead actor held elsewhere, clean its node, replace it if allowed."""
        self._actors.remove(actor)
        self._lost.append(actor)
        error = f"the Ray actor {actor.shard.name} died: {type(exc).__name__}"
        if self.run_dir is not None:
            record_shard(self.run_dir, ShardLost(actor.shard.name, error, time.time(), actor.last_ids))
        failures: list[Any] = []
        for ticket in actor.outstanding.values():
            lost = ticket.lost + 1  # the attempt that died with the actor
            if lost < self.retries.episode_attempts:
                self._retried += ticket.size
                self._retry.append(Ticket(next(self._tickets), ticket.task, ticket.size, lost))
            else:
                failures.extend(self._failed(actor, run, ticket, lost, error))
        actor.outstanding.clear()
        if actor.info is not None:
            cleanup = asyncio.get_running_loop().create_task(gc_node(actor.info.node_id, actor.info.pid))
            self._cleanups.add(cleanup)
            cleanup.add_done_callback(self._cleanups.discard)
        if failures:
            await run.out.put(failures)
        if self._replacements > 0 and not self._closed:
            self._replacements -= 1
            run.spawning += 1
            try:
                fresh = await self._spawn(actor.position)
            except Exception:  # noqa: BLE001 - no replacement (its node is gone, say): the others go on
                fresh = None
            finally:
                run.spawning -= 1
                run.changed.set()
            if fresh is not None:
                await self._pump(fresh, run)
                return
        run.changed.set()
        if not self._actors:
            await run.out.put(RolloutActorsLost(f"every actor of {self.name} died ({error}) and none is left to replace them"))

    def _failed(self, actor: ActorState, run: RunState, ticket: Ticket, attempts: int, error: str) -> list[Any]:
        """A task out of attempts: its samples are infrastructure failures, reward None, as the
        manager reports them."""
        group_id = f"{actor.shard.name}-lost{ticket.id}"
        results = tuple(
            EpisodeResult(
                f"{group_id}s{k}", ticket.task, group_id, k, Outcome.INFRA_FAILURE, EndReason.INFRA,
                None, {}, 0, 0, (), (), {}, error, attempts,
            )
            for k in range(ticket.size)
        )
        for result in results:
            tally(actor.tally, result)
        run.delivered += len(results)
        return [Group(group_id, ticket.task, results)] if run.groups else list(results)
