"""The one builder of token sequences: extensions, branches, and who carries the loss."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from boxgym.trajectories.tokens import (
    LossRule,
    Prefix,
    TokenSequence,
    build_sequences,
    common_prefix_len,
    sequence_from_json,
    sequence_to_json,
)


@dataclass(frozen=True)
class Call:
    call_id: str | None
    prompt_token_ids: tuple[int, ...] | None
    completion_token_ids: tuple[int, ...] | None
    logprobs: tuple[float, ...] | None = None
    weight_version: str | None = "v1"


def call(call_id: str, prompt: list[int], sampled: list[int], version: str | None = "v1") -> Call:
    return Call(call_id, tuple(prompt), tuple(sampled), tuple(-0.01 * t for t in sampled), version)


def sampled_count(seqs: tuple[TokenSequence, ...]) -> int:
    return sum(sum(s.loss_mask) for s in seqs)


@pytest.mark.parametrize(
    ("a", "b", "n"),
    [
        pytest.param([], [], 0, id="empty"),
        pytest.param([1, 2, 3], [1, 2, 3, 4], 3, id="prefix"),
        pytest.param([1, 2, 3], [1, 9, 3], 1, id="middle"),
        pytest.param([5], [6], 0, id="first"),
        pytest.param(list(range(1000)), list(range(777)) + [0] * 5, 777, id="long"),
    ],
)
def test_common_prefix_len(a: list[int], b: list[int], n: int) -> None:
    assert common_prefix_len(a, b) == n == common_prefix_len(b, a)


def test_a_clean_chain_is_one_sequence_with_loss_on_every_completion() -> None:
    c1 = call("c1", [1, 2, 3], [10, 99])
    c2 = call("c2", [1, 2, 3, 10, 99, 7], [20, 21, 99], "v2")
    [seq] = build_sequences([c1, c2])
    assert seq.token_ids == (1, 2, 3, 10, 99, 7, 20, 21, 99)
    assert seq.loss_mask == (0, 0, 0, 1, 1, 0, 1, 1, 1)
    assert seq.logprobs == (0.0, 0.0, 0.0, *c1.logprobs, 0.0, *c2.logprobs)
    assert seq.spans == ((3, 5, "v1"), (6, 9, "v2"))
    assert (seq.call_ids, seq.start, seq.parent, seq.fork_at, seq.loss_rule) == (
        ("c1", "c2"),
        Prefix.ROOT,
        None,
        None,
        LossRule.ONCE,
    )


def _realign_episode() -> list[Call]:
    # the template re-rendered the completion's end token 99 as 98: the next prompt realigns
    return [call("c1", [1, 2, 3], [10, 11, 12, 99]), call("c2", [1, 2, 3, 10, 11, 12, 98, 7], [20, 99])]


def _fork_episode() -> list[Call]:
    return [
        call("c1", [1, 2, 3], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 99]),
        call("c2", [1, 2, 3, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 99, 7], [20, 21, 99]),
        # the agent edited the first reply early on (before the tail): a fork inside c1's completion
        call("c3", [1, 2, 3, 10, 50, 12, 99, 7], [30, 31, 99]),
    ]


def test_realign_branches_and_every_sampled_token_carries_loss_once() -> None:
    calls = _realign_episode()
    root, branch = build_sequences(calls)
    assert (branch.start, branch.parent, branch.fork_at) == (Prefix.REALIGN, 0, 6)
    assert branch.token_ids == (1, 2, 3, 10, 11, 12, 98, 7, 20, 99)  # what the engine really ran
    assert branch.loss_mask == (0, 0, 0, 0, 0, 0, 0, 0, 1, 1)  # 10, 11, 12 count in the root only
    assert branch.spans == ((8, 10, "v1"),)
    assert sampled_count((root, branch)) == sum(len(c.completion_token_ids) for c in calls) == 6


def test_fork_counts_once_by_default_and_per_branch_on_request() -> None:
    calls = _fork_episode()
    once = build_sequences(calls)
    assert [(s.start, s.parent, s.fork_at) for s in once] == [(Prefix.ROOT, None, None), (Prefix.FORK, 0, 4)]
    assert once[0].call_ids == ("c1", "c2") and once[1].call_ids == ("c3",)
    assert sampled_count(once) == sum(len(c.completion_token_ids) for c in calls) == 17
    per_branch = build_sequences(calls, loss_rule=LossRule.PER_BRANCH)
    root, fork = per_branch
    assert root == once[0].__class__(**{**_fields(once[0]), "loss_rule": LossRule.PER_BRANCH})
    assert fork.loss_mask == (0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1)  # the shared sampled 10 counts here too
    assert fork.logprobs[3] == root.logprobs[3] and fork.spans == ((3, 4, "v1"), (8, 11, "v1"))
    assert sampled_count(per_branch) == 18 and all(s.loss_rule is LossRule.PER_BRANCH for s in per_branch)


def _fields(seq: TokenSequence) -> dict:
    return {f: getattr(seq, f) for f in seq.__slots__}


def test_second_continuation_of_an_earlier_call_branches_from_the_latest_call() -> None:
    c1 = call("c1", [1, 2], [10, 99])
    c2 = call("c2", [1, 2, 10, 99, 5], [20, 99])
    c3 = call("c3", [1, 2, 10, 99, 6], [30, 99])  # c1 again, with another observation: c2 edited
    c4 = call("c4", [1, 2, 10, 99, 6, 30, 99, 8], [40, 99])  # goes on from c3: extends its sequence
    main, other = build_sequences([c1, c2, c3, c4])
    assert main.call_ids == ("c1", "c2") and other.call_ids == ("c3", "c4")
    assert (other.start, other.parent, other.fork_at) == (Prefix.FORK, 0, 4)
    assert other.loss_mask == (0, 0, 0, 0, 0, 1, 1, 0, 1, 1)


def test_a_prompt_sharing_nothing_is_a_new_root_and_calls_without_ids_are_passed_over() -> None:
    calls = [call("a", [1, 2], [3]), Call("none", None, None), call("b", [9, 9], [4])]
    first, second = build_sequences(calls)
    assert second.start is Prefix.ROOT and second.parent is None and second.call_ids == ("b",)


def test_unknown_logprobs_are_nan_not_zero() -> None:
    [seq] = build_sequences([Call("a", (1,), (2, 3), None)])
    assert seq.logprobs[0] == 0.0 and all(math.isnan(x) for x in seq.logprobs[1:])


def test_the_same_calls_give_the_same_sequences_whatever_their_type() -> None:
    from boxgym.gateway import CallRecord, Timings
    from boxgym.rollout import Completion

    calls = _fork_episode()
    records = [
        CallRecord("e", c.call_id, "chat.completions", Timings(0.0), 200, prompt_token_ids=c.prompt_token_ids,
                   completion_token_ids=c.completion_token_ids, logprobs=c.logprobs, weight_version="v1")
        for c in calls
    ]  # fmt: skip
    completions = [
        Completion({"role": "assistant"}, c.prompt_token_ids, c.completion_token_ids, c.logprobs, "v1", c.call_id)
        for c in calls
    ]
    assert build_sequences(records) == build_sequences(completions) == build_sequences(calls)


def test_json_round_trip() -> None:
    for seq in build_sequences(_fork_episode()):
        assert sequence_from_json(sequence_to_json(seq)) == seq
