"""Token sequences for a trainer: the one builder, fed by the rollout manager or by the gateway.

An episode's model calls, in the order they were made, become token sequences. Each call
brings its prompt ids (what the engine was given) and completion ids (what it sampled), both
the engine's own. A call whose prompt starts with the whole of an existing sequence extends it
(the new prompt tokens are given, the completion sampled); any other call starts a new
sequence, a branch of the earlier call its prompt shares the most tokens with (the latest one on
a tie, so that a history edited after an older call is a branch of the newer one)::

    ROOT     shares nothing with an earlier call (the episode's first call, or a fresh start)
    REALIGN  differs only inside the last ``tail`` tokens of that call's completion (a chat
             template re-rendered the end of a reply differently from how it was sampled)
    FORK     anything else: an edited or truncated history, a second continuation of a call

Relations are decided from the token ids alone, so the same calls give the same sequences
whichever side feeds them: the manager's completions (:func:`boxgym.rollout.to_training`) or the
gateway's records (:func:`boxgym.gateway.training_view`).

Along a sequence, ``loss_mask`` is 1 on tokens that were sampled and 0 on tokens that were given;
``logprobs[i]`` is the behaviour log-probability of ``token_ids[i]`` where the mask is 1 (NaN when
the engine gave none: a trainer must not read 0.0 as certainty) and 0.0 elsewhere. A branch
holds its whole token history, so ``token_ids[:fork_at]`` are its parent's tokens too. Who carries
the loss on those shared tokens is the :class:`LossRule`, and every sequence says which it was
built under: by default (``ONCE``) every sampled token carries loss in exactly one sequence of
the episode, the one of the call that sampled it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, TypeVar

__all__ = [
    "Prefix",
    "LossRule",
    "REALIGN_TAIL",
    "TokenCall",
    "TokenSequence",
    "Tokens",
    "common_prefix_len",
    "relation",
    "closest",
    "build_sequences",
    "sequence_to_json",
    "sequence_from_json",
]

#: A REALIGN is a difference only inside the last this-many tokens of the earlier completion.
REALIGN_TAIL = 8

_NAN = float("nan")

_K = TypeVar("_K")


class Prefix(str, Enum):
    """How a call's prompt relates to the earlier calls of its episode."""

    ROOT = "ROOT"  # nothing earlier to extend
    CLEAN = "CLEAN"  # the prompt is exactly an earlier call's prompt + completion, extended
    REALIGN = "REALIGN"  # differs only inside the last tokens of that completion (a re-rendered end)
    FORK = "FORK"  # anything else: an edited or truncated history
    UNCHECKED = "UNCHECKED"  # no token ids to decide from (a gateway record of a failed or text-only call)


class LossRule(str, Enum):
    """Which sequence carries the loss of a sampled token that several branches hold."""

    ONCE = "once"  # only the sequence of the call that sampled it: a branch's shared tokens are masked 0
    PER_BRANCH = "per_branch"  # every branch holding it: each sequence is a standalone sample


class TokenCall(Protocol):
    """One model call as the builder reads it; ``boxgym.rollout.Completion`` and
    ``boxgym.gateway.CallRecord`` both are one."""

    @property
    def call_id(self) -> str | None: ...
    @property
    def prompt_token_ids(self) -> tuple[int, ...] | None: ...
    @property
    def completion_token_ids(self) -> tuple[int, ...] | None: ...
    @property
    def logprobs(self) -> tuple[float, ...] | None: ...
    @property
    def weight_version(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class TokenSequence:
    """One token sequence of an episode: what the engine really ran, call after call."""

    token_ids: tuple[int, ...]
    loss_mask: tuple[int, ...]  # 1 on sampled tokens (under loss_rule), 0 on given ones
    logprobs: tuple[float, ...]  # behaviour logprob where the mask is 1 (NaN: unknown), 0.0 elsewhere
    # (start, end, weight_version) of each span that carries loss, so that a trainer can drop or
    # reweight tokens sampled under stale weights
    spans: tuple[tuple[int, int, str | None], ...]
    call_ids: tuple[str | None, ...] = ()  # the calls whose completions this sequence samples, in order
    parent: int | None = None  # index of the sequence this one branched from
    fork_at: int | None = None  # token_ids[:fork_at] are the parent's tokens
    start: Prefix = Prefix.ROOT  # ROOT, or how its first call relates to the parent: REALIGN or FORK
    loss_rule: LossRule = LossRule.ONCE


class Tokens(Protocol):
    """What the prefix functions read: a length and slices (a tuple, or a lazy view of one)."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: slice, /) -> Sequence[int]: ...


def common_prefix_len(a: Tokens, b: Tokens) -> int:
    """Length of the longest common prefix; slice comparisons run in C, halving the range."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def relation(shared: int, completion_start: int, end: int, *, tail: int) -> Prefix:
    """How a prompt that shares ``shared`` tokens with an earlier call's prompt + completion
    (``end`` tokens, the completion from ``completion_start``) relates to that call."""
    if shared >= end:
        return Prefix.CLEAN
    return Prefix.REALIGN if shared >= max(completion_start, end - tail) else Prefix.FORK


def closest(prompt: Tokens, earlier: Iterable[tuple[_K, Tokens]]) -> tuple[_K | None, int]:
    """The key of the earlier sequence sharing the longest prefix with ``prompt`` (the first
    one given, on a tie) and that length; ``(None, -1)`` if there is none."""
    best, best_len = None, -1
    for key, seq in earlier:
        if len(seq) <= best_len:
            continue  # too short to share more than the best so far
        n = common_prefix_len(prompt, seq)
        if n > best_len:
            best, best_len = key, n
            if n == len(prompt):
                break  # nothing can share more than the whole prompt
    return best, best_len


@dataclass(slots=True)
class _Open:
    """A sequence being built."""

    index: int
    parent: int | None
    fork_at: int | None
    start: Prefix
    tokens: tuple[int, ...] = ()
    mask: list[int] = field(default_factory=list)
    lps: list[float] = field(default_factory=list)
    spans: list[tuple[int, int, str | None]] = field(default_factory=list)
    calls: list[str | None] = field(default_factory=list)

    def add(self, call: TokenCall, prompt: tuple[int, ...], sampled: tuple[int, ...]) -> None:
        given = len(prompt) - len(self.tokens)
        self.mask += [0] * given
        self.lps += [0.0] * given
        start = len(prompt)
        self.tokens = prompt + sampled
        self.mask += [1] * len(sampled)
        behaviour = call.logprobs
        self.lps += behaviour if behaviour is not None and len(behaviour) == len(sampled) else [_NAN] * len(sampled)
        self.spans.append((start, len(self.tokens), call.weight_version))
        self.calls.append(call.call_id)

    def freeze(self, rule: LossRule) -> TokenSequence:
        return TokenSequence(
            self.tokens,
            tuple(self.mask),
            tuple(self.lps),
            tuple(self.spans),
            tuple(self.calls),
            self.parent,
            self.fork_at,
            self.start,
            rule,
        )


class _Placed:
    """A call placed in a sequence: its prompt + completion are the sequence's first ``end``
    tokens, copied out only if a later prompt is compared with them (branches are rare)."""

    __slots__ = ("seq", "completion_start", "end", "_tokens")

    def __init__(self, seq: _Open, completion_start: int) -> None:
        self.seq, self.completion_start, self.end = seq, completion_start, len(seq.tokens)
        self._tokens: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return self.end

    def __getitem__(self, index: slice) -> tuple[int, ...]:
        if self._tokens is None:
            self._tokens = self.seq.tokens[: self.end]
        return self._tokens[index]


def build_sequences(
    calls: Iterable[TokenCall], *, loss_rule: LossRule = LossRule.ONCE, tail: int = REALIGN_TAIL
) -> tuple[TokenSequence, ...]:
    """An episode's token sequences from its calls, in the order they were made.

    Calls without prompt or completion ids are passed over (the caller reports them: nothing is
    re-tokenized). See the module docstring for the rules.
    """
    seqs: list[_Open] = []
    placed: list[_Placed] = []  # every call placed so far
    for call in calls:
        prompt, sampled = call.prompt_token_ids, call.completion_token_ids
        if prompt is None or sampled is None:
            continue
        prompt, sampled = tuple(prompt), tuple(sampled)
        tip = _tip(seqs, prompt)
        if tip is not None:
            tip.add(call, prompt, sampled)
            placed.append(_Placed(tip, len(prompt)))
            continue
        seq = _branch(len(seqs), prompt, placed, tail)
        if loss_rule is LossRule.PER_BRANCH and seq.parent is not None and seq.fork_at:
            _inherit(seq, seqs[seq.parent])
        seq.add(call, prompt, sampled)
        seqs.append(seq)
        placed.append(_Placed(seq, len(prompt)))
    return tuple(s.freeze(loss_rule) for s in seqs)


def _tip(seqs: list[_Open], prompt: tuple[int, ...]) -> _Open | None:
    """The longest sequence the prompt extends as a whole (the latest on a tie)."""
    best: _Open | None = None
    for seq in reversed(seqs):
        n = len(seq.tokens)
        if (best is None or n > len(best.tokens)) and n <= len(prompt) and prompt[:n] == seq.tokens:
            best = seq
    return best


def _branch(index: int, prompt: tuple[int, ...], placed: list[_Placed], tail: int) -> _Open:
    """A new sequence for ``prompt``, related to the placed call it shares the most tokens with."""
    key, shared = closest(prompt, ((i, placed[i]) for i in range(len(placed) - 1, -1, -1)))
    if key is None or shared <= 0:
        return _Open(index, None, None, Prefix.ROOT)
    call = placed[key]
    kind = relation(shared, call.completion_start, call.end, tail=tail)
    return _Open(index, call.seq.index, shared, kind)


def _inherit(seq: _Open, parent: _Open) -> None:
    """PER_BRANCH: the branch also carries the loss of the sampled tokens it shares."""
    cut = seq.fork_at or 0
    seq.tokens = parent.tokens[:cut]
    seq.mask, seq.lps = parent.mask[:cut], parent.lps[:cut]
    seq.spans = [(a, min(b, cut), v) for a, b, v in parent.spans if a < cut]


def sequence_to_json(seq: TokenSequence) -> dict[str, Any]:
    return {
        "token_ids": list(seq.token_ids),
        "loss_mask": list(seq.loss_mask),
        "logprobs": list(seq.logprobs),
        "spans": [list(span) for span in seq.spans],
        "call_ids": list(seq.call_ids),
        "parent": seq.parent,
        "fork_at": seq.fork_at,
        "start": seq.start.value,
        "loss_rule": seq.loss_rule.value,
    }


def sequence_from_json(d: dict[str, Any]) -> TokenSequence:
    return TokenSequence(
        tuple(d["token_ids"]),
        tuple(d["loss_mask"]),
        tuple(float(x) for x in d["logprobs"]),
        tuple((a, b, v) for a, b, v in d["spans"]),
        tuple(d.get("call_ids", ())),
        d.get("parent"),
        d.get("fork_at"),
        Prefix(d.get("start", "ROOT")),
        LossRule(d.get("loss_rule", "once")),
    )
