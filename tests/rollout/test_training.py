"""The trainer output: loss mask exactly on sampled tokens, aligned logprobs, the GRPO adapter."""

from __future__ import annotations

import math

import numpy as np

from boxgym.rollout import Completion, EpisodeResult, Outcome, TaskRef, to_training, training_to_json
from boxgym.rollout.grpo import grpo_batch
from boxgym.trajectories.tokens import LossRule, Prefix


def _episode(completions: list[Completion], reward: float | None = 1.0, index: int = 0) -> EpisodeResult:
    return EpisodeResult(
        episode_id=f"e{index}", task=TaskRef("t"), group_id="g", sample_index=index,
        outcome=Outcome.TERMINATED if reward is not None else Outcome.INFRA_FAILURE,
        reason="env_terminated" if reward is not None else "infra", reward=reward, reward_parts={},
        steps=len(completions), completion_tokens=0, messages=(), completions=tuple(completions), timings={},
    )


def _c(prompt: tuple[int, ...], sampled: tuple[int, ...], version: str | None = "v1") -> Completion:
    return Completion({"role": "assistant", "content": "x"}, prompt, sampled, tuple(-0.1 * t for t in sampled), version)


def test_loss_mask_is_one_exactly_on_sampled_tokens() -> None:
    episode = _episode([
        _c((1, 2, 3), (10, 11)),
        _c((1, 2, 3, 10, 11, 4, 5), (12,), "v2"),  # extends: prompt = history + observation tokens
        _c((1, 2, 99), (13, 14)),  # history rewritten: a new sequence
    ])
    first, second = to_training(episode).sequences
    assert first.token_ids == (1, 2, 3, 10, 11, 4, 5, 12)
    assert first.loss_mask == (0, 0, 0, 1, 1, 0, 0, 1)
    sampled = [t for t, m in zip(first.token_ids, first.loss_mask) if m]
    assert sampled == [10, 11, 12]
    assert [lp for lp, m in zip(first.logprobs, first.loss_mask) if m] == [-1.0, -1.1, -1.2000000000000002]
    assert all(lp == 0.0 for lp, m in zip(first.logprobs, first.loss_mask) if not m)
    assert first.spans == ((3, 5, "v1"), (7, 8, "v2"))
    assert second.token_ids == (1, 2, 99, 13, 14) and second.loss_mask == (0, 0, 0, 1, 1)
    # the rewritten history is a branch of the first sequence, sharing its first two tokens
    assert (second.start, second.parent, second.fork_at) == (Prefix.FORK, 0, 2)
    assert first.loss_rule is second.loss_rule is LossRule.ONCE


def test_missing_tokens_are_reported_not_invented() -> None:
    training = to_training(_episode([Completion({"role": "assistant", "content": "x"})]))
    assert training.sequences == () and training.missing_tokens and not training.usable


def test_unknown_logprobs_are_nan_not_zero() -> None:
    c = Completion({"role": "assistant", "content": "x"}, (1,), (2, 3), None)
    [seq] = to_training(_episode([c])).sequences
    assert seq.logprobs[0] == 0.0 and all(math.isnan(x) for x in seq.logprobs[1:])


def test_training_json_is_versioned() -> None:
    data = training_to_json(to_training(_episode([_c((1,), (2,))])))
    assert data["format_version"] == 2 and data["sequences"][0]["loss_mask"] == [0, 1]
    [seq] = data["sequences"]
    assert (seq["start"], seq["parent"], seq["fork_at"], seq["loss_rule"], seq["call_ids"]) == (
        "ROOT",
        None,
        None,
        "once",
        [None],
    )


def test_grpo_batch_group_relative_advantages_without_infra_failures() -> None:
    episodes = [
        to_training(_episode([_c((1, 2), (3, 4, 5))], reward=1.0, index=0)),
        to_training(_episode([_c((1,), (6,))], reward=0.0, index=1)),
        to_training(_episode([_c((1,), (7,))], reward=None, index=2)),  # infra failure: left out, not a 0
    ]
    batch = grpo_batch(episodes, pad_id=-1)
    assert batch["input_ids"].shape == (2, 5)
    assert batch["input_ids"][1].tolist() == [1, 6, -1, -1, -1]
    assert batch["loss_mask"].tolist() == [[0, 0, 1, 1, 1], [0, 1, 0, 0, 0]]
    adv = batch["advantages"]
    assert adv[0, 2] > 0 > adv[1, 1]
    assert np.all(adv[batch["loss_mask"] == 0] == 0)
    assert np.isclose(adv[0, 2], -adv[1, 1])
    assert batch["rewards"].tolist() == [1.0, 0.0]
