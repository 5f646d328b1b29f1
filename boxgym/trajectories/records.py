"""The trajectory record format (schema version 1).

A run directory holds ``trajectories.jsonl``: one JSON object per line, each a
record below, tagged by ``kind`` and ``episode_id``. Lines of many episodes
interleave; a reader groups them by ``episode_id``. Every record of a step is
written (and handed to the OS) before the next step runs, so a crash loses at
most the step in flight.

    {"kind": "episode_start", "schema": 1, "episode_id": ..., "env_id": ..., "task_id": ..., ...}
    {"kind": "step", "episode_id": ..., "index": 0, "action": ..., "observation": ..., "reward": ..., ...}
    {"kind": "episode_end", "episode_id": ..., "outcome": "terminated", "reward": 1.0, ...}

Fields are JSON-native; ``meta``/``info`` hold extra JSON-able detail. Bump
:data:`SCHEMA_VERSION` when a field changes meaning.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["SCHEMA_VERSION", "EpisodeEnd", "EpisodeStart", "Outcome", "Record", "StepRecord", "from_json"]

SCHEMA_VERSION = 1


class Outcome(str, Enum):
    """How an episode ended."""

    TERMINATED = "terminated"  # the task ended: the agent submitted or the judge said done
    TRUNCATED = "truncated"  # turn budget or deadline
    INFRA_FAILURE = "infra_failure"  # sandbox broke, engine down, judge failed: not the agent's score
    CANCELLED = "cancelled"  # stopped by the caller
    PAUSED = "paused"  # partial rollout: to be resumed


@dataclass(frozen=True, slots=True)
class EpisodeStart:
    episode_id: str
    env_id: str
    task_id: str
    seed: int | None = None
    parent_episode_id: str | None = None  # sub-agent episodes name their parent
    meta: dict[str, Any] = field(default_factory=dict)
    time: float = 0.0
    kind: str = "episode_start"
    schema: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class StepRecord:
    episode_id: str
    index: int
    action: Any  # the raw action: text or an assistant message
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # parsed calls
    observation: Any = None
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)  # sandbox events, errors
    info: dict[str, Any] = field(default_factory=dict)
    # The policy weights this step's action was sampled with (the gateway's / engine's version
    # string); None when the policy does not say. Partial rollouts mix versions in one episode.
    weight_version: str | None = None
    kind: str = "step"


@dataclass(frozen=True, slots=True)
class EpisodeEnd:
    episode_id: str
    outcome: Outcome
    reward: float | None  # None when no verdict was reached (infrastructure failure)
    steps: int
    reward_parts: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    time: float = 0.0
    kind: str = "episode_end"


Record = EpisodeStart | StepRecord | EpisodeEnd
_KINDS: dict[str, type] = {"episode_start": EpisodeStart, "step": StepRecord, "episode_end": EpisodeEnd}


# Field names per class, computed once: ``dataclasses.fields`` per record is a measurable share
# of the cost of writing 100k episodes' steps.
_NAMES: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in (EpisodeStart, StepRecord, EpisodeEnd)
}


def to_json(record: Record) -> dict[str, Any]:
    out = {name: getattr(record, name) for name in _NAMES[type(record)]}
    if isinstance(record, EpisodeEnd):
        out["outcome"] = record.outcome.value
    return out


def from_json(obj: dict[str, Any]) -> Record:
    cls = _KINDS[obj["kind"]]
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in obj.items() if k in names}
    if cls is EpisodeEnd:
        kwargs["outcome"] = Outcome(kwargs["outcome"])
    return cls(**kwargs)
