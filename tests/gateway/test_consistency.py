"""The prefix check on hand-made token sequences."""

from __future__ import annotations

import pytest

from boxgym.gateway import CallRecord, Prefix, Timings, check_prompt
from boxgym.gateway.consistency import common_prefix_len


def rec(call_id: str, prompt: list[int], completion: list[int], **kw) -> CallRecord:
    kw.setdefault("status", 200)
    return CallRecord(
        episode_id="e",
        call_id=call_id,
        endpoint="chat.completions",
        timings=Timings(0.0),
        prompt_token_ids=tuple(prompt),
        completion_token_ids=tuple(completion),
        **kw,
    )


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


FIRST = rec("c1", [1, 2, 3], [10, 11, 12, 13, 99])  # 99 plays EOS


def test_first_call_is_root() -> None:
    assert check_prompt((1, 2), [], tail=2).kind is Prefix.ROOT


def test_exact_extension_is_clean() -> None:
    check = check_prompt((1, 2, 3, 10, 11, 12, 13, 99, 7, 8), [FIRST], tail=2)
    assert (check.kind, check.parent_call_id, check.position) == (Prefix.CLEAN, "c1", None)


def test_difference_in_the_completions_tail_is_realign() -> None:
    # the template re-rendered the end token as 98 instead of the sampled 99
    check = check_prompt((1, 2, 3, 10, 11, 12, 13, 98, 7), [FIRST], tail=2)
    assert (check.kind, check.position) == (Prefix.REALIGN, 7)


def test_difference_before_the_tail_is_fork() -> None:
    check = check_prompt((1, 2, 3, 10, 50, 12, 13, 99, 7), [FIRST], tail=2)
    assert (check.kind, check.position) == (Prefix.FORK, 4)
    edited_prompt = check_prompt((1, 5, 3, 10, 11, 12, 13, 99), [FIRST], tail=2)
    assert (edited_prompt.kind, edited_prompt.position) == (Prefix.FORK, 1)


def test_truncated_history_is_fork() -> None:
    check = check_prompt((1, 2, 3, 10), [FIRST], tail=2)
    assert (check.kind, check.position) == (Prefix.FORK, 4)


def test_parent_is_the_latest_call_extended_cleanly() -> None:
    second = rec("c2", [1, 2, 3, 10, 11, 12, 13, 99, 7], [20, 99])
    branch = rec("c3", [1, 2, 3, 10, 11, 12, 13, 99, 8], [30, 99])  # a sibling of c2
    # extends c2, not the later c3
    check = check_prompt((1, 2, 3, 10, 11, 12, 13, 99, 7, 20, 99, 5), [FIRST, second, branch], tail=2)
    assert (check.kind, check.parent_call_id) == (Prefix.CLEAN, "c2")
    # a fork is measured against the call sharing the longest prefix
    check = check_prompt((1, 2, 3, 10, 11, 12, 13, 99, 7, 21), [FIRST, second, branch], tail=1)
    assert (check.kind, check.parent_call_id, check.position) == (Prefix.FORK, "c2", 9)


def test_failed_and_replayed_calls_are_not_parents() -> None:
    failed = rec("bad", [1, 2, 3], [10], status=502)
    replay = rec("again", [1, 2, 3], [10, 11, 12, 13, 99], replay_of="c1")
    check = check_prompt((1, 2, 3, 10, 5), [FIRST, failed, replay], tail=2)
    assert check.parent_call_id == "c1"


def test_named_parent_is_used() -> None:
    second = rec("c2", [1, 2, 3, 10, 11, 12, 13, 99, 7], [20, 99])
    check = check_prompt((1, 2, 3, 10, 11, 12, 13, 99, 4), [FIRST, second], tail=2, parent_call_id="c1")
    assert (check.kind, check.parent_call_id) == (Prefix.CLEAN, "c1")


def test_no_tokens_is_unchecked() -> None:
    assert check_prompt(None, [FIRST], tail=2).kind is Prefix.UNCHECKED
