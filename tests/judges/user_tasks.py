"""Hidden tests written the way users write them, shared by the fake and the Docker judge tests."""

from __future__ import annotations

from boxgym.envs import Task
from boxgym.judges import HiddenTests

STAR_TESTS = """\
import unittest
from solution import *


class Add(unittest.TestCase):
    def test_small(self):
        self.assertEqual(add(2, 3), 5)

    def test_negative(self):
        self.assertEqual(add(-2, 1), -1)
"""

#: A task whose hidden tests take the solution's names with ``from solution import *``.
STAR_TASK = Task("star", "Write add(a, b) in solution.py.", HiddenTests(STAR_TESTS))
STAR_RIGHT = "def add(a, b):\n    return a + b\n"
STAR_WRONG = "def add(a, b):\n    return a - b\n"

#: A solution whose error is raised two frames deep, so a failure has solution frames to show.
DEEP_ERROR = "def helper(x):\n    raise KeyError(x)\n\n\ndef add(a, b):\n    return helper(a)\n"

#: Words that only the harness's or unittest's own frames would put in a failure's detail.
HARNESS_MARKS = ("unittest_runner", '"<string>"', "unittest/case.py", "importlib", "in request", "in call")
