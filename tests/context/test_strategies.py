"""The strategies on a history: what is hidden or dropped, when the cut moves, what a view records."""

from __future__ import annotations

import pytest

from boxgym.context import ContextState, ContextView, DiscardAll, HideToolResults, rounds, shown_messages

INITIAL = [{"role": "system", "content": "s"}, {"role": "user", "content": "task"}]


def step(i: int, *, image: bool = False, feedback: bool = False) -> list[dict]:
    call = {"id": f"c{i}", "type": "function", "function": {"name": "read", "arguments": "{}"}}
    messages = [
        {"role": "assistant", "content": f"thinking {i}", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": f"c{i}", "content": f"page {i} " * 50},
    ]
    if image:
        messages.append({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]})
    if feedback:
        messages.append({"role": "user", "content": "Your last message had problems: ..."})
    return messages


HISTORY = INITIAL + step(0, image=True) + step(1, feedback=True) + step(2) + step(3)


def test_rounds_split_the_history_at_each_assistant_message():
    initial, steps = rounds(HISTORY)
    assert initial == INITIAL and [len(s) for s in steps] == [3, 3, 2, 2]


def test_hiding_keeps_every_assistant_message_and_the_rounds_from_the_cut():
    view = ContextView("hide_tool_results", 2, 100, 150, 2, True, placeholder="[hidden]")
    shown = shown_messages(HISTORY, view)
    assert len(shown) == len(HISTORY)
    assert [m["content"] for m in shown if m["role"] == "assistant"] == [f"thinking {i}" for i in range(4)]
    tools = [m["content"] for m in shown if m["role"] == "tool"]
    assert tools == ["[hidden]", "[hidden]", "page 2 " * 50, "page 3 " * 50]
    assert shown[4]["content"] == "[hidden]"  # the images tools returned are results too
    assert shown[7]["content"].startswith("Your last message had problems")  # feedback is not a result
    assert all(m.get("tool_call_id") == o.get("tool_call_id") for m, o in zip(shown, HISTORY))  # calls still answered


def test_discarding_restarts_from_the_task_and_keeps_what_came_after_the_cut():
    view = ContextView("discard_all", 3, 100, 150, 2, True)
    assert shown_messages(HISTORY, view) == INITIAL + step(3)
    assert shown_messages(HISTORY, ContextView("discard_all", 4, 100, 150, 3, True)) == INITIAL


@pytest.mark.parametrize(
    ("strategy", "cut"),
    [pytest.param(HideToolResults(1000), 2, id="hide"), pytest.param(DiscardAll(1000), 3, id="discard")],
)
def test_the_cut_moves_only_when_a_call_reaches_the_threshold_and_never_back(strategy, cut):
    state = ContextState(strategy)
    assert state.view(HISTORY) == (HISTORY, None)  # below the threshold: the whole history, no view
    state.observe(0, 400)
    state.observe(1, 999)
    assert state.view(HISTORY)[1] is None
    state.observe(2, 1000)  # the call of step 2 reached it
    shown, view = state.view(HISTORY)
    assert (view.from_step, view.tokens, view.set_at, view.new) == (cut, 1000, 2, True)
    if strategy.name == "hide_tool_results":
        assert view.edited == 3 and len(shown) == len(HISTORY)  # two tool results and an image message hidden
    else:
        assert view.edited == 8 and shown == INITIAL + step(3)
    assert state.view(HISTORY)[1].new is False  # the next call: the same cut, nothing rewritten
    state.observe(3, 500)  # below again: the cut stays
    assert state.view(HISTORY)[1].from_step == cut
    state.observe(1, 5000)  # a cut never moves back
    assert state.view(HISTORY)[1].from_step == cut


def test_a_view_round_trips_through_json_and_rebuilds_the_same_messages():
    state = ContextState(HideToolResults(10))
    state.observe(1, 10)
    shown, view = state.view(HISTORY)
    assert ContextView.from_json(view.to_json()) == view
    assert shown_messages(HISTORY, view.to_json()) == shown
    assert view.to_json()["placeholder"] == "[tool result hidden to save context]"


def test_a_threshold_is_positive():
    with pytest.raises(ValueError):
        HideToolResults(0)
    with pytest.raises(ValueError):
        DiscardAll(-5)
