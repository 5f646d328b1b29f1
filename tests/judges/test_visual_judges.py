"""The visual judges: an episode's submitted answer against the task's truth, composed like any judge."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boxgym.envs.tasks import Task
from boxgym.errors import JudgeError, TaskError
from boxgym.judges import (
    CountingJudge,
    ExpectedAnswer,
    ExpectedBoxes,
    ExpectedCount,
    ExpectedPoints,
    ExpectedPolygon,
    ExpectedText,
    FinishedEpisode,
    Gate,
    GroundingJudge,
    OcrJudge,
    PointingJudge,
    SegmentationJudge,
    Verdict,
    WeightedSum,
)

BOXES = ExpectedBoxes(((10, 20, 110, 120), (200, 200, 300, 260)), size=(640, 480))
POINTS = ExpectedPoints(((60, 70), (250, 230)), size=(640, 480))
SQUARE = ExpectedPolygon(((10, 10), (50, 10), (50, 50), (10, 50)), size=(100, 100))
TEXT = ExpectedText("Hello, world")
COUNT = ExpectedCount(7)


def episode(oracle, submission):
    task = Task("vision/t1", "look at image.png", oracle)
    return FinishedEpisode(task, sandbox=None, submitted=submission is not None, submission=submission)


GARBAGE = "I am not sure, sorry; maybe a few or many."
JUDGES = [  # judge, truth, a perfect answer, a malformed one
    pytest.param(GroundingJudge(), BOXES, "[[200, 200, 300, 260], [10, 20, 110, 120]]", GARBAGE, id="grounding"),
    pytest.param(PointingJudge(), POINTS, '[{"point_2d": [250, 230]}, {"point_2d": [60, 70]}]', GARBAGE, id="pointing"),
    pytest.param(SegmentationJudge(), SQUARE, "[[10, 10], [50, 10], [50, 50], [10, 50]]", GARBAGE, id="segmentation"),
    # any text is a reading; only an answer too long to read is malformed
    pytest.param(OcrJudge(), TEXT, "The text reads: <answer>Hello,  world</answer>", "x" * 200_000, id="ocr"),
    pytest.param(CountingJudge(), COUNT, "There are 7 circles.", GARBAGE, id="counting"),
]


@pytest.mark.parametrize(("judge", "truth", "answer", "malformed"), JUDGES)
async def test_a_perfect_answer_scores_one_and_passes(judge, truth, answer, malformed):
    verdict = await judge.score(episode(truth, answer))
    assert verdict.reward == pytest.approx(1.0) and verdict.passed, verdict


@pytest.mark.parametrize(("judge", "truth", "answer", "malformed"), JUDGES)
async def test_a_malformed_answer_scores_zero_with_the_reason(judge, truth, answer, malformed):
    verdict = await judge.score(episode(truth, malformed))
    assert verdict.reward == 0.0 and not verdict.passed
    assert verdict.messages and verdict.messages[0].startswith("malformed answer: ")


@pytest.mark.parametrize(("judge", "truth", "answer", "malformed"), JUDGES)
async def test_no_answer_scores_zero(judge, truth, answer, malformed):
    verdict = await judge.score(episode(truth, None))
    assert verdict.reward == 0.0 and "no answer" in verdict.messages[0]


@pytest.mark.parametrize(("judge", "truth", "answer", "malformed"), JUDGES)
async def test_a_task_with_another_oracle_is_a_judge_error(judge, truth, answer, malformed):
    with pytest.raises(JudgeError, match="oracle"):
        await judge.score(episode(ExpectedAnswer("7"), answer))


@given(st.text(max_size=200))
async def test_any_answer_text_scores_in_unit_interval_without_raising(answer):
    for judge, truth in (
        (GroundingJudge(), BOXES),
        (PointingJudge(), POINTS),
        (SegmentationJudge(), SQUARE),
        (OcrJudge(), TEXT),
        (CountingJudge(), COUNT),
    ):
        verdict = await judge.score(episode(truth, answer))
        assert 0.0 <= verdict.reward <= 1.0


async def test_partial_answers_get_partial_rewards():
    one_box = await GroundingJudge().score(episode(BOXES, "[[10, 20, 110, 120]]"))
    assert one_box.reward == pytest.approx(2 / 3) and one_box.passed  # 2 * 1 / (1 + 2) >= 0.5
    assert one_box.parts == {"precision": 1.0, "recall": 0.5}
    off_by_one = await CountingJudge().score(episode(COUNT, "8"))
    assert off_by_one.reward == pytest.approx(2 / 3) and not off_by_one.passed
    typo = await OcrJudge().score(episode(TEXT, "Hello, wor1d"))
    assert typo.reward == pytest.approx(1 - 1 / 12) and not typo.passed
    half = await SegmentationJudge().score(episode(SQUARE, "[[10, 10], [30, 10], [30, 50], [10, 50]]"))
    assert half.reward == pytest.approx(0.5) and half.passed


async def test_a_degenerate_polygon_scores_zero_and_says_so():
    verdict = await SegmentationJudge().score(episode(SQUARE, "[[10, 10], [20, 20], [30, 30]]"))
    assert verdict.reward == 0.0 and "covers no pixel" in verdict.messages[0]


async def test_a_self_intersecting_polygon_gets_its_even_odd_area():
    bow_tie = "[[10, 10], [50, 50], [50, 10], [10, 50]]"  # two of the square's four triangles
    verdict = await SegmentationJudge().score(episode(SQUARE, bow_tie))
    assert verdict.reward == pytest.approx(0.5, abs=0.03)


async def test_normalised_coordinates_are_read_in_the_images_frame():
    boxes = ExpectedBoxes(((64, 96, 192, 192),), size=(640, 480), frame="norm1000")
    assert (await GroundingJudge().score(episode(boxes, "<box>(100,200),(300,400)</box>"))).reward == pytest.approx(1.0)
    pixels = ExpectedBoxes(((64, 96, 192, 192),), size=(640, 480), frame="pixels")
    assert (await GroundingJudge().score(episode(pixels, "[100, 200, 300, 400]"))).reward < 0.5


class Recording:
    """A judge that answers a fixed reward and counts its calls."""

    def __init__(self, reward):
        self.reward, self.calls = reward, 0

    async def score(self, ep):
        self.calls += 1
        return Verdict(self.reward)


async def test_visual_judges_compose_with_gate_and_weighted_sum():
    then = Recording(0.25)
    right = await Gate(CountingJudge(), then).score(episode(COUNT, "7"))
    assert right.reward == 0.25 and right.parts == {"gate": 1.0, "then": 0.25} and then.calls == 1
    wrong = await Gate(CountingJudge(), then).score(episode(COUNT, "8"))
    assert wrong.reward == 0.0 and wrong.messages[0] == "gate failed" and then.calls == 1
    mixed = WeightedSum((("boxes", GroundingJudge(), 3.0), ("style", Recording(1.0), 1.0)))
    verdict = await mixed.score(episode(BOXES, "[[10, 20, 110, 120]]"))
    assert verdict.parts == pytest.approx({"boxes": 2 / 3, "style": 1.0})
    assert verdict.reward == pytest.approx((3 * 2 / 3 + 1) / 4)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda: ExpectedBoxes(((10, 10, 5, 20),), (100, 100)), "x1 < x2", id="inverted-box"),
        pytest.param(lambda: ExpectedBoxes(((1, 2, 3),), (100, 100)), "4 finite numbers", id="short-box"),
        pytest.param(lambda: ExpectedBoxes(((1, 2, 3, 4),), (0, 100)), "positive", id="empty-image"),
        pytest.param(lambda: ExpectedPoints(((1, 2),), (100, 100), sigma=0), "sigma", id="zero-sigma"),
        pytest.param(lambda: ExpectedPolygon(((1, 1), (5, 5), (9, 9)), (10, 10)), "covers no pixel", id="flat-polygon"),
        pytest.param(lambda: ExpectedCount(-1), "whole number", id="negative-count"),
        pytest.param(lambda: ExpectedBoxes(((1, 2, 3, 4),), (100, 100), frame="inches"), "frame", id="frame"),
    ],
)
def test_malformed_truth_is_a_task_error(make, message):
    with pytest.raises(TaskError, match=message):
        make()


def test_truth_from_json_lists_becomes_tuples():
    truth = ExpectedBoxes([[1, 2, 3, 4]], [640, 480])
    assert truth.boxes == ((1.0, 2.0, 3.0, 4.0),) and truth.size == (640, 480)
    assert hash(truth) == hash(ExpectedBoxes(((1, 2, 3, 4),), (640, 480)))
