"""Spec files: read in full when loaded, every mistake a TaskError that says where."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from boxgym.errors import TaskError
from boxgym.simulated import load_world
from boxgym.simulated.spec import parse_world

GOOD = {
    "id": "shop",
    "description": "A shop.",
    "state": {"stock": {"apple": 3}},
    "state_schema": {"type": "object", "properties": {"stock": {"type": "object"}}},
    "tools": [
        {
            "name": "buy",
            "description": "Buy an item.",
            "parameters": {"type": "object", "properties": {"item": {"type": "string"}}, "required": ["item"]},
            "output": {"type": "object", "required": ["left"], "properties": {"left": {"type": "integer"}}},
        },
        {"name": "bash", "real": True},
    ],
    "tasks": [
        {
            "id": "apple",
            "prompt": "Buy an apple.",
            "checks": [{"path": "/stock/apple", "equals": 2}],
            "reference": [
                {"name": "buy", "arguments": {"item": "apple"}, "world": {"output": {"left": 2}}},
                {"name": "submit"},
            ],
        }
    ],
}


def spec(**changes):
    document = copy.deepcopy(GOOD)
    for path, value in changes.items():
        *keys, last = path.split("__")
        target = document
        for key in keys:
            target = target[int(key)] if key.isdigit() else target[key]
        if value is None:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return document


def test_a_good_spec_gives_a_world_and_tasks_named_under_it():
    world, [task] = parse_world(GOOD, "good")
    assert task.id == "shop/apple" and task.oracle.world is world and task.metadata == {"world": "shop"}
    assert [t.name for t in world.tools] == ["buy", "bash"] and world.tools[1].real


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        pytest.param({"id": "a b"}, "id must be letters", id="bad-id"),
        pytest.param({"colour": "red"}, "unknown field(s) colour", id="unknown-field"),
        pytest.param({"tools": []}, "needs at least one [[tools]]", id="no-tools"),
        pytest.param({"tools__0__output": None}, "needs an output schema", id="no-output-schema"),
        pytest.param({"tools__0__output": {"type": "bogus"}}, "output: not a valid JSON Schema", id="bad-schema"),
        pytest.param({"tools__0__parameters": {"type": "string"}}, "parameters must be an object", id="not-object"),
        pytest.param({"tools__1__output": {"type": "string"}}, "a real tool takes its schema", id="real-with-schema"),
        pytest.param({"tools__0__name": "submit"}, "submit are the env's own", id="reserved-name"),
        pytest.param({"tools__1__name": "buy", "tools__1__real": None, "tools__1__description": "x",
                      "tools__1__output": {}}, "must be unique", id="duplicate-tool"),  # fmt: skip
        pytest.param({"state": {"stock": []}}, "state does not fit state_schema", id="state-misfits"),
        pytest.param({"tasks__0__checks": None}, "needs checks over the final state, a rubric, or both", id="unjudged"),
        pytest.param({"tasks__0__user": {"persona": "x"}}, "user: needs goal", id="user-without-goal"),
        pytest.param({"tasks__0__reference__0__world": None}, "needs world = {output = ...}", id="no-world-answer"),
        pytest.param({"tasks__0__reference__0__world": {"output": {"left": "2"}}}, "does not fit buy", id="misfit"),
        pytest.param({"tasks__0__reference__0__arguments": {"item": 7}}, "does not fit buy", id="arguments-misfit"),
        pytest.param({"tasks__0__reference__1__name": "message_user"}, "is not a tool of shop", id="no-user"),
        pytest.param({"tasks__0__reference__0__world": "{not json"}, "world is not JSON", id="answer-not-json"),
    ],
)
def test_a_malformed_spec_is_a_task_error_that_says_where(changes, says):
    with pytest.raises(TaskError, match="spec.toml") as raised:
        parse_world(spec(**changes), "spec.toml")
    assert says in str(raised.value)


def test_a_file_in_toml_or_json_reads_the_same(tmp_path: Path):
    (tmp_path / "shop.json").write_text(json.dumps(GOOD))
    world, tasks = load_world(tmp_path / "shop.json")
    assert world == parse_world(GOOD, "x")[0] and [t.id for t in tasks] == ["shop/apple"]
    (tmp_path / "broken.toml").write_text("id = [")
    with pytest.raises(TaskError, match="broken.toml"):
        load_world(tmp_path / "broken.toml")


async def test_a_real_tool_the_real_toolset_lacks_is_refused_when_the_episode_opens():
    from boxgym.simulated import SimulatedToolset
    from boxgym.toolsets import SubmitToolset

    _, [task] = parse_world(GOOD, "x")
    with pytest.raises(TaskError, match="the real tool 'bash' is not one of submit"):
        await SimulatedToolset(None, real=SubmitToolset()).open_episode(task, "ep")
