"""The driver's bookkeeping: a task on its way (a ticket), an actor as the driver sees it, one run."""

from __future__ import annotations

import asyncio
from typing import Any

from ..config import IterationBudget
from ..metrics import RolloutMetrics
from ..types import TaskRef
from .actor import ActorInfo, Shard

__all__ = ["ActorState", "RunState", "Ticket"]


class Ticket:
    """A task and its K samples, on their way through one actor (and again through another if
    that one dies: ``lost`` attempts so far)."""

    __slots__ = ("id", "lost", "size", "task")

    def __init__(self, id: int, task: TaskRef, size: int, lost: int = 0) -> None:
        self.id = id
        self.task = task
        self.size = size
        self.lost = lost


class ActorState:
    """The driver's view of one actor."""

    __slots__ = ("final", "handle", "info", "last_ids", "outstanding", "position", "shard", "tally")

    def __init__(self, shard: Shard, position: int, handle: Any) -> None:
        self.shard = shard
        self.position = position  # index into the placement's strategies
        self.handle = handle
        self.info: ActorInfo | None = None
        self.outstanding: dict[int, Ticket] = {}
        self.last_ids: tuple[str, ...] = ()  # the last batch's ids, received and not yet acknowledged
        self.tally = RolloutMetrics()  # what was received from it (stands in for its counts once it is lost)
        self.final: RolloutMetrics | None = None  # its last metrics; set while it runs, kept when lost


class RunState:
    """One ``run``: its output channel, budget and the state of each actor's pump."""

    __slots__ = ("budget", "changed", "delivered", "ended", "group_size", "groups", "idle", "out", "pausing", "paused", "pumps", "spawning", "tokens0")

    def __init__(self, group_size: int, groups: bool, budget: IterationBudget, tokens0: int) -> None:
        self.group_size = group_size
        self.groups = groups
        self.budget = budget
        self.out: asyncio.Queue[Any] = asyncio.Queue(maxsize=8)  # batches: full = backpressure on the actors
        self.changed = asyncio.Event()  # an actor went idle, retries came, a pause was asked
        self.idle: dict[str, bool] = {}  # actor name -> its run is over (nothing running, nothing to run)
        self.pumps: list[asyncio.Task[None]] = []
        self.spawning = 0  # replacements being started
        self.pausing = False
        self.ended = False
        self.delivered = 0
        self.tokens0 = tokens0
        self.paused: list[str] = []
