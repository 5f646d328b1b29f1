"""Reading boxes, points, polygons, text and counts out of model answers, and refusing garbage."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boxgym.judges import Malformed
from boxgym.judges.visual_parse import (
    MAX_ANSWER_CHARS,
    MAX_ITEMS,
    parse_boxes,
    parse_count,
    parse_points,
    parse_polygon,
    parse_text,
)

SIZE = (640, 480)


def flat(items):
    return [c for item in items for c in item]


TWO = ((10.0, 20.0, 30.0, 40.0), (50.0, 60.0, 70.0, 80.0))


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param("[[10, 20, 30, 40], [50, 60, 70, 80]]", id="json-list"),
        pytest.param(
            'Here:\n```json\n[{"bbox_2d": [10, 20, 30, 40], "label": "a"}, {"bbox_2d": [50, 60, 70, 80]}]\n```',
            id="qwen-json-fence",
        ),
        pytest.param('{"boxes": [[10, 20, 30, 40], {"bbox": [50, 60, 70, 80]}]}', id="json-object"),
        pytest.param('[{"x1": 10, "y1": 20, "x2": 30, "y2": 40}, {"x1":50, "y1":60, "x2":70, "y2":80}]', id="named"),
        pytest.param("The boxes are (10,20),(30,40) and (50, 60), (70, 80).", id="pairs"),
        pytest.param("[[30, 40, 10, 20], [70, 80, 50, 60]]", id="corners-swapped"),
        pytest.param("<think>maybe [0, 0, 1, 1]?</think>[[10, 20, 30, 40], [50, 60, 70, 80]]", id="after-thinking"),
    ],
)
def test_boxes_in_pixels(answer):
    assert parse_boxes(answer, SIZE, "auto") == TWO


@pytest.mark.parametrize(
    ("answer", "frame"),
    [
        pytest.param("<box>(100,200),(300,400)</box>", "auto", id="box-tag-is-0-1000"),
        pytest.param("<|box_start|>(100,200),(300,400)<|box_end|>", "auto", id="qwen2-tokens"),
        pytest.param("<bbox>100 200 300 400</bbox>", "auto", id="bbox-tag-spaces"),
        pytest.param("[100, 200, 300, 400]", "norm1000", id="stated-0-1000"),
        pytest.param("[0.1, 0.2, 0.3, 0.4]", "auto", id="fractions-are-0-1"),
    ],
)
def test_boxes_in_normalised_frames(answer, frame):
    assert flat(parse_boxes(answer, SIZE, frame)) == pytest.approx([64.0, 96.0, 192.0, 192.0])


def test_auto_frame_decides_from_the_range():
    # fits the image in pixels: pixels
    assert parse_boxes("[600, 10, 630, 20]", SIZE) == ((600, 10, 630, 20),)
    # too wide for a 640-pixel image but within 0-1000: normalised
    assert flat(parse_boxes("[700, 10, 900, 20]", SIZE)) == pytest.approx([448.0, 4.8, 576.0, 9.6])
    # a tag in pixels beyond 1000 is read as pixels on a big image
    assert parse_boxes("<box>(1200,10),(1500,20)</box>", (2000, 100)) == ((1200, 10, 1500, 20),)
    # stated pixels are taken as given
    assert parse_boxes("<box>(100,200),(300,400)</box>", SIZE, "pixels") == ((100, 200, 300, 400),)


def test_an_explicitly_empty_answer_is_no_boxes():
    assert parse_boxes("[]", SIZE) == ()
    assert parse_boxes('{"boxes": []}', SIZE) == ()
    assert parse_points("```json\n[]\n```", SIZE) == ()


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        pytest.param("I cannot see any cat.", "no boxes found", id="prose"),
        pytest.param("", "no boxes found", id="empty"),
        pytest.param("[10, 20, 30]", "needs 4 numbers", id="three-numbers"),
        pytest.param("<box>(1,2)</box>", "needs 4 numbers", id="half-a-box"),
        pytest.param("(1,2),(3,4),(5,6)", "3 coordinate pairs", id="odd-pairs"),
        pytest.param("[NaN, 1, 2, 3]", "finite", id="nan"),
        pytest.param("[1e400, 1, 2, 3]", "finite", id="overflow"),
        pytest.param("[1700, 10, 1900, 20]", "fit neither", id="fits-no-frame"),
        pytest.param("[[1, 2, 3, 4]" + ", [1, 2, 3, 4]" * MAX_ITEMS + "]", "at most", id="too-many"),
        pytest.param("x" * (MAX_ANSWER_CHARS + 1), "characters", id="too-long"),
        pytest.param('{"label": "cat"}', "no boxes found", id="json-without-boxes"),
        pytest.param("[[1, 2, 3", "no boxes", id="broken-json"),
    ],
)
def test_malformed_boxes_say_why(answer, reason):
    got = parse_boxes(answer, SIZE)
    assert isinstance(got, Malformed) and reason in got.reason


def test_a_cut_off_json_list_keeps_its_complete_boxes():
    assert parse_boxes("[[10, 20, 30, 40], [50, 60, 7", SIZE) == TWO[:1]


def test_answer_that_is_not_text_is_malformed():
    assert isinstance(parse_boxes(None, SIZE), Malformed)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param("[[10, 20], [30, 40]]", ((10, 20), (30, 40)), id="json-list"),
        pytest.param('[{"point_2d": [10, 20]}, {"point": [30, 40]}]', ((10, 20), (30, 40)), id="json-objects"),
        pytest.param('{"points": [{"x": 10, "y": 20}]}', ((10, 20),), id="json-named"),
        pytest.param("(10, 20) and (30, 40)", ((10, 20), (30, 40)), id="pairs"),
        pytest.param("<point>500 500</point>", ((320, 240),), id="point-tag-0-1000"),
        pytest.param("<point>(250, 750)</point>", ((160, 360),), id="point-tag-pair"),
    ],
)
def test_points(answer, expected):
    assert flat(parse_points(answer, SIZE)) == pytest.approx(flat(expected))


def test_malformed_points():
    assert "needs 2 numbers" in parse_points("[1, 2, 3, 4]", SIZE).reason
    assert "no points found" in parse_points("over there", SIZE).reason


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param("[[0, 0], [10, 0], [10, 10]]", id="json-pairs"),
        pytest.param("[0, 0, 10, 0, 10, 10]", id="json-flat"),
        pytest.param('{"polygon": [[0, 0], [10, 0], [10, 10]]}', id="json-object"),
        pytest.param("[[[0, 0], [10, 0], [10, 10]]]", id="json-wrapped"),
        pytest.param("(0,0), (10,0), (10,10)", id="pairs"),
        pytest.param("<polygon>(0,0),(10,0),(10,10)</polygon>", id="tag"),
    ],
)
def test_polygon(answer):
    assert parse_polygon(answer, (100, 100), "pixels") == ((0, 0), (10, 0), (10, 10))


def test_malformed_polygons():
    assert "give exactly one" in parse_polygon("[[[0,0],[1,0],[1,1]], [[0,0],[1,0],[1,1]]]", SIZE).reason
    assert "pairs" in parse_polygon("[0, 0, 10, 0, 10]", SIZE).reason
    assert "no polygon found" in parse_polygon("a triangle", SIZE).reason
    assert isinstance(parse_polygon("[]", SIZE), Malformed)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param("7", 7, id="bare"),
        pytest.param("There are 7 red circles.", 7, id="sentence"),
        pytest.param("I see 3 red and 4 blue ones, so the answer is 7.", 7, id="labelled-last"),
        pytest.param("Count: 12", 12, id="count-label"),
        pytest.param("\\boxed{12}", 12, id="boxed"),
        pytest.param("<answer>5</answer>", 5, id="answer-tag"),
        pytest.param('{"count": 5, "colour": "red"}', 5, id="json"),
        pytest.param("seven", 7, id="word"),
        pytest.param("There are twelve.", 12, id="labelled-word"),
        pytest.param("0", 0, id="zero"),
        pytest.param("<think>3? 4? 5?</think> 4", 4, id="after-thinking"),
        pytest.param("4.0", 4, id="integral-float"),
    ],
)
def test_counts(answer, expected):
    assert parse_count(answer) == expected


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        pytest.param("3 or 4", "none labelled", id="ambiguous"),
        pytest.param("many", "no number", id="no-number"),
        pytest.param("-2", "not a count", id="negative"),
        pytest.param("2.5", "not a count", id="fraction"),
        pytest.param("\\boxed{lots}", "not a number", id="boxed-word"),
    ],
)
def test_malformed_counts(answer, reason):
    got = parse_count(answer)
    assert isinstance(got, Malformed) and reason in got.reason


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param("STOP", "STOP", id="bare"),
        pytest.param('"STOP"', "STOP", id="quoted"),
        pytest.param("\u201cSTOP\u201d", "STOP", id="curly-quoted"),
        pytest.param("The sign says: <answer>STOP</answer>", "STOP", id="answer-tag"),
        pytest.param("```\nSTOP\n```", "STOP", id="fence"),
        pytest.param("<think>is it SHOP?</think>STOP", "STOP", id="after-thinking"),
    ],
)
def test_text(answer, expected):
    assert parse_text(answer) == expected


@given(st.text(max_size=400))
def test_parsers_never_raise_on_garbage(answer):
    for got in (
        parse_boxes(answer, SIZE),
        parse_points(answer, SIZE),
        parse_polygon(answer, SIZE),
        parse_count(answer),
        parse_text(answer),
    ):
        assert got is not None


@given(st.lists(st.tuples(st.integers(0, 600), st.integers(0, 470), st.integers(1, 40), st.integers(1, 9)), max_size=6))
def test_boxes_written_as_json_read_back(items):
    boxes = [(x, y, x + w, y + h) for x, y, w, h in items]
    assert parse_boxes(str([list(b) for b in boxes]), SIZE, "pixels") == tuple(boxes)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param("[" * 99_999, id="deep-brackets"),
        pytest.param("<box>" * 20_000, id="unclosed-box-tags"),
        pytest.param("<answer>a" * 10_000, id="unclosed-answer-tags"),
        pytest.param("(1," * 30_000, id="half-pairs"),
        pytest.param("```json\n" * 10_000, id="unclosed-fences"),
    ],
)
def test_pathological_answers_are_read_quickly(answer):
    start = time.perf_counter()
    for parse in (
        lambda a: parse_boxes(a, SIZE),
        lambda a: parse_points(a, SIZE),
        lambda a: parse_polygon(a, SIZE),
        parse_count,
        parse_text,
    ):
        parse(answer)
    assert time.perf_counter() - start < 2.0  # each takes milliseconds; quadratic scans took seconds
