"""One set of counters for a run over many actors.

A live actor's manager counts its own episodes exactly, so its counters are taken as they
are. A lost actor's last counters also hold episodes whose results never reached the driver
(they run again elsewhere and are counted there), so for a lost actor the episode counts
(started, finished, reasons, rewards) come from what the driver received from it, and only
the work it did (steps, policy calls, tokens, stage seconds) from its last counters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from ...trajectories import Outcome
from ..metrics import RolloutMetrics
from ..types import EpisodeResult

__all__ = ["merged_metrics", "tally"]

_SCORED = (Outcome.TERMINATED, Outcome.TRUNCATED)
_WORK = ("steps", "policy_calls", "policy_retries", "episode_retries", "tokens", "close_failures")
_EPISODES = ("started", "reward_count", "reward_sum")


def tally(into: RolloutMetrics, result: EpisodeResult) -> None:
    """Count a root result received by the driver, as its manager counted it (children too)."""
    into.started += 1
    _finished(into, result)


def _finished(into: RolloutMetrics, result: EpisodeResult) -> None:
    outcome = result.outcome
    into.finished[outcome._value_] += 1  # (._value_: .value is a property, a call per result)
    into.reasons[result.reason] += 1  # a StrEnum: counted under its value, as the manager does
    if outcome in _SCORED and result.reward is not None:
        into.reward_sum += result.reward
        into.reward_count += 1
    for child in result.children:
        _finished(into, child)


def _add(into: RolloutMetrics, part: RolloutMetrics, names: Iterable[str]) -> None:
    for name in names:
        setattr(into, name, getattr(into, name) + getattr(part, name))


def merged_metrics(into: RolloutMetrics, live: Iterable[Any], lost: Iterable[Any], retried: int) -> None:
    """Set ``into`` (in place: a progress line holds it) to the sum over the actors.

    ``live`` and ``lost`` are the driver's actors: ``.final`` is an actor's last counters
    (or None), ``.tally`` what the driver received from it. ``retried``: samples sent again
    after their actor died (each an episode retry, as the manager counts one).
    """
    total = RolloutMetrics()
    for actor in live:
        part = actor.final
        if part is None:
            continue
        _add(total, part, (*_WORK, *_EPISODES, "running"))
        total.finished.update(part.finished)
        total.reasons.update(part.reasons)
        total.seconds = [a + b for a, b in zip(total.seconds, part.seconds)]
    for actor in lost:
        if actor.final is not None:
            _add(total, actor.final, _WORK)
            total.seconds = [a + b for a, b in zip(total.seconds, actor.final.seconds)]
        _add(total, actor.tally, _EPISODES)
        total.finished.update(actor.tally.finished)
        total.reasons.update(actor.tally.reasons)
    total.episode_retries += retried
    for name in RolloutMetrics.__slots__:
        value = getattr(total, name)
        setattr(into, name, Counter(value) if isinstance(value, Counter) else value)
