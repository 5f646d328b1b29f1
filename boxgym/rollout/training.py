"""The output format for trainers (format version 1), built from episode results.

One :class:`TrainingEpisode` per episode::

    sequences        token sequences: ids, a loss mask that is 1 exactly on the tokens the
                     policy sampled, and the behaviour logprobs aligned to the ids (0.0 where
                     the mask is 0); one sequence while each call's prompt extends the previous
                     prompt + completion, a new one where the history was rewritten
    reward           the final reward (None: no verdict, e.g. infrastructure failure: never 0)
    reward_parts     named parts of the reward (judge, env), plus r_parallel / r_finish
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
changes meaning. :mod:`boxgym.rollout.grpo` turns a group into NumPy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .subagents import critical_steps, parl_rewards, subagent_children
from .types import EpisodeResult

__all__ = ["TRAINING_FORMAT_VERSION", "TokenSequence", "TrainingEpisode", "to_training", "training_from_json", "training_to_json"]

TRAINING_FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class TokenSequence:
    token_ids: tuple[int, ...]
    loss_mask: tuple[int, ...]  # 1 exactly on policy-sampled tokens
    logprobs: tuple[float, ...]  # behaviour logprob of each sampled token, 0.0 elsewhere
    # (start, end, weight_version) of each sampled span, so a trainer can drop or reweight
    # tokens sampled under stale weights.
    spans: tuple[tuple[int, int, str | None], ...]


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
    format_version: int = TRAINING_FORMAT_VERSION

    @property
    def usable(self) -> bool:
        """Has a verdict and tokens to train on."""
        return self.reward is not None and bool(self.sequences) and not self.frozen


def _sequences(result: EpisodeResult) -> tuple[tuple[TokenSequence, ...], bool]:
    out: list[TokenSequence] = []
    ids: list[int] = []
    mask: list[int] = []
    logprobs: list[float] = []
    spans: list[tuple[int, int, str | None]] = []
    missing = False

    def close() -> None:
        if ids:
            out.append(TokenSequence(tuple(ids), tuple(mask), tuple(logprobs), tuple(spans)))

    for completion in result.completions:
        prompt, sampled = completion.prompt_token_ids, completion.completion_token_ids
        if prompt is None or sampled is None:
            missing = True
            continue
        if ids and len(prompt) >= len(ids) and list(prompt[: len(ids)]) == ids:
            new_prompt = prompt[len(ids) :]  # the history was extended: continue the sequence
        else:
            close()
            ids, mask, logprobs, spans = [], [], [], []
            new_prompt = prompt
        ids.extend(new_prompt)
        mask.extend([0] * len(new_prompt))
        logprobs.extend([0.0] * len(new_prompt))
        start = len(ids)
        ids.extend(sampled)
        mask.extend([1] * len(sampled))
        behaviour = completion.logprobs
        if behaviour is None or len(behaviour) != len(sampled):
            logprobs.extend([float("nan")] * len(sampled))  # unknown: a trainer must not use 0.0
        else:
            logprobs.extend(behaviour)
        spans.append((start, len(ids), completion.weight_version))
    close()
    return tuple(out), missing


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
        "sequences": [
            {
                "token_ids": list(s.token_ids),
                "loss_mask": list(s.loss_mask),
                "logprobs": list(s.logprobs),
                "spans": [list(span) for span in s.spans],
            }
            for s in episode.sequences
        ],
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
    }


def training_from_json(data: dict[str, Any]) -> TrainingEpisode:
    """The inverse of :func:`training_to_json` (a line of ``training.jsonl``)."""
    if data.get("format_version") != TRAINING_FORMAT_VERSION:
        raise ValueError(f"training format {data.get('format_version')!r}, this reader knows {TRAINING_FORMAT_VERSION}")
    sequences = tuple(
        TokenSequence(
            tuple(s["token_ids"]), tuple(s["loss_mask"]), tuple(s["logprobs"]), tuple(tuple(span) for span in s["spans"])
        )
        for s in data["sequences"]
    )
    children = tuple(training_from_json(child) for child in data["children"])
    return TrainingEpisode(
        **{**data, "sequences": sequences, "weight_versions": tuple(data["weight_versions"]), "children": children}
    )
