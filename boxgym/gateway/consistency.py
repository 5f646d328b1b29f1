"""The prefix check: does a new prompt extend what the episode already sampled?

For a trainer, a multi-turn episode is one token sequence only if every prompt is exactly the
previous prompt plus the previous completion, extended (CLEAN). Chat templates often re-render
the end of an assistant turn differently from what was sampled (REALIGN: the difference lies
only inside the last ``tail`` tokens of that completion); agents also edit or truncate their
history (FORK: anything else). This module only says which and where; it never rewrites tokens.
The rules are :mod:`boxgym.trajectories.tokens`' (the training sequences are built by the same),
applied to records as they arrive.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..trajectories.tokens import Prefix, closest, common_prefix_len, relation
from .records import CallRecord, PrefixCheck

__all__ = ["common_prefix_len", "check_against", "check_prompt"]


def _extends(parent: CallRecord) -> tuple[int, ...]:
    assert parent.prompt_token_ids is not None and parent.completion_token_ids is not None
    return parent.prompt_token_ids + parent.completion_token_ids


def check_against(prompt: tuple[int, ...], parent: CallRecord, *, tail: int) -> PrefixCheck:
    """Classify ``prompt`` against one earlier call's prompt + completion."""
    seq = _extends(parent)
    shared = common_prefix_len(prompt, seq)
    kind = relation(shared, len(parent.prompt_token_ids or ()), len(seq), tail=tail)
    return PrefixCheck(kind, parent.call_id, None if kind is Prefix.CLEAN else shared)


#: How many of an episode's latest calls a prompt is compared with. An agent's episode has far
#: fewer; the bound keeps a long-lived catch-all episode (``default``) from costing O(calls) each.
WINDOW = 64


def _candidates(history: Sequence[CallRecord]) -> Iterator[CallRecord]:
    for r in reversed(history[-WINDOW:]):
        if (
            r.error is None
            and r.status < 400
            and r.replay_of is None
            and r.prompt_token_ids is not None
            and r.completion_token_ids is not None
        ):
            yield r


def check_prompt(
    prompt: tuple[int, ...] | None,
    history: Sequence[CallRecord],
    *,
    tail: int,
    parent_call_id: str | None = None,
) -> PrefixCheck:
    """Classify a new prompt against its episode's earlier calls.

    The parent is the call named by the client (``parent_call_id``) if any; otherwise the call
    whose prompt + completion shares the longest prefix with the new prompt (the latest on a
    tie). A prompt that cleanly extends an older call but edits a later one is thus a FORK of the
    later one: an edited reply is reported, not hidden behind an older clean parent.
    """
    if prompt is None:
        return PrefixCheck(Prefix.UNCHECKED)
    if parent_call_id is not None:
        named = [r for r in _candidates(history) if r.call_id == parent_call_id]
        if named:
            return check_against(prompt, named[0], tail=tail)
    best, _ = closest(prompt, ((r, _Lazy(r)) for r in _candidates(history)))
    if best is None:
        return PrefixCheck(Prefix.ROOT)
    return check_against(prompt, best, tail=tail)


class _Lazy:
    """A record's prompt + completion, concatenated only if it is compared."""

    __slots__ = ("record", "_seq")

    def __init__(self, record: CallRecord) -> None:
        self.record, self._seq = record, None

    def __len__(self) -> int:
        r = self.record
        return len(r.prompt_token_ids or ()) + len(r.completion_token_ids or ())

    def __getitem__(self, index: slice) -> tuple[int, ...]:
        if self._seq is None:
            self._seq = _extends(self.record)
        return self._seq[index]
