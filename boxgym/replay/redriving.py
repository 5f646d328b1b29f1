"""``redrive``: the recorded actions again, step by step, in fresh sandboxes, with no model.

Each replayed episode is recorded in a new run directory (a branch of the recorded one that
shares all its steps), then compared with the record: every observation against the recorded
one after the normalisations (:mod:`boxgym.replay.diff`), the first step that differs, and
whether the reward came out the same. ``redrive.jsonl`` in the new run holds one
:class:`Redriven` line per episode.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .diff import DEFAULT_NORMALISERS, Normaliser, StepDiff, compare_steps
from .drive import ReplayConfig, drive_once, unreplayable
from .policy import Branch
from .rundir import RecordedEpisode, RunDir

__all__ = ["Redriven", "RedriveSummary", "redrive", "REPORT"]

REPORT = "redrive.jsonl"


def _same(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 1e-9)


@dataclass(frozen=True, slots=True)
class Redriven:
    """One recorded episode against its replay."""

    episode_id: str
    env_id: str
    task_id: str
    replay_episode_id: str | None = None
    steps_recorded: int = 0
    steps_replayed: int = 0
    first_divergence: StepDiff | None = None
    old_reward: float | None = None
    new_reward: float | None = None
    old_reason: str | None = None
    new_reason: str | None = None
    why: str | None = None  # why it was not replayed, or how the replay failed

    @property
    def replayed(self) -> bool:
        return self.replay_episode_id is not None

    @property
    def reward_reproduced(self) -> bool:
        return self.replayed and _same(self.old_reward, self.new_reward)

    def to_json(self) -> dict[str, Any]:
        d = self.first_divergence
        return {
            "episode_id": self.episode_id,
            "env_id": self.env_id,
            "task_id": self.task_id,
            "replay_episode_id": self.replay_episode_id,
            "steps_recorded": self.steps_recorded,
            "steps_replayed": self.steps_replayed,
            "first_divergence": None
            if d is None
            else {"step": d.index, "where": d.where, "diff": d.diff, "image_distance": d.image_distance},
            "old_reward": self.old_reward,
            "new_reward": self.new_reward,
            "reward_reproduced": self.reward_reproduced,
            "old_reason": self.old_reason,
            "new_reason": self.new_reason,
            "why": self.why,
        }


@dataclass(slots=True)
class RedriveSummary:
    run_dir: Path
    rows: list[Redriven] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0  # steps the replay ran

    def to_json(self) -> dict[str, Any]:
        replayed = [r for r in self.rows if r.replayed]
        return {
            "run_dir": str(self.run_dir),
            "episodes": len(self.rows),
            "replayed": len(replayed),
            "identical": sum(1 for r in replayed if r.first_divergence is None),
            "diverged": sum(1 for r in replayed if r.first_divergence is not None),
            "reward_reproduced": sum(1 for r in replayed if r.reward_reproduced),
            "not_replayed": len(self.rows) - len(replayed),
            "steps": self.steps,
            "seconds": self.seconds,
            "steps_per_s": self.steps / self.seconds if self.seconds > 0 else None,
        }


def _observations(episode: RecordedEpisode) -> list[Any]:
    return [step.observation for step in episode.steps]


async def redrive(
    run: RunDir,
    *,
    out: Path,
    only: Iterable[str] | None = None,
    config: ReplayConfig = ReplayConfig(),
    normalisers: Sequence[Normaliser] = DEFAULT_NORMALISERS,
    image_threshold: float = 0.1,
) -> RedriveSummary:
    """Replay ``run``'s root episodes (or those in ``only``) into the new run directory ``out``."""
    started = time.monotonic()
    summary = RedriveSummary(out)
    recorded = [e for e in run.episodes(only)]
    ready: list[RecordedEpisode] = []
    for episode in recorded:
        why = unreplayable(episode) or (None if episode.steps else "it has no steps to replay")
        if why is None:
            ready.append(episode)
        elif episode.parent_episode_id is None or only is not None:
            summary.rows.append(Redriven(episode.episode_id, episode.env_id, episode.task_id, why=why))
    source = str(run.path.resolve())
    branches = [Branch(source, e.episode_id, len(e.steps), "redrive") for e in ready]
    results = await drive_once(ready, branches, run_dir=out, config=config, name="redrive")
    replays = {e.episode_id: e for e in RunDir(out).episodes()} if ready else {}
    for episode, result in zip(ready, results):
        old_reason = None if episode.end is None or episode.end.reason is None else episode.end.reason.value
        base = Redriven(episode.episode_id, episode.env_id, episode.task_id, old_reward=episode.reward,
                        old_reason=old_reason, steps_recorded=len(episode.steps))  # fmt: skip
        replay = None if result is None else replays.get(result.episode_id)
        if result is None or replay is None:
            summary.rows.append(replace(base, why="the replay was stopped before it was recorded"))
            continue
        summary.steps += len(replay.steps)
        comparison = compare_steps(
            _observations(episode), _observations(replay), normalisers=normalisers, image_threshold=image_threshold
        )
        summary.rows.append(
            replace(
                base,
                replay_episode_id=result.episode_id,
                steps_replayed=len(replay.steps),
                first_divergence=comparison.first_divergence,
                new_reward=result.reward,
                new_reason=result.reason.value,
                why=result.error,
            )
        )
    summary.seconds = time.monotonic() - started
    out.mkdir(parents=True, exist_ok=True)
    with (out / REPORT).open("w") as fh:
        for row in summary.rows:
            fh.write(json.dumps(row.to_json()) + "\n")
    return summary
