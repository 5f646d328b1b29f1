"""Task rows for the task-file check: one good task and one of each way a task can be broken."""

from __future__ import annotations

import json
from pathlib import Path

TESTS = (
    "import unittest\nfrom solution import *\n\n\nclass T(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n"
    "    def test_negative(self):\n        self.assertEqual(add(-2, 3), 1)\n"
)


def writes(code: str) -> list[dict]:
    return [{"name": "write_file", "arguments": {"path": "solution.py", "content": code}}, {"name": "submit"}]


GOOD = {"id": "good", "prompt": "Write add(a, b) in solution.py.", "tests": TESTS,
        "reference": writes("def add(a, b):\n    return a + b\n")}  # fmt: skip
WRONG_REFERENCE = {**GOOD, "id": "wrong-reference", "reference": writes("def add(a, b):\n    return a * b\n")}
PASSES_EMPTY = {**GOOD, "id": "passes-empty", "reference": [{"name": "submit"}],
                "tests": "import unittest\n\n\nclass T(unittest.TestCase):\n    def test_nothing(self):\n        pass\n"}  # fmt: skip
NO_REFERENCE = {key: value for key, value in {**GOOD, "id": "no-reference"}.items() if key != "reference"}
BROKEN_TESTS = {**GOOD, "id": "broken-tests", "tests": TESTS.replace("import unittest\n", "import unittest\nimport numpy\n")}
TESTS_FAIL = "TaskError: the hidden tests of task broken-tests fail on their own: ModuleNotFoundError: No module named 'numpy'"

#: (row, status, problems)
BROKEN = [
    (GOOD, "passed", []),
    (WRONG_REFERENCE, "failed", ["the reference solution scored 0 (want 1)"]),
    (PASSES_EMPTY, "failed", ["the empty solution scored 1 (want 0)"]),
    (NO_REFERENCE, "failed", ["the task has no reference solution"]),
    (BROKEN_TESTS, "failed", [f"the reference and empty runs failed: {TESTS_FAIL}"]),
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path
