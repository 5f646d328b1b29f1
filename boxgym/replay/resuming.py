"""``resume``: restart a recorded episode from step k with a live policy.

The recorded actions of steps ``0 .. k-1`` are replayed in a fresh sandbox (no model call),
then the live policy (another model, or the same one at another temperature) takes over.
Each new episode is recorded in a new run directory as a branch of the old one
(``EpisodeStart.meta["branch_of"]``, :mod:`boxgym.replay.policy`) with ``shared_steps = k``, and
with its model calls in that run's ``gateway.jsonl`` when a gateway is given, so that
``boxgym view`` shows the two side by side from the first step they differ.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ReplayError
from ..rollout.policy import Policy
from .drive import ReplayConfig, drive, unreplayable
from .policy import Branch
from .rundir import RunDir

__all__ = ["Resumed", "ResumeSummary", "resume", "REPORT"]

REPORT = "resume.jsonl"


@dataclass(frozen=True, slots=True)
class Resumed:
    episode_id: str  # the recorded one
    replay_episode_id: str
    at_step: int
    old_reward: float | None
    new_reward: float | None
    old_steps: int
    new_steps: int
    new_reason: str
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "episode_id": self.episode_id,
            "replay_episode_id": self.replay_episode_id,
            "at_step": self.at_step,
            "old_reward": self.old_reward,
            "new_reward": self.new_reward,
            "old_steps": self.old_steps,
            "new_steps": self.new_steps,
            "new_reason": self.new_reason,
            "error": self.error,
        }


@dataclass(slots=True)
class ResumeSummary:
    run_dir: Path
    rows: list[Resumed] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        rewards = [r.new_reward for r in self.rows if r.new_reward is not None]
        return {
            "run_dir": str(self.run_dir),
            "episodes": len(self.rows),
            "mean_new_reward": sum(rewards) / len(rewards) if rewards else None,
            "seconds": self.seconds,
        }


async def resume(
    run: RunDir,
    episode_ids: Sequence[str],
    *,
    at: int,
    policy: Policy,
    out: Path,
    samples: int = 1,
    config: ReplayConfig = ReplayConfig(),
    gateway: Any = None,
) -> ResumeSummary:
    """Resume each of ``episode_ids`` at step ``at`` (``samples`` times each) with ``policy``.

    ``at`` counts recorded steps kept: 0 replays nothing (a fresh start of the same task), the
    episode's step count replays them all and asks the policy for what comes after. A
    ``gateway`` (an embedded :class:`~boxgym.gateway.Gateway`, started) records the live calls.
    """
    started = time.monotonic()
    episodes = list(run.episodes(only=episode_ids))
    missing = set(episode_ids) - {e.episode_id for e in episodes}
    if missing:
        raise ReplayError(f"no episode {', '.join(sorted(missing))} in {run.path}")
    for episode in episodes:
        why = unreplayable(episode)
        if why is not None:
            raise ReplayError(f"episode {episode.episode_id} cannot be resumed: {why}")
        if not 0 <= at <= len(episode.steps):
            n = len(episode.steps)
            raise ReplayError(f"episode {episode.episode_id} has {n} steps: resume at 0..{n}")
    source = str(run.path.resolve())
    branches = [Branch(source, e.episode_id, at, "resume") for e in episodes]
    groups = await drive(episodes, branches, run_dir=out, config=config, then=policy, gateway=gateway, name="resume",
                         samples=samples)  # fmt: skip
    summary = ResumeSummary(out)
    for episode, results in zip(episodes, groups):
        for result in results:
            summary.rows.append(
                Resumed(episode.episode_id, result.episode_id, at, episode.reward, result.reward, len(episode.steps),
                        result.steps, result.reason.value, result.error)  # fmt: skip
            )
    with (out / REPORT).open("w") as fh:
        for row in summary.rows:
            fh.write(json.dumps(row.to_json()) + "\n")
    summary.seconds = time.monotonic() - started
    return summary
