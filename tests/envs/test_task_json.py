"""Tasks from JSON objects, in a file or in memory: what loads, and what is refused at load time."""

from __future__ import annotations

import base64

import gymnasium as gym
import pytest

import boxgym.envs  # noqa: F401 - registers the ids
from boxgym.envs import StaticTaskSet, reference_messages, task_from_json
from boxgym.errors import TaskError
from boxgym.judges import ExpectedAnswer, HiddenTests, SqlOracle
from boxgym.sandboxes import FakeProvider

ADD = {
    "id": "add",
    "prompt": "Write add(a, b) in solution.py, then submit.",
    "tests": "import unittest\nfrom solution import *\n\n\nclass T(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n",
    "reference": [
        {"name": "write_file", "arguments": {"path": "solution.py", "content": "def add(a, b):\n    return a + b\n"}},
        {"name": "submit"},
    ],
}


def test_every_field_and_oracle_kind_loads():
    task = task_from_json(
        {**ADD, "module": "answer_file", "files": {"a.txt": "x", "b.bin": {"base64": base64.b64encode(b"\0").decode()}},
         "difficulty": 3, "metadata": {"source": "me"}}  # fmt: skip
    )
    assert task.oracle == HiddenTests(ADD["tests"], module="answer_file")
    assert (task.files, task.difficulty, dict(task.metadata)) == ({"a.txt": "x", "b.bin": b"\0"}, 3, {"source": "me"})
    assert [(c.name, dict(c.arguments)) for c in task.reference][1] == ("submit", {})
    answer = task_from_json({"id": "q", "prompt": "6 * 7?", "answer": "42", "answer_mode": "exact"})
    assert answer.oracle == ExpectedAnswer("42", mode="exact")
    sql = task_from_json({"id": "s", "prompt": "p", "sql_setup": "CREATE TABLE t (x);", "sql_gold": "SELECT x FROM t",
                          "sql_ordered": True})  # fmt: skip
    assert sql.oracle == SqlOracle("CREATE TABLE t (x);", "SELECT x FROM t", ordered=True) and "data.db" in sql.files


@pytest.mark.parametrize(
    ("change", "says"),
    [
        pytest.param({"refrence": []}, "unknown field(s) refrence", id="unknown-field"),
        pytest.param({"tests": "def broken(:\n"}, "the hidden tests do not compile", id="tests-do-not-compile"),
        pytest.param({"module": "pkg.solution"}, "plain module name", id="dotted-module"),
        pytest.param({"reference": [{"arguments": {}}]}, "reference call 0 must be", id="call-without-name"),
        pytest.param({"reference": [{"name": "submit", "arguments": "x"}]}, "arguments must be an object", id="args"),
        pytest.param({"difficulty": -1}, "difficulty must be an integer >= 0", id="negative-difficulty"),
        pytest.param({"difficulty": "2"}, "difficulty must be an integer >= 0", id="string-difficulty"),
        pytest.param({"files": {"a.bin": {"base64": "not base64!"}}}, "task add: file a.bin: the base64 content is not valid", id="bad-base64"),
        pytest.param({"files": {"../up.txt": "x"}}, "must be relative", id="file-outside"),
        pytest.param({"answer": "1"}, "has tests, answer", id="two-oracles"),
        pytest.param({"tests": None}, "needs exactly one oracle", id="no-oracle"),
    ],
)
def test_malformed_tasks_are_refused_at_load_time(change, says):
    obj = {key: value for key, value in {**ADD, **change}.items() if value is not None}
    with pytest.raises(TaskError, match=says.replace("(", r"\(").replace(")", r"\)")):
        task_from_json(obj)


@pytest.mark.parametrize(
    ("obj", "says"),
    [
        pytest.param({"id": "q", "prompt": "p", "answer": "1", "answer_mode": "fuzzy"}, "answer_mode must be one of", id="mode"),
        pytest.param({"id": "q", "prompt": "p", "answer": "many", "answer_mode": "numeric"}, "is not a number", id="numeric"),
        pytest.param({"id": "s", "prompt": "p", "sql_setup": "CREATE TABLE t (x);"}, "missing field 'sql_gold'", id="sql"),
        pytest.param({"id": "s", "prompt": "p", "sql_setup": "NOT SQL", "sql_gold": "SELECT 1"}, "setup script failed", id="setup"),
        pytest.param({"prompt": "p", "answer": "1"}, r"task \(no id\): missing field 'id'", id="no-id"),
        pytest.param(["not", "an", "object"], "a task is a JSON object, not list", id="not-an-object"),
    ],
)
def test_malformed_oracles_are_refused_at_load_time(obj, says):
    with pytest.raises(TaskError, match=says):
        task_from_json(obj)


def test_tasks_built_in_memory_need_no_file():
    tasks = StaticTaskSet([task_from_json(ADD), task_from_json({**ADD, "id": "add-2", "difficulty": 1})])
    env = gym.make("boxgym/Code-v0", tasks=tasks, provider=FakeProvider())
    try:
        env.reset(options={"task_id": "add"})
        for message in reference_messages(tasks.get("add")):
            _, reward, terminated, _, info = env.step(message)
        assert (reward, terminated) == (1.0, True), info["verdict"]
    finally:
        env.close()
