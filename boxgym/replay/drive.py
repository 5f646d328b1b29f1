"""Running replayed episodes: recorded actions through the rollout manager, into a new run.

Every mode that touches an env (``redrive``, ``resume``, and ``rescore`` when a judge needs the
final state) runs here: one :class:`~boxgym.rollout.RolloutManager` over boxgym's registered
envs (:class:`~boxgym.envs.EnvFactory`), a :class:`~boxgym.replay.policy.ReplayPolicy`, many
episodes at once and a progress line, recording into a new run directory whose episodes are
marked as branches of the recorded ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

from ..errors import ReplayError
from ..rollout.config import Concurrency, RolloutConfig
from ..rollout.policy import Policy
from ..rollout.types import EpisodeResult
from .policy import Branch, Mode, ReplayPolicy, branch_task
from .rundir import RecordedEpisode

__all__ = ["ReplayConfig", "unreplayable", "drive", "drive_once"]

#: The sub-agent tools: their effects are child episodes, which a replay of the parent's
#: actions alone does not reproduce.
_SUBAGENT_TOOLS = frozenset({"create_subagent", "assign_task"})


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    """How replays run: episodes at once, what every env is built with, the progress line."""

    concurrency: int = 8
    # Keywords for every env (boxgym.envs.EnvFactory): tasks= for a run made on your own task
    # file, image=, pool_size=, limits=...
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    progress: bool | None = None  # None: only on a terminal


def unreplayable(episode: RecordedEpisode) -> str | None:
    """Why ``episode`` cannot be replayed in an env, or None if it can."""
    if episode.start is None:
        return "its start record is missing (the file was cut)"
    if episode.parent_episode_id is not None:
        return f"it is a sub-agent of {episode.parent_episode_id}: replay its root episode"
    env_id = episode.env_id
    if not env_id.startswith("boxgym/") or env_id not in gym.registry:
        return f"its env {env_id!r} is not a boxgym env registered in this process"
    for step in episode.steps:
        for call in step.tool_calls:
            if isinstance(call, dict) and (call.get("function") or {}).get("name") in _SUBAGENT_TOOLS:
                return "it started sub-agents, whose episodes a replay of its own actions does not reproduce"
    return None


async def drive(
    episodes: Sequence[RecordedEpisode],
    branches: Sequence[Branch],
    *,
    run_dir: Path,
    config: ReplayConfig,
    then: Policy | None = None,
    gateway: Any = None,
    name: Mode = "redrive",
    samples: int = 1,
) -> list[list[EpisodeResult]]:
    """Run ``samples`` replayed episodes per branch (``branches[i]`` replays ``episodes[i]``; the
    samples of one branch are a group) and return each branch's results, in order (fewer than
    ``samples`` where the run was stopped first)."""
    from ..envs import EnvFactory
    from ..rollout.manager import RolloutManager

    if (run_dir / "trajectories.jsonl").exists():
        raise ReplayError(f"{run_dir} already holds a run: replay into a new directory")
    actions = {episode.episode_id: [step.action for step in episode.steps] for episode in episodes}
    tasks = [branch_task(episode, branch) for episode, branch in zip(episodes, branches)]
    policy = ReplayPolicy(actions, then)
    rollout = RolloutConfig(concurrency=Concurrency(episodes=max(1, config.concurrency)))
    factory = EnvFactory(**dict(config.env_kwargs))
    order = {id(task): i for i, task in enumerate(tasks)}
    results: list[list[EpisodeResult]] = [[] for _ in tasks]
    try:
        async with RolloutManager(
            factory, policy, config=rollout, run_dir=run_dir, gateway=gateway, progress=config.progress, name=name
        ) as manager:
            async for result in manager.run(tasks, group_size=max(1, samples)):
                results[order[id(result.task)]].append(result)
    finally:
        await factory.aclose()
    for group in results:
        group.sort(key=lambda r: r.sample_index)
    return results


async def drive_once(
    episodes: Sequence[RecordedEpisode], branches: Sequence[Branch], *, run_dir: Path, config: ReplayConfig, name: Mode
) -> list[EpisodeResult | None]:
    """:func:`drive` with one replay per branch: its result, or None if the run stopped first."""
    groups = await drive(episodes, branches, run_dir=run_dir, config=config, name=name)
    return [group[0] if group else None for group in groups]
