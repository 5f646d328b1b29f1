"""Rules over the final state: JSON pointers, patterns, each kind of check; merge patches."""

from __future__ import annotations

import pytest

from boxgym.errors import TaskError
from boxgym.simulated import StateCheck, matches, merge_patch
from boxgym.simulated.checks import parse_pointer

STATE = {
    "events": {
        "ev1": {"title": "Standup", "start": "09:30", "attendees": ["dana", "li"], "done": True},
        "ev2": {"title": "Budget review", "start": "10:00", "attendees": ["dana", "sam"], "done": False},
    },
    "sent": [{"to": ["li"], "subject": "Hi"}, {"to": ["li", "sam"], "subject": "Plan"}],
    "files": {"/srv/a.txt": "Hello World", "count": 1},
}


def check(**entry):
    return StateCheck.from_spec(entry, "test").run(STATE)


@pytest.mark.parametrize(
    ("entry", "passed"),
    [
        pytest.param({"path": "/events/ev1/title", "equals": "Standup"}, True, id="equals"),
        pytest.param({"path": "/events/ev1/done", "equals": 1}, False, id="true-is-not-1"),
        pytest.param({"path": "/files/count", "equals": True}, False, id="1-is-not-true"),
        pytest.param({"path": "/events", "includes": {"title": "Budget review", "attendees": ["sam"]}}, True, id="in"),
        pytest.param({"path": "/events", "includes": {"title": "Budget review", "attendees": ["li"]}}, False, id="out"),
        pytest.param({"path": "/events", "excludes": {"start": "11:00"}}, True, id="excludes"),
        pytest.param({"path": "/sent", "count": 2}, True, id="count-list"),
        pytest.param({"path": "/sent", "count": 1, "where": {"to": ["sam"]}}, True, id="count-where"),
        pytest.param({"path": "/events", "count": 1, "where": {"done": False}}, True, id="count-object-values"),
        pytest.param({"path": ["files", "/srv/a.txt"], "contains": "hello world"}, True, id="contains-key-list"),
        pytest.param({"path": "/files/~1srv~1a.txt", "exists": True}, True, id="escaped-pointer"),
        pytest.param({"path": "/files/~1srv~1b.txt", "exists": False}, True, id="absent"),
        pytest.param({"path": "/sent/1/subject", "equals": "Plan"}, True, id="list-index"),
        pytest.param({"path": "/sent/7/subject", "equals": "Plan"}, False, id="index-out-of-range"),
        pytest.param({"path": "/nothing", "count": 0}, False, id="missing-path"),
    ],
)
def test_each_kind_of_check(entry, passed):
    result = check(**entry)
    assert result.passed is passed, result


def test_a_check_says_what_it_found():
    result = check(path="/events", excludes={"title": "Standup"}, name="no standup")
    assert result.name == "no standup" and not result.passed and '"title": "Standup"' in result.detail
    assert check(path="/sent", count=3).detail == "2 item(s)"
    assert check(path="/events/ev1/start", equals="10:00").name == 'equals "10:00" at /events/ev1/start'


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        pytest.param({"path": "/a"}, "exactly one of", id="no-kind"),
        pytest.param({"path": "/a", "equals": 1, "count": 1}, "exactly one of", id="two-kinds"),
        pytest.param({"equals": 1}, "exactly one of", id="no-path"),
        pytest.param({"path": "/a", "count": -1}, "count must be an integer", id="negative-count"),
        pytest.param({"path": "/a", "exists": "yes"}, "exists takes true or false", id="exists-not-bool"),
        pytest.param({"path": "/a", "equals": 1, "where": {}}, "where goes with count only", id="where-without-count"),
        pytest.param({"path": "a/b", "equals": 1}, "not a JSON pointer", id="relative-pointer"),
        pytest.param({"path": "/a", "equal": 1}, "exactly one of", id="typo"),
    ],
)
def test_a_malformed_check_is_a_task_error(entry, says):
    with pytest.raises(TaskError, match=says):
        StateCheck.from_spec(entry, "test")


def test_patterns_match_subsets_of_objects_and_lists():
    assert matches({"a": 1, "b": [1, 2, 3]}, {"b": [3, 1]})
    assert not matches({"a": 1}, {"a": 1, "b": 2})
    assert not matches([1, 2], {"a": 1}) and matches("x", "x") and not matches(1, "1")


def test_merge_patch_merges_objects_deletes_nulls_and_replaces_the_rest():
    target = {"a": {"x": 1, "y": 2}, "b": [1], "c": 3}
    patched = merge_patch(target, {"a": {"y": None, "z": 3}, "b": [2], "d": {"e": None}})
    assert patched == {"a": {"x": 1, "z": 3}, "b": [2], "c": 3, "d": {}}
    assert target == {"a": {"x": 1, "y": 2}, "b": [1], "c": 3}  # unchanged
    assert parse_pointer("") == () and parse_pointer("/a~0b/~1c") == ("a~b", "/c")
