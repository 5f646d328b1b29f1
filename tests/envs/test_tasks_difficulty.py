"""Task records, task sets (JSONL and procedural) and the adaptive-difficulty controller."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from boxgym.envs import AdaptiveDifficulty, DifficultyState, FixedDifficulty, ProceduralTaskSet, StaticTaskSet, Task
from boxgym.envs.suites import code, shell, sql
from boxgym.errors import TaskError
from boxgym.judges import ExpectedAnswer, HiddenTests

SUITES = [pytest.param(m.task_set(), id=m.__name__.rsplit(".", 1)[1]) for m in (code, shell, sql)]


@pytest.mark.parametrize("tasks", SUITES)
def test_procedural_tasks_are_reproducible_and_retrievable_by_id(tasks):
    for level in range(tasks.levels):
        a = tasks.sample(np.random.default_rng(5), level)
        b = tasks.sample(np.random.default_rng(5), level)
        assert a == b and a.difficulty == level
        assert tasks.get(a.id) == a
        assert a.reference and a.reference[-1].name == "submit"
    assert tasks.sample(np.random.default_rng(5), 0) != tasks.sample(np.random.default_rng(6), 0)


@pytest.mark.parametrize("bad", ["code/d1", "other/d0/s1", "code/x0/s1", "code/d0/sX"])
def test_procedural_get_rejects_foreign_ids(bad):
    with pytest.raises(TaskError):
        code.task_set().get(bad)


def test_procedural_rejects_levels_out_of_range():
    with pytest.raises(TaskError):
        code.task_set().sample(np.random.default_rng(0), 4)


def test_a_generator_that_mislabels_its_tasks_is_caught():
    bad = ProceduralTaskSet("x", lambda seed, level: Task("wrong", "p", ExpectedAnswer("1")), 1)
    with pytest.raises(TaskError, match="want 'x/d0/s"):
        bad.sample(np.random.default_rng(0), 0)


def test_task_files_must_stay_in_the_work_directory():
    for path in ("/etc/passwd", "../up.txt", "a/../../b"):
        with pytest.raises(TaskError):
            Task("t", "p", ExpectedAnswer("1"), files={path: ""})


def write_jsonl(tmp_path, rows):
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    return path


def test_jsonl_task_set(tmp_path):
    rows = [
        {
            "id": "add",
            "prompt": "Write add(a, b) in solution.py.",
            "files": {"README.md": "hi", "blob.bin": {"base64": base64.b64encode(b"\x00\x01").decode()}},
            "tests": "import unittest\n",
            "reference": [{"name": "submit"}],
            "difficulty": 2,
            "metadata": {"source": "me"},
        },
        {"id": "q", "prompt": "6 * 7?", "answer": 42, "answer_mode": "numeric"},
    ]
    tasks = StaticTaskSet.from_jsonl(write_jsonl(tmp_path, rows))
    assert len(tasks) == 2 and tasks.levels == 3
    add = tasks.get("add")
    assert add.oracle == HiddenTests("import unittest\n", module="solution")
    assert add.files == {"README.md": "hi", "blob.bin": b"\x00\x01"}
    assert [c.name for c in add.reference] == ["submit"] and add.metadata == {"source": "me"}
    assert tasks.get("q").oracle == ExpectedAnswer("42", mode="numeric")
    # Level 1 has no task: the nearest level that has one answers.
    assert tasks.sample(np.random.default_rng(0), 1).id == "q"
    assert tasks.sample(np.random.default_rng(0), 2).id == "add"


@pytest.mark.parametrize(
    ("row", "says"),
    [
        pytest.param({"id": "a", "prompt": "p"}, "needs exactly one oracle", id="no-oracle"),
        pytest.param({"id": "a", "prompt": "p", "tests": "", "answer": "1"}, "has tests, answer", id="two-oracles"),
        pytest.param({"id": "a", "answer": "1"}, "tasks.jsonl:1", id="no-prompt"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, row, says):
    with pytest.raises(TaskError, match=says):
        StaticTaskSet.from_jsonl(write_jsonl(tmp_path, [row]))


def test_duplicate_ids_are_refused():
    with pytest.raises(TaskError, match="unique"):
        StaticTaskSet([Task("a", "p", ExpectedAnswer("1")), Task("a", "q", ExpectedAnswer("2"))])


def drive(curriculum, level, outcomes):
    for solved in outcomes:
        curriculum.update(level, solved)


def test_curriculum_moves_up_when_the_top_level_is_easy_and_keeps_its_width():
    c = AdaptiveDifficulty(4, width=2, min_samples=4, promote_at=0.75)
    assert c.state().low == c.state().high == 0
    drive(c, 0, [True, True, True, False])
    assert (c.state().low, c.state().high) == (0, 1)
    drive(c, 1, [True] * 4)
    assert (c.state().low, c.state().high) == (1, 2)
    levels = {c.sample(np.random.default_rng(s)) for s in range(50)}
    assert levels == {1, 2}


def test_curriculum_waits_for_evidence_and_stops_at_the_top():
    c = AdaptiveDifficulty(2, min_samples=4)
    drive(c, 0, [True] * 3)
    assert c.state().high == 0
    drive(c, 0, [True])
    drive(c, 1, [True] * 10)
    assert c.state().high == 1


def test_curriculum_moves_down_when_the_bottom_level_is_too_hard():
    c = AdaptiveDifficulty(4, width=2, min_samples=4, start=2)
    drive(c, 2, [False] * 4)
    assert (c.state().low, c.state().high) == (1, 1)
    assert 2 not in c.state().history  # the evidence that caused the move is spent


def test_curriculum_state_round_trips_through_json():
    c = AdaptiveDifficulty(4, min_samples=2)
    drive(c, 0, [True, True, False])
    state = DifficultyState.from_json(json.loads(json.dumps(c.state().to_json())))
    restored = AdaptiveDifficulty(4, min_samples=2)
    restored.load(state)
    assert restored.state() == c.state()
    with pytest.raises(ValueError):
        AdaptiveDifficulty(2).load(DifficultyState(0, 3))


def test_fixed_difficulty():
    assert FixedDifficulty(3).sample(np.random.default_rng(0)) == 3


def test_jsonl_sql_tasks_get_their_database_built(tmp_path):
    import sqlite3

    row = {
        "id": "s",
        "prompt": "p",
        "sql_setup": "CREATE TABLE t (x); INSERT INTO t VALUES (1);",
        "sql_gold": "SELECT x FROM t",
    }
    task = StaticTaskSet.from_jsonl(write_jsonl(tmp_path, [row])).get("s")
    conn = sqlite3.connect(":memory:")
    conn.deserialize(task.files["data.db"])
    assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
