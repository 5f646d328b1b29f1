"""The output format for trainers (format version 2), built from episode results.

One :class:`TrainingEpisode` per episode::

    sequences        token sequences (boxgym.trajectories.tokens, the builder the gateway's
                     export uses too): ids, a loss mask that is 1 on the tokens the policy
                     sampled, each sampled token in exactly one sequence, and the behaviour
                     logprobs aligned to the ids (0.0 where the mask is 0); one sequence
                     while each call's prompt extends the previous prompt + completion, a
                     branch (parent, fork_at, start) where the history was rewritten
    reward           the final reward (None: no verdict, e.g. infrastructure failure: never 0);
                     after Toggle, r-tilde (the raw reward is in ``toggle``)
    reward_parts     named parts of the reward (judge, env), plus r_parallel / r_finish
    cost, cost_parts a cost judge's verdict, beside the reward, for a Lagrangian trainer
                     (None and empty without a cost judge or without a verdict)
    usage            runtime figures (boxgym.rollout.usage): tokens in and out, model,
                     tool and sandbox CPU seconds, sandbox peak memory
    toggle           phase, budget, |y|, raw reward and group mean when Toggle set the
                     reward (boxgym.rollout.toggle), else None
    outcome, reason  how and why it ended (terminated/truncated/infra_failure/cancelled)
    steps, critical_steps, timings
    weight_versions  the policy versions its completions were sampled with, in order; more
                     than one after a partial rollout resumed under new weights
    frozen           a frozen child: its sequences are empty, it is kept for the tree
    children         child episodes in the same format (the tree): sub-agents, and agent
                     judges' episodes (env_id "agent_judge", not counted as sub-agents)

Tokens come only from the completions' engine token ids (through the gateway);
an episode whose policy gave none has ``missing_tokens=True`` and no sequences:
nothing is re-tokenized. Bump :data:`TRAINING_FORMAT_VERSION` when a field
changes meaning (2: ``reward`` may be Toggle's r-tilde; ``cost``, ``cost_parts``,
``usage`` and ``toggle`` added). :mod:`boxgym.rollout.grpo` turns a group into NumPy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..trajectories.tokens import TokenSequence, build_sequences, sequence_from_json, sequence_to_json
from .subagents import critical_steps, parl_rewards, subagent_children
from .types import EpisodeResult, ToggleMark
from .usage import EpisodeUsage

__all__ = ["TRAINING_FORMAT_VERSION", "TokenSequence", "TrainingEpisode", "to_training", "training_from_json", "training_to_json"]

TRAINING_FORMAT_VERSION = 2


@dataclass(frozen=True, slots=True)
class TrainingEpisode:
    episode_id: str
    group_id: str
    task_id: str
    env_id: str
    sample_index: int
    sequences: tuple[TokenSequence, ...]
    reward: float | None
    reward_parts: dict[str, float]
    outcome: str
    reason: str
    steps: int
    critical_steps: int
    timings: dict[str, float]
    weight_versions: tuple[str | None, ...]
    frozen: bool
    missing_tokens: bool
    parent_episode_id: str | None
    children: tuple[TrainingEpisode, ...]
    cost: float | None = None
    cost_parts: dict[str, float] | None = None
    usage: EpisodeUsage | None = None
    toggle: ToggleMark | None = None
    format_version: int = TRAINING_FORMAT_VERSION

    @property
    def usable(self) -> bool:
        """Has a verdict and tokens to train on."""
        return self.reward is not None and bool(self.sequences) and not self.frozen


def _sequences(result: EpisodeResult) -> tuple[tuple[TokenSequence, ...], bool]:
    missing = any(c.prompt_token_ids is None or c.completion_token_ids is None for c in result.completions)
    return build_sequences(result.completions), missing


def to_training(result: EpisodeResult, *, target_subagents: int = 1) -> TrainingEpisode:
    """The trainer's view of one episode (and, recursively, its sub-agents)."""
    sequences, missing = _sequences(result)
    parts = dict(result.reward_parts)
    if result.subagents_created or subagent_children(result):
        parts["r_parallel"], parts["r_finish"] = parl_rewards(result, target_subagents=target_subagents)
    return TrainingEpisode(
        episode_id=result.episode_id,
        group_id=result.group_id,
        task_id=result.task.task_id,
        env_id=result.task.env_id,
        sample_index=result.sample_index,
        sequences=() if result.frozen else sequences,
        reward=result.reward,
        reward_parts=parts,
        outcome=result.outcome.value,
        reason=result.reason,
        steps=result.steps,
        critical_steps=critical_steps(result),
        timings=dict(result.timings),
        weight_versions=result.weight_versions,
        frozen=result.frozen,
        missing_tokens=missing,
        parent_episode_id=result.parent_episode_id,
        children=tuple(to_training(child, target_subagents=target_subagents) for child in result.children),
        cost=result.cost,
        cost_parts=dict(result.cost_parts),
        usage=result.usage,
        toggle=result.toggle,
    )


def training_to_json(episode: TrainingEpisode) -> dict[str, Any]:
    """JSON-native dict of a training episode (for a ``training.jsonl`` next to the trajectories)."""
    return {
        "format_version": episode.format_version,
        "episode_id": episode.episode_id,
        "group_id": episode.group_id,
        "task_id": episode.task_id,
        "env_id": episode.env_id,
        "sample_index": episode.sample_index,
        "sequences": [sequence_to_json(s) for s in episode.sequences],
        "reward": episode.reward,
        "reward_parts": episode.reward_parts,
        "outcome": episode.outcome,
        "reason": episode.reason,
        "steps": episode.steps,
        "critical_steps": episode.critical_steps,
        "timings": episode.timings,
        "weight_versions": list(episode.weight_versions),
        "frozen": episode.frozen,
        "missing_tokens": episode.missing_tokens,
        "parent_episode_id": episode.parent_episode_id,
        "children": [training_to_json(child) for child in episode.children],
        "cost": episode.cost,
        "cost_parts": dict(episode.cost_parts or {}),
        "usage": None if episode.usage is None else episode.usage.to_json(),
        "toggle": None if episode.toggle is None else episode.toggle.to_json(),
    }


def training_from_json(data: dict[str, Any]) -> TrainingEpisode:
    """The inverse of :func:`training_to_json` (a line of ``training.jsonl``)."""
    if data.get("format_version") != TRAINING_FORMAT_VERSION:
        raise ValueError(f"training format {data.get('format_version')!r}, this reader knows {TRAINING_FORMAT_VERSION}")
    usage, toggle = data.get("usage"), data.get("toggle")
    return TrainingEpisode(
        **{
            **data,
            "sequences": tuple(sequence_from_json(s) for s in data["sequences"]),
            "weight_versions": tuple(data["weight_versions"]),
            "children": tuple(training_from_json(child) for child in data["children"]),
            "usage": None if usage is None else EpisodeUsage(**usage),
            "toggle": None if toggle is None else ToggleMark(**toggle),
        }
    )
