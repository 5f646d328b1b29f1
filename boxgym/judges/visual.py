"""Visual reward metrics: grounding, pointing, polygon segmentation, OCR and counting.

Pure functions over pixel coordinates, each in [0, 1] and 1 for a perfect answer; the
judges around them (:mod:`boxgym.judges.visual_judges`) read the model's answer and the
task's truth. The formulas are in each function's docstring; ``docs/rewards.md`` has
them all in one place.

Boxes and points are matched to the truth one to one by the Hungarian algorithm
(SciPy's ``linear_sum_assignment``, imported on first use so that ``import boxgym.judges``
does not load SciPy: install the ``vision`` extra).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .visual_parse import Box, Point, normalise_text

__all__ = [
    "SoftMatch",
    "box_iou",
    "count_reward",
    "edit_distance",
    "grounding_f1",
    "iou_matrix",
    "ocr_reward",
    "pointing_f1",
    "polygon_iou",
    "rasterise",
    "soft_f1",
]


@dataclass(frozen=True, slots=True)
class SoftMatch:
    """The result of a soft one-to-one matching: F1 and the matched pairs with their weights."""

    f1: float
    precision: float
    recall: float
    pairs: tuple[tuple[int, int, float], ...]  # (prediction index, truth index, soft match in [0, 1])


def _linear_sum_assignment():  # noqa: ANN202 - SciPy's function
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError as exc:
        raise ModuleNotFoundError(
            "the grounding and pointing rewards need SciPy: pip install 'boxgym[vision]'", name="scipy"
        ) from exc
    return linear_sum_assignment


def soft_f1(similarity: np.ndarray) -> SoftMatch:
    """F1 over soft matches, for an ``(n predictions, m truths)`` matrix of similarities in [0, 1].

    The predictions are matched one to one to the truths so that the summed similarity
    ``S`` is largest (Hungarian algorithm). Then precision ``P = S / n``, recall ``R = S / m``
    and ``F1 = 2PR / (P + R) = 2S / (n + m)``. No predictions and no truths is a perfect 1;
    either alone is 0.
    """
    n, m = similarity.shape
    if n == 0 or m == 0:
        return SoftMatch(1.0 if n == m else 0.0, float(n == 0), float(m == 0), ())
    rows, cols = _linear_sum_assignment()(similarity, maximize=True)
    pairs = tuple((int(i), int(j), float(similarity[i, j])) for i, j in zip(rows, cols) if similarity[i, j] > 0)
    total = sum(s for _, _, s in pairs)
    return SoftMatch(min(1.0, 2.0 * total / (n + m)), total / n, total / m, pairs)


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes ``(x1, y1, x2, y2)``; 0 when the union is empty."""
    return float(iou_matrix(np.asarray([a], float), np.asarray([b], float))[0, 0])


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def iou_matrix(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """IoU of every predicted box (rows, shape ``(n, 4)``) with every true box (``(m, 4)``)."""
    pred, truth = pred.reshape(-1, 4), truth.reshape(-1, 4)
    left = np.maximum(pred[:, None, 0], truth[None, :, 0])
    top = np.maximum(pred[:, None, 1], truth[None, :, 1])
    right = np.minimum(pred[:, None, 2], truth[None, :, 2])
    bottom = np.minimum(pred[:, None, 3], truth[None, :, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    union = _area(pred)[:, None] + _area(truth)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return np.clip(iou, 0.0, 1.0)


def grounding_f1(pred: Sequence[Box], truth: Sequence[Box], *, min_iou: float = 0.0) -> SoftMatch:
    """Grounding reward: :func:`soft_f1` with soft matches from IoU.

    ``s_ij = max(0, (IoU_ij - t) / (1 - t))`` with ``t = min_iou`` (0 by default, so
    ``s = IoU``): a box below ``t`` does not count at all, a box at IoU 1 counts fully.
    """
    if not 0.0 <= min_iou < 1.0:
        raise ValueError("min_iou must be in [0, 1)")
    iou = iou_matrix(np.asarray(pred, float).reshape(-1, 4), np.asarray(truth, float).reshape(-1, 4))
    return soft_f1(np.clip((iou - min_iou) / (1.0 - min_iou), 0.0, 1.0))


def pointing_f1(pred: Sequence[Point], truth: Sequence[Point], *, size: tuple[int, int], sigma: float) -> SoftMatch:
    """Point localisation reward: :func:`soft_f1` with Gaussian soft matches.

    ``s_ij = exp(-d_ij^2 / (2 (sigma * D)^2))`` where ``d_ij`` is the distance in pixels
    between prediction ``i`` and truth ``j`` and ``D = sqrt(width^2 + height^2)`` the image
    diagonal: ``sigma`` is a fraction of the image's size (0.02 on a 640×480 image is 16 px;
    a point that far off counts 0.61, twice that far 0.14).
    """
    if sigma <= 0:
        raise ValueError("sigma must be > 0")
    p, t = np.asarray(pred, float).reshape(-1, 2), np.asarray(truth, float).reshape(-1, 2)
    d2 = ((p[:, None, :] - t[None, :, :]) ** 2).sum(axis=-1)
    width = sigma * math.hypot(*size)
    return soft_f1(np.exp(-d2 / (2.0 * width * width)))


def rasterise(polygon: Sequence[Point], size: tuple[int, int]) -> np.ndarray:
    """The polygon's binary mask, shape ``(height, width)``, by the even-odd rule at pixel centres.

    Pixel ``(row r, column c)`` is inside when a ray from its centre ``(c + 0.5, r + 0.5)``
    crosses the polygon's edges an odd number of times. So every polygon has one defined
    mask: a self-intersecting one (a bow tie) covers the regions enclosed an odd number of
    times, a degenerate one (fewer than 3 vertices, all on a line, zero area) covers
    nothing, and the parts outside the image are cut off.
    """
    width, height = size
    mask_shape = (height, width)
    pts = np.asarray(polygon, float).reshape(-1, 2)
    if len(pts) < 3:
        return np.zeros(mask_shape, bool)
    ax, ay = pts[:, 0], pts[:, 1]
    bx, by = np.roll(ax, -1), np.roll(ay, -1)
    # Each edge from its lower to its upper end, so that the crossings (and the mask) do not
    # depend on the direction the vertices are listed in, to the last bit.
    down = ay > by
    x1, y1, x2, y2 = np.where(down, bx, ax), np.where(down, by, ay), np.where(down, ax, bx), np.where(down, ay, by)
    rows = np.arange(height) + 0.5
    yc = rows[:, None]
    # An edge crosses a row's centre line when it spans it half-open (min <= y < max), so a
    # vertex exactly on the line is counted once and horizontal edges never.
    crosses = (y1 <= yc) & (yc < y2)
    r, e = np.nonzero(crosses)
    if len(r) == 0:
        return np.zeros(mask_shape, bool)
    t = (rows[r] - y1[e]) / (y2[e] - y1[e])
    x = x1[e] + t * (x2[e] - x1[e])
    # Columns whose centre lies right of the crossing (c + 0.5 > x) see it on their ray.
    first = np.clip(np.floor(x - 0.5).astype(np.int64) + 1, 0, width)
    counts = np.zeros((height, width + 1), np.int32)
    np.add.at(counts, (r, first), 1)
    return (np.cumsum(counts, axis=1)[:, :width] % 2).astype(bool)


def polygon_iou(pred: Sequence[Point], truth: Sequence[Point], size: tuple[int, int]) -> float:
    """Segmentation reward: IoU of the two polygons' masks (:func:`rasterise`) on the image grid.

    ``|A ∩ B| / |A ∪ B|`` over pixels; 0 when the union is empty.
    """
    a, b = rasterise(pred, size), rasterise(truth, size)
    union = int(np.count_nonzero(a | b))
    return int(np.count_nonzero(a & b)) / union if union else 0.0


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions of one character each).

    Bit-parallel (Myers 1999, Hyyrö 2001): one pass over ``b`` with ``len(a)``-bit integers,
    so long strings stay fast.
    """
    if len(a) < len(b):
        a, b = b, a
    m = len(a)
    if m == 0 or not b:
        return m
    full = (1 << m) - 1
    top = 1 << (m - 1)
    peq: dict[str, int] = {}
    for i, ch in enumerate(a):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    pv, mv, score = full, 0, m
    for ch in b:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & full)
        mh = pv & xh
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = ((ph << 1) | 1) & full
        mh = (mh << 1) & full
        pv = mh | (~(xv | ph) & full)
        mv = ph & xv
    return score


def ocr_reward(pred: str, truth: str, *, casefold: bool = False) -> float:
    """OCR reward: ``1 - lev(p, t) / max(|p|, |t|)`` on normalised text, 1 when both are empty.

    ``p`` and ``t`` are :func:`~boxgym.judges.visual_parse.normalise_text` of the answer and
    the truth (NFKC, whitespace runs as one space, trimmed; casefolded if asked); ``lev`` is
    the character edit distance (:func:`edit_distance`), which never exceeds the longer
    length, so the reward is in [0, 1].
    """
    p, t = normalise_text(pred, casefold=casefold), normalise_text(truth, casefold=casefold)
    longest = max(len(p), len(t))
    return 1.0 if longest == 0 else 1.0 - edit_distance(p, t) / longest


def count_reward(pred: int, truth: int, *, scale: float) -> float:
    """Counting reward: ``max(0, 1 - |pred - truth| / scale)``.

    With ``scale = 3``: exact 1, off by one 0.67, by two 0.33, by three or more 0.
    """
    if scale <= 0:
        raise ValueError("scale must be > 0")
    return max(0.0, 1.0 - abs(pred - truth) / scale)
