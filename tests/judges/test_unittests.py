"""Hidden-test judging on the fake sandbox: the real solution passes, every cheat scores 0.

The same cheats run on real Docker in ``test_judges_docker.py``, together with
the one that needs isolation (a background process).
"""

from __future__ import annotations

import dataclasses

import pytest

from boxgym.errors import JudgeError, TaskError
from boxgym.judges import FinishedEpisode, HiddenTests, UnitTestJudge
from boxgym.sandboxes import FakeSandbox

from .cheats import CHEATS, SOLUTION, TASK


@pytest.fixture
async def sandbox():
    async with FakeSandbox() as sb:
        yield sb


async def judge(sandbox, files, task=TASK, **judge_kwargs):
    for path, content in files.items():
        await sandbox.write_file(path, content)
    return await UnitTestJudge(**judge_kwargs).score(FinishedEpisode(task, sandbox, submitted=True))


async def test_the_real_solution_scores_one(sandbox):
    score = await judge(sandbox, {"solution.py": SOLUTION})
    assert score.reward == 1.0 and score.passed
    assert len(score.checks) == 8 and all(c.passed for c in score.checks)


async def test_doing_nothing_scores_zero(sandbox):
    score = await judge(sandbox, {})
    assert score.reward == 0.0 and not score.passed
    assert "could not be loaded" in score.messages[0]


@pytest.mark.parametrize("cheat", [pytest.param(c, id=c.name) for c in CHEATS if not c.isolated_only])
async def test_cheats_score_zero(sandbox, cheat):
    score = await judge(sandbox, cheat.files)
    assert score.reward == 0.0 and not score.passed, score


async def test_partial_credit_counts_passing_tests(sandbox):
    broken = SOLUTION.replace("return out", "return out if len(out) != 1 else []")
    full = await judge(sandbox, {"solution.py": broken})
    partial = await UnitTestJudge(partial=True).score(FinishedEpisode(TASK, sandbox))
    assert full.reward == 0.0
    assert 0.0 < partial.reward < 1.0 and not partial.passed


async def test_a_solution_that_hangs_is_stopped_and_scores_zero(sandbox):
    task = dataclasses.replace(TASK, oracle=dataclasses.replace(TASK.oracle, call_timeout=1.0))
    score = await judge(sandbox, {"solution.py": "import time\ntime.sleep(60)\n"}, task=task)
    assert score.reward == 0.0 and "timed out" in score.messages[0]


async def test_values_cross_as_plain_builtins(sandbox):
    tests = (
        "import unittest\n"
        "from solution import f, CONST\n"
        "class T(unittest.TestCase):\n"
        "    def test_types(self):\n"
        "        got = f([1, 2], key=(3, 'x'))\n"
        "        want = {'list': [1, 2], 'tuple': (3, 'x'), 'set': {1}, 'bytes': b'\\x00', 'nan': got['nan']}\n"
        "        self.assertEqual(got, want)\n"
        "        self.assertIs(type(got['tuple']), tuple)\n"
        "        self.assertNotEqual(got['nan'], got['nan'])\n"
        "    def test_constant(self):\n"
        "        self.assertEqual(CONST, frozenset({1}))\n"
        "    def test_exceptions_keep_builtin_types(self):\n"
        "        with self.assertRaises(ValueError):\n"
        "            f(None)\n"
    )
    solution = (
        "CONST = frozenset({1})\n"
        "def f(items, key=None):\n"
        "    if items is None:\n"
        "        raise ValueError('no items')\n"
        "    return {'list': items, 'tuple': key, 'set': {1}, 'bytes': b'\\x00', 'nan': float('nan')}\n"
    )
    task = dataclasses.replace(TASK, oracle=HiddenTests(tests))
    score = await judge(sandbox, {"solution.py": solution}, task=task)
    assert score.passed, score


async def test_broken_hidden_tests_are_a_task_error_not_a_zero(sandbox):
    task = dataclasses.replace(TASK, oracle=HiddenTests("import unittest\nfrom nowhere_at_all import x\n"))
    with pytest.raises(TaskError, match="(?s)fail on their own:.*ModuleNotFoundError: No module named 'nowhere_at_all'"):
        await judge(sandbox, {"solution.py": SOLUTION}, task=task)


async def test_a_task_without_hidden_tests_is_a_judge_error(sandbox):
    from boxgym.judges import ExpectedAnswer

    with pytest.raises(JudgeError):
        await judge(sandbox, {}, task=dataclasses.replace(TASK, oracle=ExpectedAnswer("1")))
