"""The hidden-test runner as a task author meets it, on the fake sandbox.

Star imports bind the solution's names (but never over builtins or the tests' own
names), each test's outcome is its own (subtests, class fixtures), and failure
details show the tests' and the solution's frames only.
"""

from __future__ import annotations

import dataclasses

import pytest

from boxgym.judges import FinishedEpisode, HiddenTests, UnitTestJudge, Verdict
from boxgym.sandboxes import FakeSandbox

from .user_tasks import DEEP_ERROR, HARNESS_MARKS, STAR_RIGHT, STAR_TASK, STAR_TESTS, STAR_WRONG


async def judge(tests: str, solution: str | None) -> Verdict:
    task = dataclasses.replace(STAR_TASK, oracle=HiddenTests(tests))
    async with FakeSandbox() as sandbox:
        if solution is not None:
            await sandbox.write_file("solution.py", solution)
        return await UnitTestJudge().score(FinishedEpisode(task, sandbox, submitted=True))


def details(verdict: Verdict) -> str:
    return "\n".join([*verdict.messages, *(check.detail for check in verdict.checks)])


def hidden_tests(body: str, imports: str = "from solution import *") -> str:
    return f"import unittest\n{imports}\n\n\nclass T(unittest.TestCase):\n{body}"


@pytest.mark.parametrize(
    ("solution", "reward"),
    [
        pytest.param(STAR_RIGHT, 1.0, id="right"),
        pytest.param(STAR_WRONG, 0.0, id="wrong"),
        pytest.param(None, 0.0, id="missing"),
    ],
)
async def test_star_import_binds_the_solutions_names(solution, reward):
    verdict = await judge(STAR_TESTS, solution)
    assert (verdict.reward, verdict.passed) == (reward, reward == 1.0), details(verdict)
    if solution == STAR_WRONG:
        assert [c.detail.splitlines()[-1] for c in verdict.checks] == ["AssertionError: -3 != -1", "AssertionError: -1 != 5"]



async def test_star_import_binds_functions_and_plain_values_and_skips_the_rest():
    tests = hidden_tests(
        "    def test_names(self):\n"
        "        self.assertEqual((add(1, 2), LIMITS), (3, (0, 10)))\n"
        "        self.assertNotIn('re', globals())  # a module\n"
        "        self.assertNotIn('PATTERN', globals())  # a value that cannot cross\n"
        "        self.assertNotIn('_private', globals())\n"
    )
    solution = "import re\nPATTERN = re.compile('a+')\nLIMITS = (0, 10)\n_private = 1\n" + STAR_RIGHT
    verdict = await judge(tests, solution)
    assert verdict.passed, details(verdict)


async def test_star_import_follows_the_solutions_all():
    tests = hidden_tests("    def test_only_all(self):\n        self.assertNotIn('sub', globals())\n        self.assertEqual(add(1, 2), 3)\n")
    verdict = await judge(tests, "__all__ = ['add']\n" + STAR_RIGHT + "def sub(a, b):\n    return a - b\n")
    assert verdict.passed, details(verdict)


SHADOWED = (
    "import unittest\n"
    "def expected():\n    return [1, 2, 3]\n"
    "from solution import *\n\n\n"
    "class T(unittest.TestCase):\n"
    "    def test_sorted(self):\n"
    "        self.assertEqual(sorted(order([3, 1, 2])), expected())\n"
)


@pytest.mark.parametrize(
    "cheat",
    [
        pytest.param("def sorted(items):\n    return [1, 2, 3]\n", id="a-builtin"),
        pytest.param("def expected():\n    return []\n", id="the-tests-helper"),
        pytest.param("unittest = None\n", id="a-module-the-tests-imported"),
    ],
)
async def test_star_import_never_rebinds_builtins_or_the_tests_own_names(cheat):
    # Each cheat would pass (or break the harness) if its name were rebound.
    assert (await judge(SHADOWED, "def order(items):\n    return list(items)\n")).passed
    verdict = await judge(SHADOWED, "def order(items):\n    return []\n" + cheat)
    assert verdict.reward == 0.0 and "AssertionError: Lists differ: [] != [1, 2, 3]" in verdict.checks[0].detail, verdict


async def test_a_failing_subtest_fails_its_test():
    tests = hidden_tests(
        "    def test_many(self):\n"
        "        for a in range(3):\n"
        "            with self.subTest(a=a):\n"
        "                self.assertEqual(add(a, 1), a + 1)\n",
        imports="from solution import add",
    )
    assert (await judge(tests, STAR_RIGHT)).passed
    verdict = await judge(tests, "def add(a, b):\n    return 1\n")
    assert verdict.reward == 0.0 and not verdict.checks[0].passed
    assert verdict.checks[0].detail.startswith("fail: subtest (a=1):\nTraceback"), verdict.checks[0].detail


async def test_a_skipped_subtest_counts_as_its_test_skipped():
    tests = hidden_tests(
        "    def test_many(self):\n"
        "        for a in range(2):\n"
        "            with self.subTest(a=a):\n"
        "                if a:\n                    self.skipTest('not today')\n"
        "                self.assertEqual(add(a, 1), a + 1)\n",
        imports="from solution import add",
    )
    verdict = await judge(tests, STAR_RIGHT)
    assert verdict.reward == 0.0 and [(c.passed, c.detail) for c in verdict.checks] == [(False, "skip: not today")]


@pytest.mark.parametrize("fixture", ["raise RuntimeError('no')", "raise unittest.SkipTest('later')", "add('x', 1)"])
async def test_tests_a_failing_class_fixture_kept_from_running_fail(fixture):
    tests = hidden_tests(
        "    @classmethod\n"
        "    def setUpClass(cls):\n"
        f"        cls.sum = add(1, 2)\n        {fixture}\n"
        "    def test_sum(self):\n"
        "        self.assertEqual(self.sum, 3)\n",
        imports="from solution import add",
    )
    verdict = await judge(tests, "def add(a, b):\n    if a == 'x':\n        raise ValueError(a)\n    return a + b\n")
    assert verdict.reward == 0.0 and not verdict.passed
    assert [(c.name, c.passed) for c in verdict.checks] == [("hidden_tests.T.test_sum", False), ("setUpClass (hidden_tests.T)", False)]
    assert "did not run (setUpClass (hidden_tests.T) failed)" in verdict.checks[0].detail


async def test_failures_show_only_the_tests_and_the_solutions_frames():
    tests = hidden_tests(
        "    def test_error(self):\n        add(1, 2)\n"
        "    def test_failure(self):\n        self.assertEqual(add.__name__, 'sub')\n"
        "    def test_bad_argument(self):\n        add(object(), 1)\n"
        "    def test_chained(self):\n"
        "        try:\n            add(1, 2)\n        except KeyError as exc:\n            raise ValueError('wrapped') from exc\n",
        imports="from solution import add",
    )
    verdict = await judge(tests, DEEP_ERROR)
    by_test = {check.name.rsplit(".", 1)[1]: check.detail for check in verdict.checks}
    assert not [mark for mark in HARNESS_MARKS if mark in details(verdict)], details(verdict)
    assert by_test["test_error"].splitlines()[1:] == [
        '  File "<hidden tests>", line 7, in test_error',
        f'  File "{by_test["test_error"].split(chr(34))[3]}", line 6, in add',
        "    return helper(a)",
        f'  File "{by_test["test_error"].split(chr(34))[3]}", line 2, in helper',
        "    raise KeyError(x)",
        "KeyError: '1'",
    ]
    assert by_test["test_error"].split('"')[3].endswith("/solution.py")
    assert by_test["test_failure"].splitlines()[1:] == [
        '  File "<hidden tests>", line 9, in test_failure',
        "AssertionError: 'add' != 'sub'",
        "- add",
        "+ sub",
    ]
    assert by_test["test_bad_argument"].splitlines()[-1].startswith("TypeError: cannot pass a value of type object")
    assert "in helper" in by_test["test_chained"] and by_test["test_chained"].endswith("ValueError: wrapped")


async def test_a_solution_that_fails_to_load_shows_where():
    verdict = await judge(STAR_TESTS, "LIMIT = 10\nvalue = LIMIT / 0\n")
    assert verdict.reward == 0.0
    message = verdict.messages[0]
    assert message.startswith("the solution could not be loaded:\nTraceback"), message
    assert message.splitlines()[2:] == [
        '  File "<hidden tests>", line 2, in <module>',
        message.splitlines()[3],
        "    value = LIMIT / 0",
        "ZeroDivisionError: division by zero",
    ]
    assert message.splitlines()[3].endswith('/solution.py", line 2, in <module>')
