"""The training view of an episode: one token sequence per branch, built from its records.

A branch is a chain of calls, each prompt a CLEAN extension of the previous prompt + completion.
Along it, ``loss_mask`` is 1 exactly on tokens the engine sampled (every completion token,
EOS included) and 0 on tokens it was given (template, user turns, tool results);
``logprobs[i]`` is the behaviour log-probability of ``token_ids[i]`` where the mask is 1 and 0.0
elsewhere. The tokens are the engine's own ids, never re-tokenized text.

A call that does not extend the tip of a branch (FORK, REALIGN, or a second continuation of the
same call) starts a new branch. The new branch copies its parent branch up to ``fork_at``, the
first position where they differ, so that each branch is a sequence the engine really ran; the
first ``fork_at`` tokens are shared with ``parent_branch`` (a trainer that wants each sampled
token counted once zeroes ``loss_mask[:fork_at]`` in child branches).

Calls that cannot be placed are listed in ``skipped`` with the reason: failed calls, SDK retries
answered from the record, turns the client never received, and calls with no token ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .records import CallRecord, Prefix

__all__ = ["Branch", "EpisodeView", "training_view", "view_to_json"]


@dataclass(frozen=True, slots=True)
class Branch:
    branch_id: int
    parent_branch: int | None  # None for a root branch
    fork_at: int | None  # tokens shared with the parent branch
    start: Prefix  # ROOT, FORK, REALIGN, or CLEAN (a second continuation of one call)
    token_ids: tuple[int, ...]
    loss_mask: tuple[int, ...]
    logprobs: tuple[float, ...]
    call_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EpisodeView:
    episode_id: str
    branches: tuple[Branch, ...]
    skipped: tuple[tuple[str, str], ...] = ()  # (call_id, reason)


@dataclass(slots=True)
class _Builder:
    branch_id: int
    parent_branch: int | None
    fork_at: int | None
    start: Prefix
    tokens: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    lps: list[float] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    ends: dict[str, int] = field(default_factory=dict)  # call id -> end of its completion here

    def add(self, r: CallRecord, prompt_from: int) -> None:
        prompt, completion = r.prompt_token_ids or (), r.completion_token_ids or ()
        lps = r.logprobs if r.logprobs is not None else (float("nan"),) * len(completion)
        new = prompt[prompt_from:]
        self.tokens += new
        self.mask += [0] * len(new)
        self.lps += [0.0] * len(new)
        self.tokens += completion
        self.mask += [1] * len(completion)
        self.lps += lps
        self.calls.append(r.call_id)
        self.ends[r.call_id] = len(self.tokens)

    def freeze(self) -> Branch:
        return Branch(
            self.branch_id,
            self.parent_branch,
            self.fork_at,
            self.start,
            tuple(self.tokens),
            tuple(self.mask),
            tuple(self.lps),
            tuple(self.calls),
        )


def _skip_reason(r: CallRecord) -> str | None:
    if r.replay_of is not None:
        return f"an SDK retry answered from {r.replay_of}"
    if not r.delivered:
        return "the client never received it"
    if not r.ok:
        return f"failed: {r.error.type if r.error else r.status}"
    if r.prompt_token_ids is None or r.completion_token_ids is None:
        return "no token ids (the engine gave none)"
    return None


def training_view(records: Iterable[CallRecord], episode_id: str | None = None) -> EpisodeView:
    """Build the view from records in the order they were written (one episode's, or filtered)."""
    builders: list[_Builder] = []
    where: dict[str, _Builder] = {}
    skipped: list[tuple[str, str]] = []
    eid = episode_id
    for r in records:
        if episode_id is not None and r.episode_id != episode_id:
            continue
        eid = eid or r.episode_id
        reason = _skip_reason(r)
        if reason is not None:
            skipped.append((r.call_id, reason))
            continue
        parent = r.prefix.parent_call_id
        base = where.get(parent) if parent is not None else None
        if base is not None and r.prefix.kind is Prefix.CLEAN and base.calls[-1] == parent:
            base.add(r, len(base.tokens))
            where[r.call_id] = base
            continue
        if base is None:
            b = _Builder(
                len(builders),
                None,
                None,
                Prefix.ROOT if r.prefix.kind in (Prefix.ROOT, Prefix.UNCHECKED) else r.prefix.kind,
            )
            b.add(r, 0)
        else:
            end = base.ends[parent]  # type: ignore[index]
            shared = end if r.prefix.position is None else min(r.prefix.position, end)
            b = _Builder(len(builders), base.branch_id, shared, r.prefix.kind)
            b.tokens, b.mask, b.lps = base.tokens[:shared], base.mask[:shared], base.lps[:shared]
            b.add(r, shared)
        builders.append(b)
        where[r.call_id] = b
    return EpisodeView(eid or "", tuple(b.freeze() for b in builders), tuple(skipped))


def view_to_json(view: EpisodeView) -> dict[str, Any]:
    return {
        "episode_id": view.episode_id,
        "branches": [
            {
                "branch_id": b.branch_id,
                "parent_branch": b.parent_branch,
                "fork_at": b.fork_at,
                "start": b.start.value,
                "token_ids": list(b.token_ids),
                "loss_mask": list(b.loss_mask),
                "logprobs": list(b.logprobs),
                "call_ids": list(b.call_ids),
            }
            for b in view.branches
        ],
        "skipped": [{"call_id": c, "reason": why} for c, why in view.skipped],
    }
