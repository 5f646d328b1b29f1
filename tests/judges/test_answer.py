"""Answer judges and judge combinators."""

from __future__ import annotations

import types

import pytest

from boxgym.errors import JudgeError
from boxgym.judges import AnswerJudge, Check, FinishedEpisode, ExpectedAnswer, Gate, Verdict, WeightedSum, answers_match


@pytest.mark.parametrize(
    ("expected", "submitted", "ok"),
    [
        pytest.param(ExpectedAnswer("Paris", "exact"), " Paris\n", True, id="exact-strips"),
        pytest.param(ExpectedAnswer("Paris", "exact"), "paris", False, id="exact-case"),
        pytest.param(ExpectedAnswer("New York"), "  new   YORK. ", True, id="normalised"),
        pytest.param(ExpectedAnswer("42"), "\\boxed{42}", True, id="boxed"),
        pytest.param(ExpectedAnswer("yes"), '"Yes!"', True, id="quotes"),
        pytest.param(ExpectedAnswer("New York"), "York", False, id="normalised-wrong"),
        pytest.param(ExpectedAnswer("1000", "numeric"), "1,000", True, id="thousands"),
        pytest.param(ExpectedAnswer("0.75", "numeric"), "3/4", True, id="fraction"),
        pytest.param(ExpectedAnswer("0.5", "numeric"), "50%", True, id="percent"),
        pytest.param(ExpectedAnswer("3.14159", "numeric", rel_tol=1e-3), "3.1416", True, id="tolerance"),
        pytest.param(ExpectedAnswer("3.14159", "numeric"), "3.1416", False, id="outside-tolerance"),
        pytest.param(ExpectedAnswer("7", "numeric"), "seven", False, id="not-a-number"),
        pytest.param(ExpectedAnswer("7", "numeric"), "nan", False, id="nan"),
    ],
)
def test_modes(expected, submitted, ok):
    assert answers_match(expected, submitted) is ok


def episode(oracle, submission=None):
    task = types.SimpleNamespace(id="t", oracle=oracle)
    return FinishedEpisode(task, sandbox=None, submitted=submission is not None, submission=submission)


async def test_answer_judge_scores_the_submission():
    assert (await AnswerJudge().score(episode(ExpectedAnswer("4"), "4"))).reward == 1.0
    assert (await AnswerJudge().score(episode(ExpectedAnswer("4"), "5"))).reward == 0.0
    nothing = await AnswerJudge().score(episode(ExpectedAnswer("4")))
    assert nothing.reward == 0.0 and "no answer" in nothing.messages[0]


async def test_a_non_numeric_expected_answer_is_a_judge_error():
    with pytest.raises(JudgeError):
        await AnswerJudge().score(episode(ExpectedAnswer("four", "numeric"), "4"))


class Fixed:
    def __init__(self, reward, passed):
        self.reward, self.passed, self.calls = reward, passed, 0

    async def score(self, ep):
        self.calls += 1
        return Verdict(self.reward, self.passed, (Check("c", self.passed),))


async def test_weighted_sum():
    score = await WeightedSum((("tests", Fixed(1.0, True), 3.0), ("style", Fixed(0.0, False), 1.0))).score(None)
    assert score.reward == 0.75 and not score.passed
    assert score.parts == {"tests": 1.0, "style": 0.0} and len(score.checks) == 2


async def test_gate_blocks_and_skips_the_second_judge():
    then = Fixed(1.0, True)
    blocked = await Gate(Fixed(0.0, False), then).score(None)
    assert blocked.reward == 0.0 and then.calls == 0
    opened = await Gate(Fixed(1.0, True), then).score(None)
    assert opened.reward == 1.0 and opened.passed and then.calls == 1
