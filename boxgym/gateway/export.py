"""The token view of an episode: its training sequences, built from its gateway records.

The sequences come from :func:`boxgym.trajectories.tokens.build_sequences`, the builder the
rollout manager's :func:`boxgym.rollout.to_training` uses too: the same calls give the same
sequences either way, and by default (``LossRule.ONCE``) every sampled token carries loss in
exactly one sequence of the episode. The record's own prefix verdict is not consulted: the
sequences are decided from the token ids alone.

Calls that cannot be placed are listed in ``skipped`` with the reason: failed calls, SDK retries
answered from the record, turns the client never received, and calls with no token ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..trajectories.tokens import REALIGN_TAIL, LossRule, TokenSequence, build_sequences, sequence_to_json
from .records import CallRecord

__all__ = ["TokenView", "skip_reason", "training_view", "view_to_json"]


@dataclass(frozen=True, slots=True)
class TokenView:
    """An episode's token sequences as the gateway recorded them."""

    episode_id: str
    sequences: tuple[TokenSequence, ...]
    skipped: tuple[tuple[str, str], ...] = ()  # (call_id, reason)
    loss_rule: LossRule = LossRule.ONCE


def skip_reason(r: CallRecord) -> str | None:
    """Why a call cannot be placed in a token sequence, or None if it can."""
    if r.replay_of is not None:
        return f"an SDK retry answered from {r.replay_of}"
    if not r.delivered:
        return "the client never received it"
    if not r.ok:
        return f"failed: {r.error.type if r.error else r.status}"
    if r.prompt_token_ids is None or r.completion_token_ids is None:
        return "no token ids (the engine gave none)"
    return None


def training_view(
    records: Iterable[CallRecord],
    episode_id: str | None = None,
    *,
    loss_rule: LossRule = LossRule.ONCE,
    tail: int = REALIGN_TAIL,
) -> TokenView:
    """Build the view from records in the order they were written (one episode's, or filtered)."""
    skipped: list[tuple[str, str]] = []
    eid = [episode_id]

    def placeable() -> Iterator[CallRecord]:
        for r in records:
            if episode_id is not None and r.episode_id != episode_id:
                continue
            eid[0] = eid[0] or r.episode_id
            reason = skip_reason(r)
            if reason is not None:
                skipped.append((r.call_id, reason))
            else:
                yield r

    sequences = build_sequences(placeable(), loss_rule=loss_rule, tail=tail)
    return TokenView(eid[0] or "", sequences, tuple(skipped), loss_rule)


def view_to_json(view: TokenView) -> dict[str, Any]:
    return {
        "episode_id": view.episode_id,
        "loss_rule": view.loss_rule.value,
        "sequences": [sequence_to_json(s) for s in view.sequences],
        "skipped": [{"call_id": c, "reason": why} for c, why in view.skipped],
    }
