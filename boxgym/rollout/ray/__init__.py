"""Rollouts on Ray: one rollout manager per Ray actor, driven as one (``pip install boxgym[ray]``).

    from boxgym.rollout.ray import Placement, RayRolloutManager, connect

    async def build(shard, resources):            # runs in each actor's process, on its node
        factory = EnvFactory(pool_size=8)          # sandboxes on that node's Docker engine
        resources.push_async_callback(factory.aclose)
        policy = await resources.enter_async_context(ChatPolicy(model="m"))
        return RolloutManager(factory, policy, name=shard.name, run_dir=shard.run_dir, progress=False)

    connect()                                      # RAY_ADDRESS's cluster, or a local one
    async with RayRolloutManager(build, placement=Placement(actors=4), run_dir="runs/r1") as manager:
        manager.set_weight_version(step)           # broadcast to every actor
        async for group in manager.run_groups(tasks, group_size=8, budget=IterationBudget(max_episodes=512)):
            trainer.add(group)                     # a group's K episodes ran on one actor

The driver's API is the manager's: ``run`` and ``run_groups`` stream results and whole
groups, ``set_weight_version`` and ``IterationBudget`` (partial rollout: every actor pauses
when the budget of the whole run is spent, and the next run resumes there), ``pause``,
``cancel_all``, ``metrics`` (merged; the progress line shows the whole run) and
``prometheus_text``. An actor that dies has its unfinished episodes retried on the others as
infrastructure failures (:mod:`~boxgym.rollout.ray.manager`). Each actor writes its shard of
the run directory; :class:`boxgym.trajectories.RunDir` reads the run as one.

A gateway, when the episodes use one, lives in each actor (embedded, recording to the
shard): the calls of an episode then stay in the process that runs it, its records and
prefix state in its shard, and the gateway's capacity grows with the actors.
"""

from .actor import ActorInfo, MakeManager, Shard
from .manager import RayRolloutManager
from .placement import Placement, connect

__all__ = ["ActorInfo", "MakeManager", "Placement", "RayRolloutManager", "Shard", "connect"]
