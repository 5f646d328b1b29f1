"""Example adapter: a group of episodes as NumPy arrays for a GRPO-style update.

No trainer dependency; a trainer converts the arrays to its tensors::

    async for group in manager.run_groups(tasks, group_size=8):
        batch = grpo_batch([to_training(r) for r in group.results])
        loss = policy_gradient(batch["input_ids"], batch["loss_mask"], batch["old_logprobs"], batch["advantages"])

Advantages are group-relative: (reward - group mean) / (group std + eps),
over the episodes that reached a verdict. Episodes without one
(infrastructure failures) are left out, never counted as reward 0, and frozen
sub-agents contribute no rows. Every token sequence of an episode becomes one
row carrying that episode's advantage on its sampled tokens.

The cost, for a Lagrangian trainer (Safe RLHF: maximise the reward advantage minus
λ times the cost advantage, with λ raised while the mean cost is over its budget):
``costs`` per row (NaN where the episode has no cost) and ``cost_advantages``, the
same group-relative normalisation over the episodes that have a cost (0 elsewhere).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .training import TrainingEpisode

__all__ = ["group_advantages", "grpo_batch"]


def group_advantages(rewards: Sequence[float], *, eps: float = 1e-6) -> np.ndarray:
    r = np.asarray(rewards, dtype=np.float64)
    if r.size == 0:
        return r
    return (r - r.mean()) / (r.std() + eps)


def grpo_batch(episodes: Sequence[TrainingEpisode], *, pad_id: int = 0, eps: float = 1e-6) -> dict[str, np.ndarray]:
    """``input_ids``, ``loss_mask``, ``old_logprobs``, ``advantages``, ``cost_advantages`` as
    [rows, max_len] arrays (right-padded, mask 0 on padding), plus ``rewards``, ``costs`` and
    ``episode_index`` per row."""
    usable = [e for e in episodes if e.usable]
    advantages = group_advantages([e.reward for e in usable], eps=eps)  # type: ignore[misc]
    costed = [i for i, e in enumerate(usable) if e.cost is not None]
    cost_advantage = np.zeros(len(usable))
    cost_advantage[costed] = group_advantages([usable[i].cost for i in costed], eps=eps)  # type: ignore[misc]
    rows = [(i, seq) for i, e in enumerate(usable) for seq in e.sequences]
    width = max((len(seq.token_ids) for _, seq in rows), default=0)
    n = len(rows)
    input_ids = np.full((n, width), pad_id, dtype=np.int64)
    loss_mask = np.zeros((n, width), dtype=np.float32)
    old_logprobs = np.zeros((n, width), dtype=np.float32)
    token_advantages = np.zeros((n, width), dtype=np.float32)
    token_cost_advantages = np.zeros((n, width), dtype=np.float32)
    rewards = np.zeros(n, dtype=np.float32)
    costs = np.full(n, np.nan, dtype=np.float32)
    episode_index = np.zeros(n, dtype=np.int64)
    for row, (i, seq) in enumerate(rows):
        length = len(seq.token_ids)
        input_ids[row, :length] = seq.token_ids
        mask = np.asarray(seq.loss_mask, dtype=np.float32)
        loss_mask[row, :length] = mask
        old_logprobs[row, :length] = np.nan_to_num(np.asarray(seq.logprobs, dtype=np.float32)) * mask
        token_advantages[row, :length] = advantages[i] * mask
        token_cost_advantages[row, :length] = cost_advantage[i] * mask
        rewards[row] = usable[i].reward  # type: ignore[assignment]
        if usable[i].cost is not None:
            costs[row] = usable[i].cost
        episode_index[row] = i
    return {
        "input_ids": input_ids,
        "loss_mask": loss_mask,
        "old_logprobs": old_logprobs,
        "advantages": token_advantages,
        "cost_advantages": token_cost_advantages,
        "rewards": rewards,
        "costs": costs,
        "episode_index": episode_index,
    }
