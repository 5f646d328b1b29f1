"""Toggle (Kimi K2.5's token-efficient RL): a group-level rule on the rewards of K rollouts.

    budgets = ToggleBudgets.estimate(warmup_results, percentile=50, run_dir=manager.run_dir)  # once
    toggle = Toggle(ToggleConfig(lam=0.8, period=4, percentile=50, group_size=8), budgets)
    async for group in manager.run_groups(tasks, group_size=8):
        group = toggle(group)                                     # rewards become r-tilde
        batch = grpo_batch([to_training(r) for r in group.results])

For a group of K rollouts of task x with rewards r and response lengths |y|, in the phase of
the manager iteration that completed the group:

    phase 0 (budget-limited):  r~ = r · 1{ mean group reward < λ  or  |y| <= budget(x) }
    phase 1:                   r~ = r

and the phase alternates every m iterations: ``phase = ((iteration - start) // m) % 2``,
where the iteration is the rollout manager's (:attr:`RolloutManager.iteration`, carried by
:attr:`Group.iteration`). A group the policy mostly fails (mean < λ) keeps its rewards, so
the budget never stops the policy from learning to solve a task; a group it solves learns,
in phase 0, that an answer longer than the budget earns nothing.

budget(x) is the ρ-th percentile of the lengths of the correct responses (reward >=
``correct_at``) to x in a warm-up pass, estimated once by :meth:`ToggleBudgets.estimate`,
written to the run directory (``toggle_budgets.json``) and never re-estimated: estimating
again into a run directory that has one raises, :meth:`ToggleBudgets.load` reads it back. A
task without a correct warm-up response has no budget, and its rewards are never cut.

|y| is the episode's completion tokens (every sampled token of a multi-turn episode), or
any other :class:`~boxgym.rollout.EpisodeUsage` figure named by ``measure`` (e.g.
``sandbox_cpu_s``); an episode whose figure was not measured is not cut. Each result
Toggle returns carries a :class:`~boxgym.rollout.ToggleMark` (phase, budget, |y|, the raw
reward, the group mean) that the training view records beside the reward.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .types import EpisodeResult, Group, TaskRef, ToggleMark
from .usage import USAGE_FIELDS

__all__ = ["BUDGETS_FILENAME", "Toggle", "ToggleBudgets", "ToggleConfig", "toggle_rewards"]

BUDGETS_FILENAME = "toggle_budgets.json"
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class ToggleConfig:
    """λ (``lam``), m (``period``, in manager iterations), ρ (``percentile``, 0-100) and K (``group_size``)."""

    lam: float
    period: int
    percentile: float
    group_size: int
    measure: str = "completion_tokens"  # |y|: a field of EpisodeUsage
    correct_at: float = 1.0  # a warm-up response is correct when its reward is at least this
    start_iteration: int = 0  # the manager iteration phase 0 starts at (1 when the warm-up ran on the same manager)

    def __post_init__(self) -> None:
        if self.period < 1 or self.group_size < 1:
            raise ValueError("period (m) and group_size (K) must be >= 1")
        if not 0 <= self.percentile <= 100:
            raise ValueError("percentile (rho) must be in [0, 100]")
        if self.measure not in USAGE_FIELDS:
            raise ValueError(f"measure must be one of {', '.join(USAGE_FIELDS)}, not {self.measure!r}")

    def phase(self, iteration: int) -> int:
        """0 (budget-limited) or 1, for a manager iteration."""
        return (max(iteration - self.start_iteration, 0) // self.period) % 2


def toggle_rewards(
    rewards: Sequence[float | None],
    lengths: Sequence[float | None],
    *,
    phase: int,
    budget: float | None,
    lam: float,
) -> tuple[list[float | None], float]:
    """The rule on one group: r~ for each reward (None stays None), and the group's mean reward."""
    scored = [r for r in rewards if r is not None]
    mean = statistics.fmean(scored) if scored else math.nan
    if phase == 1 or budget is None or mean < lam:
        return list(rewards), mean
    return [
        r if r is None or length is None or length <= budget else 0.0 for r, length in zip(rewards, lengths)
    ], mean


def _key(task: TaskRef) -> tuple[str, str] | None:
    return None if task.task_id is None else (task.env_id, task.task_id)


@dataclass(frozen=True, slots=True)
class ToggleBudgets:
    """budget(x) per task, from one warm-up pass; stored in the run directory, never re-estimated."""

    percentile: float
    measure: str
    correct_at: float
    budgets: Mapping[str, Mapping[str, float]]  # env id -> task id -> budget
    correct: Mapping[str, Mapping[str, int]]  # env id -> task id -> correct warm-up responses behind it
    path: Path

    def budget(self, task: TaskRef) -> float | None:
        key = _key(task)
        return None if key is None else self.budgets.get(key[0], {}).get(key[1])

    @classmethod
    def estimate(
        cls,
        results: Iterable[EpisodeResult],
        *,
        percentile: float,
        run_dir: str | os.PathLike[str],
        measure: str = "completion_tokens",
        correct_at: float = 1.0,
    ) -> ToggleBudgets:
        """Estimate from the warm-up ``results`` and write ``<run_dir>/toggle_budgets.json``.
        Raises :class:`FileExistsError` if the run directory already has budgets."""
        import numpy as np  # the trainer-side dependency, as in grpo

        if measure not in USAGE_FIELDS:
            raise ValueError(f"measure must be one of {', '.join(USAGE_FIELDS)}, not {measure!r}")
        lengths: dict[tuple[str, str], list[float]] = {}
        for result in results:
            key = _key(result.task)
            if key is None or not result.ok or result.reward < correct_at:  # type: ignore[operator]
                continue
            length = result.usage.get(measure)
            if length is not None:
                lengths.setdefault(key, []).append(length)
        budgets: dict[str, dict[str, float]] = {}
        correct: dict[str, dict[str, int]] = {}
        for (env_id, task_id), values in sorted(lengths.items()):
            budgets.setdefault(env_id, {})[task_id] = float(np.percentile(values, percentile))
            correct.setdefault(env_id, {})[task_id] = len(values)
        path = Path(run_dir) / BUDGETS_FILENAME
        document = {
            "format": _FORMAT,
            "percentile": percentile,
            "measure": measure,
            "correct_at": correct_at,
            "budgets": budgets,
            "correct": correct,
            "created": time.time(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("x") as fh:  # exclusive: a second estimate into the same run fails here
                json.dump(document, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
        except FileExistsError:
            raise FileExistsError(
                f"{path} exists: budgets are estimated once per run; read them with ToggleBudgets.load"
            ) from None
        return cls(percentile, measure, correct_at, budgets, correct, path)

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> ToggleBudgets:
        path = Path(run_dir) / BUDGETS_FILENAME
        document: dict[str, Any] = json.loads(path.read_text())
        if document.get("format") != _FORMAT:
            raise ValueError(f"{path}: unknown format {document.get('format')!r}")
        return cls(
            document["percentile"], document["measure"], document["correct_at"],
            document["budgets"], document["correct"], path,
        )  # fmt: skip


class Toggle:
    """The rule as a judge over a group of K rollouts (module docstring): ``toggle(group) -> group``."""

    def __init__(self, config: ToggleConfig, budgets: ToggleBudgets) -> None:
        if (budgets.percentile, budgets.measure, budgets.correct_at) != (
            config.percentile, config.measure, config.correct_at,
        ):  # fmt: skip
            raise ValueError(
                f"the budgets in {budgets.path} were estimated with percentile {budgets.percentile}, measure "
                f"{budgets.measure!r}, correct_at {budgets.correct_at}; the config says {config.percentile}, "
                f"{config.measure!r}, {config.correct_at}"
            )
        self.config = config
        self.budgets = budgets

    def __call__(self, group: Group) -> Group:
        config = self.config
        results = group.results
        if len(results) != config.group_size:
            raise ValueError(f"group {group.group_id} has {len(results)} results; Toggle's K is {config.group_size}")
        phase = config.phase(group.iteration)
        budget = self.budgets.budget(group.task)
        lengths = [r.usage.get(config.measure) for r in results]
        rewards, mean = toggle_rewards(
            [r.reward for r in results], lengths, phase=phase, budget=budget, lam=config.lam
        )
        toggled = tuple(
            result
            if result.reward is None
            else replace(
                result,
                reward=reward,
                toggle=ToggleMark(phase, budget, length, result.reward, mean),
            )
            for result, reward, length in zip(results, rewards, lengths)
        )
        return Group(group.group_id, group.task, toggled, group.iteration)
