"""The actor side: one :class:`~boxgym.rollout.RolloutManager` per Ray actor, fed in batches.

The driver (:mod:`boxgym.rollout.ray.manager`) talks to an actor through a few calls:

* ``start()`` builds the manager with the user's builder, in the actor's process (so its
  sandboxes use that node's Docker engine), and says where it runs;
* ``begin(group_size)`` starts a run (the manager resumes what the last one paused);
* ``exchange(tasks, close, wait)`` hands over tasks (pickled) and takes the results that are ready:
  a long poll that returns once something is ready, the run is over, or ``wait`` passed;
* ``close_input()``, ``pause()``, ``cancel_all()``, ``set_weight_version(v)``, ``metrics()``,
  ``aclose()``.

The manager reads its tasks from a synchronous iterator, so the actor gives it a feed that
yields what the driver has sent and ends when it holds nothing. A manager run whose feed ran
dry ends once its episodes have finished, and the actor starts the next one when tasks come;
the driver keeps a few tasks queued ahead so that this happens at the end of a run only.

With more than one sample per task the manager's ``run_groups`` runs them, so the K results of
a task go back together (and a task is retried whole if the actor dies). Each result or group
goes back with the driver's ticket of its task, found by identity: every task is a distinct
object here, and the manager's results carry the very task object they ran. The
ids of a batch are acknowledged by the driver's next ``exchange`` and only then appended to
the shard's ``delivered.jsonl`` (see :class:`boxgym.trajectories.RunDir`).
"""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
from collections import deque
from contextlib import AsyncExitStack
from dataclasses import dataclass, fields
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import ray
from ray import cloudpickle

from ...trajectories.run import mark_delivered
from ..types import EpisodeResult, Group, TaskRef, new_result

if TYPE_CHECKING:
    from ..manager import RolloutManager
    from ..metrics import RolloutMetrics

__all__ = ["ActorInfo", "Batch", "MakeManager", "RolloutActor", "Shard"]


@dataclass(frozen=True, slots=True)
class Shard:
    """One actor's part of a run, handed to the builder.

    The builder must give its manager ``name=shard.name`` (the prefix of the shard's episode
    and group ids, which keeps them unique across the run) and ``run_dir=shard.run_dir``.
    """

    index: int  # 0, 1, ... in order of creation; a replacement gets the next
    name: str
    run_dir: Path | None  # <run_dir>/shards/<name>, or None when the run records nothing


#: Builds one actor's manager, in the actor's process: ``async def build(shard, resources)``,
#: entering everything the manager needs (env factory, policy, gateway) into ``resources``,
#: which the actor closes after the manager. It must be picklable (a module-level function,
#: or a ``functools.partial`` of one).
MakeManager = Callable[[Shard, AsyncExitStack], Awaitable["RolloutManager"]]


@dataclass(frozen=True, slots=True)
class ActorInfo:
    """Where an actor runs and how much it takes at once."""

    name: str
    node_id: str
    host: str
    pid: int
    capacity: int  # the manager's Concurrency.episodes


#: A result on the wire: its fields in declaration order but the task, which the driver holds.
#: Unpickling a frozen dataclass sets its fields one by one through ``object.__setattr__``; a
#: plain tuple and the results' own constructor cost a fraction of that, for every result.
Packed = tuple[Any, ...]
_PACK = attrgetter(*(f.name for f in fields(EpisodeResult) if f.name != "task"))


def pack(result: EpisodeResult) -> Packed:
    return _PACK(result)


def unpack(packed: Packed, task: TaskRef) -> EpisodeResult:
    return new_result(packed[0], task, *packed[1:])


#: A task on the wire: its fields (a frozen dataclass pickles through ``dataclasses.fields``, per task).
task_fields = attrgetter(*(f.name for f in fields(TaskRef)))


def read_items(batch: Batch) -> list[tuple[int, Any]]:
    return pickle.loads(batch.items) if batch.count else []


@dataclass(frozen=True, slots=True)
class Batch:
    """What one ``exchange`` brings back: ``items`` is a pickled list of (ticket, packed result)
    pairs, or of (ticket, (group id, packed results)) with more than one sample per task, so
    that the driver unpickles it when it chooses (with the garbage collector held off; see
    :func:`read_items`); and whether the run is over here."""

    items: bytes
    count: int
    done: bool  # no episode left running and nothing left to run (or a pause or cancel ended the run)
    paused: tuple[str, ...] = ()  # when done: the episodes the manager keeps for the next run


class _Feed:
    """The manager's task iterator: what the driver has sent, ending (for now) when empty."""

    __slots__ = ("tasks",)

    def __init__(self) -> None:
        self.tasks: deque[TaskRef] = deque()

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> TaskRef:
        if self.tasks:
            return self.tasks.popleft()
        raise StopIteration


class RolloutActor:
    """The body of the Ray actor (``ray.remote(RolloutActor)``); see the module docstring."""

    def __init__(self, build: MakeManager, shard: Shard, linger: float = 0.002) -> None:
        self._build = build
        self._shard = shard
        self._linger = linger  # once one result is ready, wait this long for more to share the trip
        self._stack = AsyncExitStack()
        self._manager: RolloutManager | None = None
        self._feed = _Feed()
        self._tickets: dict[int, tuple[int, TaskRef]] = {}  # id(task) -> (ticket, task)
        self._out: list[tuple[int, Any]] = []
        self._unacked: list[str] = []
        self._ready = asyncio.Event()  # results are waiting, or the runner ended
        self._taken = asyncio.Event()  # the driver took the results (the runner waits for it when many wait)
        self._bound = 1024  # results held for the driver before the runner stops reading (backpressure)
        self._discard = False  # the driver left the run: results are dropped
        self._more = asyncio.Event()  # tasks came, or the input closed, or the run is to stop
        self._closed = False  # the driver has no more tasks for now
        self._stopping = False  # a pause or a cancel: the run ends, and is not restarted
        self._group_size = 1
        self._runner: asyncio.Task[None] | None = None

    async def start(self) -> ActorInfo:
        shard = self._shard
        if shard.run_dir is not None:
            shard.run_dir.mkdir(parents=True, exist_ok=True)
        manager = await self._build(shard, self._stack)
        self._stack.push_async_callback(manager.aclose)  # closed first: it releases its sandboxes to the rest
        if manager.name != shard.name or manager.run_dir != shard.run_dir:
            await self._stack.aclose()
            raise ValueError(
                f"the builder must make its manager with name={shard.name!r} and run_dir={shard.run_dir!r} "
                f"(it gave name={manager.name!r}, run_dir={manager.run_dir!r})"
            )
        self._manager = manager
        self._bound = manager.config.concurrency.results_buffer
        node = ray.get_runtime_context().get_node_id()
        return ActorInfo(shard.name, node, socket.gethostname(), os.getpid(), manager.config.concurrency.episodes)

    # -- a run -----------------------------------------------------------------------------------

    async def begin(self, group_size: int) -> None:
        if self._runner is not None and not self._runner.done():
            raise RuntimeError(f"actor {self._shard.name} is still running the last run")
        self._group_size = group_size
        self._closed = self._stopping = self._discard = False
        self._out, self._unacked = [], []
        self._start_runner()

    def _start_runner(self) -> None:
        self._ready.clear()
        self._runner = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        manager = self._manager
        assert manager is not None
        try:
            while True:
                k = self._group_size
                stream: Any = manager.run(self._feed) if k == 1 else manager.run_groups(self._feed, group_size=k)
                async for item in stream:
                    self._emit(item)
                    if len(self._out) >= self._bound:
                        self._taken.clear()
                        await self._taken.wait()  # the manager's results buffer fills, and admission stops
                while not self._feed.tasks and not self._closed and not self._stopping:
                    self._more.clear()
                    await self._more.wait()
                if self._stopping or not self._feed.tasks:
                    return
        finally:
            self._ready.set()

    def _emit(self, item: EpisodeResult | Group) -> None:
        ticket, _ = self._tickets.pop(id(item.task))
        if self._discard:
            return
        if isinstance(item, Group):
            self._out.append((ticket, (item.group_id, [pack(r) for r in item.results])))
        else:
            self._out.append((ticket, pack(item)))
        if not self._ready.is_set():
            self._ready.set()

    async def exchange(self, tasks_pickled: bytes, close: bool, wait: float) -> Batch:
        """Take a pickled list of ``(ticket, *task fields)``; return what is ready (see the module doc)."""
        tasks = pickle.loads(tasks_pickled) if tasks_pickled else []
        if self._unacked:
            if self._shard.run_dir is not None:
                mark_delivered(self._shard.run_dir, self._unacked)  # one short append per batch
            self._unacked = []
        feed = self._feed.tasks
        for ticket, *task_args in tasks:
            task = TaskRef(*task_args)  # a distinct object per ticket (results are matched by identity)
            self._tickets[id(task)] = (ticket, task)
            feed.append(task)
        self._closed = close
        if tasks or close:
            self._more.set()
        runner = self._runner
        if tasks and runner is not None and runner.done() and not self._stopping:
            runner.result()  # a manager failure is the driver's to see
            self._start_runner()  # more work after the run had ended here (another actor's, lost)
        if not self._out and wait > 0 and not self._ready.is_set():
            try:
                async with asyncio.timeout(wait):
                    await self._ready.wait()
            except TimeoutError:
                pass
            if self._out and self._linger:
                await asyncio.sleep(self._linger)
        items, self._out = self._out, []
        self._taken.set()
        if items:
            k = self._group_size
            self._unacked = [p[0] for _, item in items for p in ((item,) if k == 1 else item[1])]
        runner = self._runner
        done = runner is None or runner.done()
        if not done:
            self._ready.clear()  # nothing is waiting now; the next result or the runner's end sets it
        elif runner is not None:
            runner.result()
        payload = cloudpickle.dumps(items) if items else b""
        return Batch(payload, len(items), done, self._manager.paused if done and self._manager is not None else ())

    # -- control ---------------------------------------------------------------------------------

    async def close_input(self) -> None:
        """The driver has no more tasks (for now): a manager run whose feed is dry ends."""
        self._closed = True
        self._more.set()

    async def pause(self) -> None:
        self._stopping = True
        self._more.set()
        if self._manager is not None:
            self._manager.pause()

    async def cancel_all(self, discard: bool) -> int:
        """Cancel every episode; ``discard``: the driver has left, so drop the results and wait
        for the run to end here (else they stream back as cancelled)."""
        self._stopping = True
        self._more.set()
        self._feed.tasks.clear()
        count = 0 if self._manager is None else self._manager.cancel_all()
        if discard:
            self._discard = True
            self._out = []
            self._taken.set()
            cancelled = list(self._tickets)
            if self._runner is not None:
                await asyncio.gather(self._runner, return_exceptions=True)
            # Only this run's tickets: the driver may begin the next run (and hand in its tasks)
            # between the runner's end and this method's resumption.
            for key in cancelled:
                self._tickets.pop(key, None)
        return count

    async def set_weight_version(self, version: str | None) -> None:
        if self._manager is not None:
            self._manager.set_weight_version(version)

    async def metrics(self) -> RolloutMetrics | None:
        return None if self._manager is None else self._manager.metrics

    async def aclose(self) -> None:
        """Cancel what runs, close the manager (its paused episodes' sandboxes) and the builder's resources."""
        if self._runner is not None and not self._runner.done():
            await self.cancel_all(discard=True)
        await self._stack.aclose()
