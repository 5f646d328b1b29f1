"""Tasks and task sets.

A :class:`Task` is a frozen record: the prompt, the files placed in the
sandbox before the agent starts, the oracle a judge checks against (hidden
tests, an expected answer, a file-system state, a gold SQL query), a
reference solution written as tool calls, a difficulty level and free-form
metadata.

A :class:`TaskSet` hands out tasks: :class:`StaticTaskSet` from a JSONL file
a user writes, :class:`ProceduralTaskSet` from a generator
``(seed, difficulty) -> Task`` whose answers are right by construction. Both
are deterministic: the same seed and level give the same task, and a task's
id is enough to get it back (:meth:`TaskSet.get`).

JSONL format, one task per line (every field and oracle kind is described in
``docs/tasks.md``), with exactly one oracle: ``tests`` (unittest source
importing ``module``), ``answer`` (with ``answer_mode`` exact, normalised or
numeric) or ``sql_setup`` + ``sql_gold`` (+ ``sql_ordered``; ``data.db`` is
built from ``sql_setup`` unless given). Binary files are ``{"base64": ...}``.
:func:`task_from_json` reads one such object, from a file or built in memory,
and refuses what would fail only later (unknown fields, hidden tests that do
not compile, an answer mode that does not exist) with a :class:`TaskError`::

    {"id": "add-1", "prompt": "Write add(a, b) in solution.py.",
     "files": {"README.md": "..."},
     "tests": "import unittest\\nfrom solution import add\\n...", "module": "solution",
     "reference": [{"name": "write_file", "arguments": {"path": "solution.py", "content": "..."}},
                   {"name": "submit", "arguments": {}}],
     "difficulty": 0, "metadata": {"source": "mine"}}
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import TaskError
from ..judges.answer import ExpectedAnswer, parse_number
from ..judges.sql import SqlOracle
from ..judges.state import FileState
from ..judges.unittests import HiddenTests
from ..toolsets.calls import ToolCall

__all__ = [
    "Oracle",
    "Task",
    "TaskSet",
    "StaticTaskSet",
    "ProceduralTaskSet",
    "Generator",
    "reference_messages",
    "task_from_json",
]

Oracle = HiddenTests | ExpectedAnswer | FileState | SqlOracle


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    prompt: str
    oracle: Oracle
    files: Mapping[str, str | bytes] = field(default_factory=dict)  # path (relative) -> content
    reference: tuple[ToolCall, ...] = ()  # a solution, as the tool calls that carry it out
    difficulty: int = 0
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # Files (PNG bytes in ``files``) the policy also sees, as image parts after the prompt.
    images: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for path in self.files:
            if os.path.isabs(path) or ".." in Path(path).parts:
                raise TaskError(f"task {self.id}: file path {path!r} must be relative and stay in the work directory")
        for path in self.images:
            if not isinstance(self.files.get(path), bytes):
                raise TaskError(f"task {self.id}: the image {path!r} must be one of its files, as bytes")


def reference_messages(task: Task) -> list[dict[str, Any]]:
    """The task's reference solution as OpenAI assistant messages, one tool call each.

    Fed to the environment one per step (or replayed by a scripted engine),
    they solve the task.
    """
    return [{"role": "assistant", "content": "", "tool_calls": [call.to_openai()]} for call in task.reference]


@runtime_checkable
class TaskSet(Protocol):
    @property
    def levels(self) -> int:
        """How many difficulty levels there are (levels are ``0 .. levels-1``)."""

    def sample(self, rng: np.random.Generator, level: int) -> Task:
        """A task of difficulty ``level``, drawn with ``rng`` only (so seeds reproduce it)."""

    def get(self, task_id: str) -> Task:
        """The task with this id; raise :class:`TaskError` if there is none."""


Generator = Callable[[int, int], Task]  # (seed, difficulty) -> Task


@dataclass(frozen=True, slots=True)
class ProceduralTaskSet:
    """Tasks generated on demand. Ids are ``<name>/d<level>/s<seed>``, so any id can be regenerated."""

    name: str
    generator: Generator
    levels: int

    def sample(self, rng: np.random.Generator, level: int) -> Task:
        if not 0 <= level < self.levels:
            raise TaskError(f"{self.name}: difficulty {level} is not in 0..{self.levels - 1}")
        return self.make(int(rng.integers(0, 2**31 - 1)), level)

    def make(self, seed: int, level: int) -> Task:
        task = self.generator(seed, level)
        expected = f"{self.name}/d{level}/s{seed}"
        if task.id != expected or task.difficulty != level:
            raise TaskError(
                f"{self.name}: the generator returned {task.id!r} (level {task.difficulty}), want {expected!r}"
            )
        return task

    def get(self, task_id: str) -> Task:
        try:
            name, level, seed = task_id.rsplit("/", 2)
            if name != self.name or level[0] != "d" or seed[0] != "s":
                raise ValueError
            return self.make(int(seed[1:]), int(level[1:]))
        except (ValueError, IndexError):
            raise TaskError(f"{task_id!r} is not an id of the task set {self.name!r}") from None


class StaticTaskSet:
    """A fixed list of tasks (from a JSONL file or in memory), grouped by difficulty."""

    def __init__(self, tasks: Sequence[Task]) -> None:
        if not tasks:
            raise TaskError("a task set needs at least one task")
        self._by_id = {task.id: task for task in tasks}
        if len(self._by_id) != len(tasks):
            raise TaskError("task ids must be unique")
        self._levels = max(task.difficulty for task in tasks) + 1
        self._by_level: list[list[Task]] = [[] for _ in range(self._levels)]
        for task in sorted(tasks, key=lambda t: t.id):
            self._by_level[task.difficulty].append(task)

    @property
    def levels(self) -> int:
        return self._levels

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Task]:
        """The tasks in the order they were given (a file's line order)."""
        return iter(self._by_id.values())

    def sample(self, rng: np.random.Generator, level: int) -> Task:
        # A level with no tasks falls back to the nearest one that has some, so a
        # curriculum over a sparse hand-written set still works.
        candidates = [lv for lv in range(self._levels) if self._by_level[lv]]
        nearest = min(candidates, key=lambda lv: (abs(lv - level), lv))
        pool = self._by_level[nearest]
        return pool[int(rng.integers(0, len(pool)))]

    def get(self, task_id: str) -> Task:
        try:
            return self._by_id[task_id]
        except KeyError:
            raise TaskError(f"no task with id {task_id!r}") from None

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike[str]) -> StaticTaskSet:
        """The tasks of a JSONL file, one per line; a malformed line is a :class:`TaskError` naming it."""
        tasks = []
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        tasks.append(task_from_json(json.loads(line)))
                    except (json.JSONDecodeError, TaskError) as exc:
                        raise TaskError(f"{path}:{number}: {exc}") from None
        return cls(tasks)


#: Every field a task object may have (docs/tasks.md describes each).
FIELDS = frozenset(
    {"id", "prompt", "files", "reference", "difficulty", "metadata"}
    | {"tests", "module", "answer", "answer_mode", "sql_setup", "sql_gold", "sql_ordered"}
)
_ORACLE_FIELDS = {"tests": "tests", "answer": "answer", "sql_setup": "sql_setup + sql_gold"}
_ANSWER_MODES = ("exact", "normalised", "numeric")


def task_from_json(obj: Mapping[str, Any]) -> Task:
    """A :class:`Task` from one JSONL line's object, or the same dict built in memory.

    Raises :class:`TaskError` saying which task and what is wrong.
    """
    if not isinstance(obj, Mapping):
        raise TaskError(f"a task is a JSON object, not {type(obj).__name__}")
    try:
        fields = _fields(obj)
    except TaskError as exc:
        raise TaskError(f"task {obj.get('id', '(no id)')}: {exc}") from None
    except KeyError as exc:
        raise TaskError(f"task {obj.get('id', '(no id)')}: missing field {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise TaskError(f"task {obj.get('id', '(no id)')}: {exc}") from None
    return Task(**fields)  # which checks the file paths


def _fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(obj) - FIELDS)
    if unknown:
        raise TaskError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(FIELDS))}")
    files: dict[str, str | bytes] = {}
    for path, content in dict(obj.get("files", {})).items():
        if not isinstance(content, Mapping):
            files[path] = str(content)
            continue
        try:
            files[path] = base64.b64decode(content["base64"], validate=True)
        except binascii.Error:
            raise TaskError(f"file {path}: the base64 content is not valid base64") from None
    reference = tuple(_call(i, call) for i, call in enumerate(obj.get("reference", [])))
    oracle = _oracle(obj)
    if isinstance(oracle, SqlOracle) and "data.db" not in files:
        files["data.db"] = sqlite_bytes(oracle.setup)
    difficulty = obj.get("difficulty", 0)
    if type(difficulty) is not int or difficulty < 0:
        raise TaskError(f"difficulty must be an integer >= 0, not {difficulty!r}")
    return {
        "id": str(obj["id"]),
        "prompt": str(obj["prompt"]),
        "oracle": oracle,
        "files": files,
        "reference": reference,
        "difficulty": difficulty,
        "metadata": dict(obj.get("metadata", {})),
    }


def _call(index: int, call: Mapping[str, Any]) -> ToolCall:
    if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
        raise TaskError(f"reference call {index} must be {{\"name\": ..., \"arguments\": {{...}}}}, not {call!r}")
    arguments = call.get("arguments", {})
    if not isinstance(arguments, Mapping):
        raise TaskError(f"reference call {index} ({call['name']}): arguments must be an object")
    return ToolCall(id=f"ref_{index}", name=call["name"], arguments=dict(arguments))


def _oracle(obj: Mapping[str, Any]) -> Oracle:
    given = [kind for field_name, kind in _ORACLE_FIELDS.items() if field_name in obj]
    if len(given) != 1:
        kinds = " or ".join(_ORACLE_FIELDS.values())
        raise TaskError(f"needs exactly one oracle ({kinds}), has {', '.join(given) or 'none'}")
    if "tests" in obj:
        module = obj.get("module", "solution")
        if not isinstance(module, str) or not module.isidentifier():
            raise TaskError(f"module must be a plain module name like 'solution', not {module!r}")
        try:
            compile(obj["tests"], "<hidden tests>", "exec")
        except SyntaxError as exc:
            raise TaskError(f"the hidden tests do not compile: {exc}") from None
        return HiddenTests(obj["tests"], module=module)
    if "answer" in obj:
        mode = obj.get("answer_mode", "normalised")
        if mode not in _ANSWER_MODES:
            raise TaskError(f"answer_mode must be one of {', '.join(_ANSWER_MODES)}, not {mode!r}")
        if mode == "numeric" and parse_number(str(obj["answer"])) is None:
            raise TaskError(f"the answer {obj['answer']!r} is not a number, as answer_mode numeric needs")
        return ExpectedAnswer(str(obj["answer"]), mode=mode)
    return SqlOracle(setup=obj["sql_setup"], gold=obj["sql_gold"], ordered=bool(obj.get("sql_ordered", False)))


def sqlite_bytes(setup: str) -> bytes:
    """The SQLite database file that the SQL script ``setup`` builds."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(setup)
        return conn.serialize()
    except sqlite3.Error as exc:
        raise TaskError(f"the database setup script failed: {exc}") from None
    finally:
        conn.close()
