"""Where the actors run, joining a Ray cluster, and cleaning up after a lost actor.

Two ways to place actors (:class:`Placement`):

* ``actors=N``: N actors, one bundle of ``num_cpus`` each in one placement group with the
  ``SPREAD`` strategy, so Ray reserves them all at once and puts them on as many nodes as it
  can (several per node when there are fewer nodes than actors);
* ``actors=None``: ``per_node`` actors on every alive node, each pinned to its node (node
  affinity), for one rollout manager per Docker engine (or a few, to use more cores).

An actor runs its sandboxes on its own node's Docker engines: the default one
(``DOCKER_HOST``, or the standard socket), or those its builder names (``SandboxPool(hosts=...)``:
engines of that node only, since a sandbox's tool server is reached through a Unix socket on
the daemon's machine; docs/hosts.md). That is how sandboxes run on many machines: one actor
per node (``actors=None``), each creating on its own node.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

__all__ = ["Placement", "connect"]


@dataclass(frozen=True, slots=True)
class Placement:
    """How many actors, where, and how many lost ones may be replaced (see the module docstring)."""

    actors: int | None = 1  # None: per_node on every alive node
    per_node: int = 1
    num_cpus: float = 1.0  # reserved per actor (its event loop is one core at most)
    replacements: int = 2  # lost actors replaced by fresh ones (a new shard each), over the manager's life

    def __post_init__(self) -> None:
        if (self.actors is not None and self.actors < 1) or self.per_node < 1 or self.replacements < 0:
            raise ValueError("actors and per_node must be >= 1, replacements >= 0")


def connect(num_cpus: int | None = None) -> None:
    """Join the cluster at ``RAY_ADDRESS``, or start a local one with ``num_cpus`` logical CPUs
    (default: this machine's cores). Nothing happens if Ray is already initialized."""
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
        return
    # Ray starts its workers at niceness 15, to keep its own daemons responsive; here the
    # actors are the workload, next to the Docker engine and the model engine, so they run at
    # the normal priority (an explicit RAY_worker_niceness wins).
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False)


class Slots:
    """The scheduling strategy of each actor position; a replacement takes its predecessor's."""

    def __init__(self, placement: Placement) -> None:
        self.placement = placement
        self.group: PlacementGroup | None = None
        self.strategies: list[Any] = []

    async def reserve(self) -> None:
        p = self.placement
        if p.actors is not None:
            self.group = placement_group([{"CPU": p.num_cpus}] * p.actors, strategy="SPREAD")
            try:
                await asyncio.wait_for(self.group.ready(), timeout=60)
            except TimeoutError:
                self.release()
                raise RuntimeError(
                    f"Ray could not reserve {p.actors} actors of {p.num_cpus} CPU in 60 s: "
                    f"the cluster has {ray.cluster_resources().get('CPU', 0)} CPUs"
                ) from None
            self.strategies = [PlacementGroupSchedulingStrategy(self.group, placement_group_bundle_index=i) for i in range(p.actors)]
            return
        nodes = await asyncio.to_thread(ray.nodes)
        alive = [n["NodeID"] for n in nodes if n.get("Alive")]
        self.strategies = [NodeAffinitySchedulingStrategy(node, soft=False) for node in alive for _ in range(p.per_node)]

    def release(self) -> None:
        if self.group is not None:
            remove_placement_group(self.group)
            self.group = None


#: How long after a dead actor's first gc pass the second one runs.
_SETTLE_S = 2.0


@ray.remote(num_cpus=0, max_retries=0)
def _gc_node(dead_pid: int) -> int:
    """``boxgym gc`` on this node, once the dead actor's process is gone (its containers carry its
    pid): on every Docker host of the node that a run noted, so the actor's hosts are found too."""
    from ...sandboxes.ownership import gc_hosts

    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{dead_pid}") and time.monotonic() < deadline:
        time.sleep(0.1)  # not reaped yet: gc would take its owner for alive

    removed = len(asyncio.run(gc_hosts()).removed)
    # A create call the actor had in flight when it died may land after that pass (the daemon
    # finishes it anyway), as a container that never starts, so no TTL ends it: look again.
    time.sleep(_SETTLE_S)
    return removed + len(asyncio.run(gc_hosts()).removed)


async def gc_node(node_id: str, dead_pid: int) -> int:
    """Remove the containers a dead actor left on its node; 0 if the node is gone too (the
    containers' TTL removes them then)."""
    strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
    try:
        return await asyncio.wait_for(_gc_node.options(scheduling_strategy=strategy).remote(dead_pid), timeout=60)
    except Exception:  # noqa: BLE001 - a node that died with its actor, or no engine: the TTL is the backstop
        return 0
