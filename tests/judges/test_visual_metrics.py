"""Properties of the visual metrics: perfect is 1, order does not matter, farther is worse, always in [0, 1]."""

from __future__ import annotations

import math
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from boxgym.judges.visual import (
    box_iou,
    count_reward,
    edit_distance,
    grounding_f1,
    ocr_reward,
    pointing_f1,
    polygon_iou,
    rasterise,
)

SIZE = (640, 480)
coord = st.floats(0, 600, allow_nan=False, allow_infinity=False)
extent = st.floats(1, 200, allow_nan=False, allow_infinity=False)


@st.composite
def boxes(draw, min_size=0, max_size=8):
    items = draw(st.lists(st.tuples(coord, coord, extent, extent), min_size=min_size, max_size=max_size))
    return [(x, y, x + w, y + h) for x, y, w, h in items]


points = st.lists(st.tuples(coord, coord), min_size=0, max_size=8)
direction = st.tuples(st.floats(-1, 1), st.floats(-1, 1)).filter(lambda v: math.hypot(*v) > 0.1)


# -- grounding ---------------------------------------------------------------------


@given(boxes(min_size=1))
def test_grounding_perfect_answer_scores_one(truth):
    assert grounding_f1(truth, truth).f1 == pytest.approx(1.0)


@given(boxes(), boxes(), st.randoms())
def test_grounding_ignores_the_order_of_predictions(pred, truth, rnd):
    shuffled = list(pred)
    rnd.shuffle(shuffled)
    assert grounding_f1(shuffled, truth).f1 == pytest.approx(grounding_f1(pred, truth).f1, abs=1e-12)


@given(boxes(), boxes(), st.floats(0, 0.9))
def test_grounding_is_in_unit_interval(pred, truth, min_iou):
    match = grounding_f1(pred, truth, min_iou=min_iou)
    assert 0.0 <= match.f1 <= 1.0 and 0.0 <= match.precision <= 1.0 and 0.0 <= match.recall <= 1.0


@given(boxes(min_size=1, max_size=1), direction, st.lists(st.floats(0, 300), min_size=2, max_size=6))
def test_grounding_falls_as_a_box_moves_away(truth, v, steps):
    (x1, y1, x2, y2) = truth[0]
    moved = [[(x1 + t * v[0], y1 + t * v[1], x2 + t * v[0], y2 + t * v[1])] for t in sorted(steps)]
    scores = [grounding_f1(pred, truth).f1 for pred in moved]
    assert all(a >= b - 1e-12 for a, b in zip(scores, scores[1:]))


def test_grounding_counts_extra_and_missing_boxes():
    truth = [(0, 0, 10, 10), (20, 20, 30, 30)]
    assert grounding_f1(truth[:1], truth).f1 == pytest.approx(2 / 3)  # 2*1 / (1 + 2)
    assert grounding_f1(truth + [(50, 50, 60, 60)], truth).f1 == pytest.approx(0.8)  # 2*2 / (3 + 2)
    assert grounding_f1([], []).f1 == 1.0 and grounding_f1([], truth).f1 == 0.0 and grounding_f1(truth, []).f1 == 0.0
    half = (5, 0, 15, 10)  # IoU 1/3 with the first box
    assert grounding_f1([half], truth[:1]).f1 == pytest.approx(1 / 3)
    assert grounding_f1([half], truth[:1], min_iou=0.5).f1 == 0.0


def test_grounding_matches_one_to_one():
    truth = [(0, 0, 10, 10)]
    # two copies of the perfect box: one matches fully, the other is a false positive
    assert grounding_f1(truth * 2, truth).f1 == pytest.approx(2 / 3)


def test_box_iou_of_degenerate_boxes_is_zero():
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0
    assert box_iou((0, 0, 10, 0), (0, 0, 10, 10)) == 0.0


# -- pointing ----------------------------------------------------------------------


@given(points.filter(bool))
def test_pointing_perfect_answer_scores_one(truth):
    assert pointing_f1(truth, truth, size=SIZE, sigma=0.02).f1 == pytest.approx(1.0)


@given(points, points, st.randoms())
def test_pointing_ignores_the_order_of_predictions(pred, truth, rnd):
    shuffled = list(pred)
    rnd.shuffle(shuffled)
    a = pointing_f1(shuffled, truth, size=SIZE, sigma=0.05).f1
    assert a == pytest.approx(pointing_f1(pred, truth, size=SIZE, sigma=0.05).f1, abs=1e-12)


@given(points, points, st.floats(0.001, 1))
def test_pointing_is_in_unit_interval(pred, truth, sigma):
    assert 0.0 <= pointing_f1(pred, truth, size=SIZE, sigma=sigma).f1 <= 1.0


@given(st.tuples(coord, coord), direction, st.lists(st.floats(0, 300), min_size=2, max_size=6))
def test_pointing_falls_as_a_point_moves_away(p, v, steps):
    scores = [
        pointing_f1([(p[0] + t * v[0], p[1] + t * v[1])], [p], size=SIZE, sigma=0.02).f1 for t in sorted(steps)
    ]
    assert all(a >= b - 1e-12 for a, b in zip(scores, scores[1:]))


@given(points, points, st.floats(0.5, 4))
def test_pointing_sigma_is_relative_to_the_image(pred, truth, k):
    scaled = lambda ps: [(x * k, y * k) for x, y in ps]  # noqa: E731
    big = pointing_f1(scaled(pred), scaled(truth), size=(SIZE[0] * k, SIZE[1] * k), sigma=0.03).f1
    assert big == pytest.approx(pointing_f1(pred, truth, size=SIZE, sigma=0.03).f1, abs=1e-9)


def test_pointing_gaussian_at_one_sigma():
    sigma_px = 0.02 * math.hypot(*SIZE)  # 16 px on 640x480
    got = pointing_f1([(100 + sigma_px, 100)], [(100, 100)], size=SIZE, sigma=0.02).f1
    assert got == pytest.approx(math.exp(-0.5))


# -- polygons ----------------------------------------------------------------------

icoord = st.integers(0, 60)


@st.composite
def convex(draw):
    """A rectangle or a triangle with integer vertices and positive area, inside a 100x100 image."""
    if draw(st.booleans()):
        x, y = draw(icoord), draw(icoord)
        w, h = draw(st.integers(1, 39)), draw(st.integers(1, 39))
        return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    a, b, c = draw(st.tuples(icoord, icoord)), draw(st.tuples(icoord, icoord)), draw(st.tuples(icoord, icoord))
    assume(abs((b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])) >= 20)
    return [a, b, c]


@given(convex())
def test_polygon_perfect_answer_scores_one(polygon):
    assume(rasterise(polygon, (100, 100)).any())
    assert polygon_iou(polygon, polygon, (100, 100)) == 1.0


@given(convex(), convex(), st.integers(0, 3), st.booleans())
def test_polygon_ignores_where_the_vertex_list_starts_and_its_direction(pred, truth, shift, backwards):
    turned = pred[shift % len(pred) :] + pred[: shift % len(pred)]
    turned = turned[::-1] if backwards else turned
    assert polygon_iou(turned, truth, (100, 100)) == polygon_iou(pred, truth, (100, 100))


@given(st.lists(st.tuples(st.floats(-50, 150), st.floats(-50, 150)), max_size=12), convex())
def test_polygon_iou_is_in_unit_interval_for_any_vertices(pred, truth):
    assert 0.0 <= polygon_iou(pred, truth, (100, 100)) <= 1.0


@given(convex(), st.sampled_from([(1, 0), (0, 1), (1, 1), (-1, 2)]))
def test_polygon_falls_as_it_moves_away(polygon, v):
    assume(rasterise(polygon, (100, 100)).any())
    # integer moves of a convex shape that stays inside the image (the overlap of a convex
    # set with its translate shrinks monotonically along a ray)
    scores = []
    for t in range(0, 40, 3):
        moved = [(x + t * v[0], y + t * v[1]) for x, y in polygon]
        if not all(0 <= x <= 100 and 0 <= y <= 100 for x, y in moved):
            break
        scores.append(polygon_iou(moved, polygon, (100, 100)))
    assert scores[0] == 1.0
    assert all(a >= b for a, b in zip(scores, scores[1:]))


def test_rasterise_covers_exactly_the_pixels_inside():
    assert rasterise([(2, 3), (10, 3), (10, 8), (2, 8)], (20, 20)).sum() == 8 * 5
    mask = rasterise([(0, 0), (4, 0), (4, 4), (0, 4)], (10, 10))
    assert mask[:4, :4].all() and mask.sum() == 16
    assert rasterise([(-10, -10), (30, -10), (30, 30), (-10, 30)], (20, 10)).all()  # cut to the image


def test_self_intersecting_polygon_has_a_defined_mask():
    bow_tie = [(0, 0), (10, 10), (10, 0), (0, 10)]  # two triangles meeting at the centre
    left = rasterise([(0, 0), (5, 5), (0, 10)], (10, 10))
    right = rasterise([(10, 0), (5, 5), (10, 10)], (10, 10))
    assert (rasterise(bow_tie, (10, 10)) == (left | right)).all()
    # a pentagram's centre is enclosed twice: the even-odd rule leaves it out
    star = [(50 + 40 * math.cos(a), 50 + 40 * math.sin(a)) for a in np.arange(5) * 4 * math.pi / 5 - math.pi / 2]
    assert not rasterise(star, (100, 100))[50, 50] and rasterise(star, (100, 100)).any()


@pytest.mark.parametrize(
    "polygon",
    [
        pytest.param([], id="empty"),
        pytest.param([(5, 5)], id="one-vertex"),
        pytest.param([(1, 1), (8, 8)], id="two-vertices"),
        pytest.param([(1, 1), (5, 5), (9, 9)], id="collinear"),
        pytest.param([(1, 1), (1, 1), (1, 1), (1, 1)], id="one-point-repeated"),
        pytest.param([(200, 200), (300, 200), (300, 300)], id="outside"),
    ],
)
def test_degenerate_polygons_cover_nothing_and_score_zero(polygon):
    assert not rasterise(polygon, (10, 10)).any()
    assert polygon_iou(polygon, [(0, 0), (10, 0), (10, 10)], (10, 10)) == 0.0


# -- OCR -----------------------------------------------------------------------------


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            row.append(min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = row
    return previous[-1]


text = st.text(alphabet=st.sampled_from("abcAB  é\u00e9\ufb01\t\n"), max_size=30)


@given(text, text)
def test_edit_distance_is_the_levenshtein_distance(a, b):
    assert edit_distance(a, b) == _levenshtein(a, b)


@given(st.text(max_size=300), st.text(max_size=300))
def test_ocr_reward_is_in_unit_interval(a, b):
    assert 0.0 <= ocr_reward(a, b) <= 1.0


@given(st.text(max_size=60))
def test_ocr_perfect_answer_scores_one(truth):
    assert ocr_reward(truth, truth) == 1.0


@given(st.text(alphabet="abcdef ", min_size=1, max_size=40), st.integers(1, 10))
def test_ocr_falls_as_more_characters_are_wrong(truth, k):
    assume(truth.strip())
    worse = [ocr_reward(truth + "#" * n, truth) for n in range(k + 1)]
    assert all(a > b for a, b in zip(worse, worse[1:]))


def test_ocr_normalisation():
    assert ocr_reward("  Hello \n  world ", "Hello world") == 1.0  # whitespace runs
    assert ocr_reward("\ufb01ne", "fine") == 1.0  # NFKC: the ligature is two letters
    assert ocr_reward("ＡＢＣ", "ABC") == 1.0  # full-width forms
    assert ocr_reward("hello", "Hello") == pytest.approx(0.8)  # case counts by default
    assert ocr_reward("hello", "Hello", casefold=True) == 1.0
    assert ocr_reward("", "") == 1.0 and ocr_reward("", "abc") == 0.0
    assert unicodedata.normalize("NFKC", "\ufb01") == "fi"


def test_edit_distance_is_fast_on_long_strings():
    a, b = "ab" * 5_000, "ba" * 5_000
    assert edit_distance(a, b) == 2  # the strings are one shift apart


# -- counting ------------------------------------------------------------------------


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.floats(0.5, 50))
def test_count_reward_is_in_unit_interval_and_falls_with_the_difference(pred, truth, scale):
    r = count_reward(pred, truth, scale=scale)
    assert 0.0 <= r <= 1.0
    assert count_reward(truth, truth, scale=scale) == 1.0
    assert count_reward(pred + (1 if pred >= truth else -1), truth, scale=scale) <= r


def test_count_reward_scale():
    assert [count_reward(7 + d, 7, scale=3) for d in range(5)] == pytest.approx([1, 2 / 3, 1 / 3, 0, 0])


def test_importing_the_judges_does_not_import_scipy():
    code = "import sys, boxgym.judges; print('scipy' in sys.modules, 'aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
