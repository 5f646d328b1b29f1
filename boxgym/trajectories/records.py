"""The trajectory record format (schema version 2).

A run directory holds ``trajectories.jsonl``: one JSON object per line, each a
record below, tagged by ``kind`` and ``episode_id``. Lines of many episodes
interleave; a reader groups them by ``episode_id``. Every record of a step is
written (and handed to the OS) before the next step runs, so a crash loses at
most the step in flight.

    {"kind": "episode_start", "schema": 1, "episode_id": ..., "env_id": ..., "task_id": ..., ...}
    {"kind": "step", "episode_id": ..., "index": 0, "action": ..., "observation": ..., "reward": ..., ...}
    {"kind": "episode_end", "episode_id": ..., "outcome": "terminated", "reward": 1.0, ...}

One schema for every writer: :class:`~boxgym.envs.BoxEnv` used on its own and the rollout
manager write the same records, and the manager's episode id is the one in ``gateway.jsonl``
and ``training.jsonl`` too. A step's ``call_id`` names the gateway record whose completion was
the step's action, so the two files join on it.

Step ``timings`` (seconds): ``policy_s`` (the model call; written by the manager), ``env_s``
(the env's whole step), ``tools_s`` and ``judge_s`` (their parts, from a BoxEnv).

Fields are JSON-native; ``meta``/``info`` hold extra JSON-able detail. Bump
:data:`SCHEMA_VERSION` when a field changes meaning. Version 2 added ``StepRecord.call_id`` and
``EpisodeEnd.reason``, the timing names above and the ``error`` outcome. Later, within version 2
(added fields, no meaning changed; older lines read with their defaults): ``EpisodeEnd.cost``
and ``cost_parts`` (a cost judge's verdict: None and empty without one) and ``usage`` (the
episode's runtime figures, :class:`boxgym.rollout.EpisodeUsage`'s fields; an env on its own
writes the ones it knows: ``tool_s``, ``sandbox_cpu_s``, ``sandbox_peak_memory_mb``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

__all__ = ["SCHEMA_VERSION", "EndReason", "EpisodeEnd", "EpisodeStart", "Outcome", "Record", "StepRecord", "from_json"]

SCHEMA_VERSION = 2


class Outcome(str, Enum):
    """How an episode ended."""

    TERMINATED = "terminated"  # the task ended: the agent submitted, finished, or wrecked its sandbox
    TRUNCATED = "truncated"  # a turn or token budget or a deadline ran out
    INFRA_FAILURE = "infra_failure"  # sandbox broke, engine down, judge failed: no reward, retried
    ERROR = "error"  # a bug (code, or a malformed task) raised: no reward, reported, not retried
    CANCELLED = "cancelled"  # stopped by the caller
    PAUSED = "paused"  # partial rollout: to be resumed


class EndReason(StrEnum):
    """Why an episode ended: finer than :class:`Outcome`, whose value follows from it.

    The env (:class:`~boxgym.envs.BoxEnv`, ``info["end_reason"]``) and the rollout manager
    (``EpisodeResult.reason``) use these same values; the manager takes the env's reason when
    the env ends the episode.
    """

    # terminated: scored
    SUBMITTED = "submitted"  # the agent called submit
    ENV_TERMINATED = "env_terminated"  # an env said terminated and gave no reason of its own
    AGENT_DONE = "agent_done"  # the policy returned a final completion (a black-box agent finished)
    NO_ACTION = "no_action"  # the policy answered without tool calls where that ends the episode (sub-agents)
    USER_ENDED = "user_ended"  # a simulated user ended the conversation: goal met, or refused (boxgym.simulated)
    SANDBOX_WRECKED = "sandbox_wrecked"  # the agent made its sandbox unusable: reward 0 (Fault.AGENT)
    # truncated: scored
    ENV_TRUNCATED = "env_truncated"  # an env said truncated and gave no reason of its own
    MAX_TURNS = "max_turns"  # EpisodeLimits.max_turns (env) or EpisodeBudget.max_turns (manager)
    MAX_TOKENS = "max_tokens"  # EpisodeBudget.max_tokens
    MAX_SANDBOX_CPU = "max_sandbox_cpu"  # EpisodeBudget.max_sandbox_cpu_s
    DEADLINE = "deadline"  # the episode's time ran out (EpisodeLimits.episode_seconds, StageDeadlines.episode)
    # not scored
    STAGE_DEADLINE = "stage_deadline"  # one stage (sandbox, policy call, env step, judge) passed its deadline
    INFRA = "infra"  # the infrastructure broke (Fault.INFRA): retried
    ERROR = "error"  # a bug raised (Fault.BUG): reported, not retried
    CANCELLED = "cancelled"
    PAUSED = "paused"

    @property
    def outcome(self) -> Outcome:
        """The outcome every episode that ends for this reason has."""
        return _OUTCOME_OF[self]


_OUTCOME_OF = {
    **dict.fromkeys(
        (EndReason.SUBMITTED, EndReason.ENV_TERMINATED, EndReason.AGENT_DONE, EndReason.NO_ACTION,
         EndReason.USER_ENDED, EndReason.SANDBOX_WRECKED),
        Outcome.TERMINATED,
    ),
    **dict.fromkeys(
        (EndReason.ENV_TRUNCATED, EndReason.MAX_TURNS, EndReason.MAX_TOKENS, EndReason.MAX_SANDBOX_CPU,
         EndReason.DEADLINE),
        Outcome.TRUNCATED,
    ),
    EndReason.STAGE_DEADLINE: Outcome.INFRA_FAILURE,
    EndReason.INFRA: Outcome.INFRA_FAILURE,
    EndReason.ERROR: Outcome.ERROR,
    EndReason.CANCELLED: Outcome.CANCELLED,
    EndReason.PAUSED: Outcome.PAUSED,
}


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
    call_id: str | None = None  # the gateway record whose completion was this step's action
    kind: str = "step"


@dataclass(frozen=True, slots=True)
class EpisodeEnd:
    episode_id: str
    outcome: Outcome
    reward: float | None  # None when no verdict was reached (infrastructure failure, error, cancel)
    steps: int
    reason: EndReason | None = None
    reward_parts: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    time: float = 0.0
    kind: str = "episode_end"
    cost: float | None = None  # a cost judge's verdict (None: no cost judge, or no verdict)
    cost_parts: dict[str, float] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)  # runtime figures: tokens, seconds, CPU, memory


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
        out["reason"] = None if record.reason is None else str(record.reason)
    return out


def from_json(obj: dict[str, Any]) -> Record:
    cls = _KINDS[obj["kind"]]
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in obj.items() if k in names}
    if cls is EpisodeEnd:
        kwargs["outcome"] = Outcome(kwargs["outcome"])
        if kwargs.get("reason") is not None:
            kwargs["reason"] = EndReason(kwargs["reason"])
    return cls(**kwargs)
