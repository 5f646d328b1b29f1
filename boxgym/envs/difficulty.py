"""Adaptive difficulty (after RLVE): keep tasks neither too easy nor too hard.

:class:`AdaptiveDifficulty` keeps a window of levels ``[low, high]`` and
samples uniformly inside it. It records whether the policy solved each
episode at its level, over the last ``window`` episodes per level:

* when the policy solves at least ``promote_at`` of its recent tasks at
  ``high`` (with at least ``min_samples`` of them), ``high`` moves up one level,
  and ``low`` follows so the window is at most ``width`` levels wide;
* when it solves at most ``demote_at`` of its recent tasks at ``low``, the
  window moves down one level (both ends), so a policy that regressed gets
  tasks it can learn from again.

A move down clears the history that caused it, so the next move is decided
on fresh evidence. The state is a plain record (:meth:`state`), JSON-able,
and can be restored (:meth:`load`). :class:`FixedDifficulty` always samples
one level.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Curriculum", "AdaptiveDifficulty", "FixedDifficulty", "DifficultyState"]


@runtime_checkable
class Curriculum(Protocol):
    def sample(self, rng: np.random.Generator) -> int: ...

    def update(self, level: int, solved: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class DifficultyState:
    low: int
    high: int
    history: dict[int, list[bool]] = field(default_factory=dict)  # level -> recent outcomes, oldest first

    def to_json(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "history": {str(k): v for k, v in self.history.items()}}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> DifficultyState:
        history = {int(k): [bool(x) for x in v] for k, v in obj.get("history", {}).items()}
        return cls(int(obj["low"]), int(obj["high"]), history)


class AdaptiveDifficulty:
    def __init__(
        self,
        levels: int,
        *,
        width: int = 2,
        window: int = 32,
        min_samples: int = 8,
        promote_at: float = 0.8,
        demote_at: float = 0.1,
        start: int = 0,
    ) -> None:
        if levels < 1 or width < 1 or not 0 <= start < levels or not 0 <= demote_at < promote_at <= 1:
            raise ValueError("bad curriculum settings")
        self.levels, self.width, self.window, self.min_samples = levels, width, window, min_samples
        self.promote_at, self.demote_at = promote_at, demote_at
        self._low = self._high = start
        self._history: dict[int, deque[bool]] = {}

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self._low, self._high + 1))

    def update(self, level: int, solved: bool) -> None:
        if not 0 <= level < self.levels:
            return  # a task pinned outside the curriculum's range says nothing about it
        self._history.setdefault(level, deque(maxlen=self.window)).append(bool(solved))
        if self._rate(self._high) >= self.promote_at and self._high < self.levels - 1:
            self._high += 1
            self._low = max(self._low, self._high - self.width + 1)
        elif self._rate(self._low) <= self.demote_at and self._low > 0:
            self._history.pop(self._low, None)
            self._history.pop(self._high, None)
            self._low -= 1
            self._high -= 1

    def _rate(self, level: int) -> float:
        outcomes = self._history.get(level)
        if outcomes is None or len(outcomes) < self.min_samples:
            return float("nan")  # no decision without evidence: NaN fails both comparisons
        return sum(outcomes) / len(outcomes)

    def state(self) -> DifficultyState:
        return DifficultyState(self._low, self._high, {k: list(v) for k, v in sorted(self._history.items())})

    def load(self, state: DifficultyState) -> None:
        if not 0 <= state.low <= state.high < self.levels:
            raise ValueError(f"state {state.low}..{state.high} does not fit {self.levels} levels")
        self._low, self._high = state.low, state.high
        self._history = {k: deque(v, maxlen=self.window) for k, v in state.history.items()}


@dataclass(frozen=True, slots=True)
class FixedDifficulty:
    level: int = 0

    def sample(self, rng: np.random.Generator) -> int:
        return self.level

    def update(self, level: int, solved: bool) -> None:
        pass
