"""Visual judges: the submitted answer against the task's visual truth, one metric each.

=========================  ============================  =============================================
oracle record              judge                         reward (:mod:`boxgym.judges.visual`)
=========================  ============================  =============================================
:class:`ExpectedBoxes`     :class:`GroundingJudge`       soft F1, soft matches from IoU
:class:`ExpectedPoints`    :class:`PointingJudge`        soft F1, Gaussian soft matches
:class:`ExpectedPolygon`   :class:`SegmentationJudge`    IoU of the rasterised masks
:class:`ExpectedText`      :class:`OcrJudge`             1 - normalised edit distance
:class:`ExpectedCount`     :class:`CountingJudge`        1 - abs(difference) / scale, floored at 0
=========================  ============================  =============================================

Each judge reads ``submit(answer=...)`` (:attr:`FinishedEpisode.submission`), parses it
(:mod:`boxgym.judges.visual_parse`) and scores it. An answer that cannot be read, or no
answer, scores 0 with the reason in ``messages``: the agent's failure, never an exception.
A task whose oracle is not the judge's record (or is malformed) raises
:class:`~boxgym.errors.JudgeError` / :class:`~boxgym.errors.TaskError` as the other judges do.
``passed`` is ``reward >= passing`` (per judge; defaults below), which the curriculum reads.

The metrics run in a worker thread: a Hungarian assignment over hundreds of boxes or the
rasterisation of a large image takes milliseconds that the event loop must not wait for.
They compose like any judge, e.g. ``Gate(CountingJudge(), LLMJudge(...))`` asks a model
about the explanation only when the count is right.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import JudgeError, TaskError
from .base import Check, FinishedEpisode, Verdict
from .visual import count_reward, grounding_f1, ocr_reward, pointing_f1, polygon_iou, rasterise, SoftMatch
from .visual_parse import (
    Box,
    Frame,
    Malformed,
    Point,
    parse_boxes,
    parse_count,
    parse_points,
    parse_polygon,
    parse_text,
)

__all__ = [
    "CountingJudge",
    "ExpectedBoxes",
    "ExpectedCount",
    "ExpectedPoints",
    "ExpectedPolygon",
    "ExpectedText",
    "GroundingJudge",
    "OcrJudge",
    "PointingJudge",
    "SegmentationJudge",
]

_FRAMES = ("auto", "pixels", "norm1000", "norm1")


def _size(value: Any) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in value)
    except (TypeError, ValueError):
        raise TaskError(f"an image size is (width, height), not {value!r}") from None
    if width < 1 or height < 1:
        raise TaskError(f"an image size must be positive, not {width}x{height}")
    return width, height


def _coords(value: Any, arity: int, what: str) -> tuple[tuple[float, ...], ...]:
    try:
        items = tuple(tuple(float(c) for c in item) for item in value)
    except (TypeError, ValueError):
        raise TaskError(f"{what} must be a list of {arity}-number lists, not {value!r}") from None
    if any(len(item) != arity or not all(map(math.isfinite, item)) for item in items):
        raise TaskError(f"each of {what} needs {arity} finite numbers")
    return items


def _frame(frame: str) -> None:
    if frame not in _FRAMES:
        raise TaskError(f"frame must be one of {', '.join(_FRAMES)}, not {frame!r}")


@dataclass(frozen=True, slots=True)
class ExpectedBoxes:
    """The boxes of every instance, ``(x1, y1, x2, y2)`` in pixels of an image of ``size`` (width, height).

    ``frame`` is how the model is asked to write coordinates (see
    :mod:`boxgym.judges.visual_parse`); ``min_iou`` the IoU below which a box does not count.
    """

    boxes: tuple[Box, ...]
    size: tuple[int, int]
    frame: Frame = "auto"
    min_iou: float = 0.0

    def __post_init__(self) -> None:
        boxes = _coords(self.boxes, 4, "boxes")
        if any(x2 <= x1 or y2 <= y1 for x1, y1, x2, y2 in boxes):
            raise TaskError("a true box needs x1 < x2 and y1 < y2")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "size", _size(self.size))
        _frame(self.frame)
        if not 0.0 <= self.min_iou < 1.0:
            raise TaskError("min_iou must be in [0, 1)")


@dataclass(frozen=True, slots=True)
class ExpectedPoints:
    """The points to find, ``(x, y)`` in pixels; ``sigma`` is the Gaussian's width as a fraction
    of the image diagonal (:func:`~boxgym.judges.visual.pointing_f1`)."""

    points: tuple[Point, ...]
    size: tuple[int, int]
    sigma: float = 0.02
    frame: Frame = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", _coords(self.points, 2, "points"))
        object.__setattr__(self, "size", _size(self.size))
        _frame(self.frame)
        if not self.sigma > 0:
            raise TaskError("sigma must be > 0")


@dataclass(frozen=True, slots=True)
class ExpectedPolygon:
    """The outline of the object to segment, its vertices in order, in pixels."""

    polygon: tuple[Point, ...]
    size: tuple[int, int]
    frame: Frame = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "polygon", _coords(self.polygon, 2, "polygon vertices"))
        object.__setattr__(self, "size", _size(self.size))
        _frame(self.frame)
        if not rasterise(self.polygon, self.size).any():
            raise TaskError("the true polygon covers no pixel of the image")


@dataclass(frozen=True, slots=True)
class ExpectedText:
    """The text to read; compared after normalisation (:func:`~boxgym.judges.visual_parse.normalise_text`)."""

    text: str
    casefold: bool = False


@dataclass(frozen=True, slots=True)
class ExpectedCount:
    """How many there are; ``scale`` is the difference at which the reward reaches 0."""

    count: int
    scale: float = 3.0

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0:
            raise TaskError(f"a count is a whole number >= 0, not {self.count!r}")
        if not self.scale > 0:
            raise TaskError("scale must be > 0")


T = TypeVar("T")


async def _judge(episode: FinishedEpisode, kind: type[T], measure: Callable[[T, str], Verdict]) -> Verdict:
    truth = episode.task.oracle
    if not isinstance(truth, kind):
        raise JudgeError(f"task {episode.task.id} has no {kind.__name__} oracle (it has {type(truth).__name__})")
    if episode.submission is None:
        return Verdict.fail("no answer was submitted")
    return await asyncio.to_thread(measure, truth, episode.submission)


def _malformed(name: str, problem: Malformed) -> Verdict:
    return Verdict.fail(f"malformed answer: {problem.reason}", checks=(Check(name, False, problem.reason),))


def _match_verdict(name: str, match: SoftMatch, n: int, m: int, passing: float) -> Verdict:
    weights = ", ".join(f"{s:.2f}" for _, _, s in sorted(match.pairs, key=lambda p: p[1])[:20])
    detail = f"F1 {match.f1:.3f}: {n} predicted, {m} true, matches {weights or 'none'}"
    ok = match.f1 >= passing
    return Verdict(
        match.f1,
        ok,
        (Check(name, ok, detail),),
        parts={"precision": match.precision, "recall": match.recall},
    )


@dataclass(frozen=True, slots=True)
class GroundingJudge:
    """Boxes against :class:`ExpectedBoxes`: :func:`~boxgym.judges.visual.grounding_f1`."""

    passing: float = 0.5

    async def score(self, episode: FinishedEpisode) -> Verdict:
        return await _judge(episode, ExpectedBoxes, self._measure)

    def _measure(self, truth: ExpectedBoxes, answer: str) -> Verdict:
        boxes = parse_boxes(answer, truth.size, truth.frame)
        if isinstance(boxes, Malformed):
            return _malformed("grounding", boxes)
        match = grounding_f1(boxes, truth.boxes, min_iou=truth.min_iou)
        return _match_verdict("grounding", match, len(boxes), len(truth.boxes), self.passing)


@dataclass(frozen=True, slots=True)
class PointingJudge:
    """Points against :class:`ExpectedPoints`: :func:`~boxgym.judges.visual.pointing_f1`."""

    passing: float = 0.5

    async def score(self, episode: FinishedEpisode) -> Verdict:
        return await _judge(episode, ExpectedPoints, self._measure)

    def _measure(self, truth: ExpectedPoints, answer: str) -> Verdict:
        points = parse_points(answer, truth.size, truth.frame)
        if isinstance(points, Malformed):
            return _malformed("pointing", points)
        match = pointing_f1(points, truth.points, size=truth.size, sigma=truth.sigma)
        return _match_verdict("pointing", match, len(points), len(truth.points), self.passing)


@dataclass(frozen=True, slots=True)
class SegmentationJudge:
    """A polygon against :class:`ExpectedPolygon`: :func:`~boxgym.judges.visual.polygon_iou`.

    A polygon that covers no pixel (degenerate, or outside the image) scores 0 and says so.
    """

    passing: float = 0.5

    async def score(self, episode: FinishedEpisode) -> Verdict:
        return await _judge(episode, ExpectedPolygon, self._measure)

    def _measure(self, truth: ExpectedPolygon, answer: str) -> Verdict:
        polygon = parse_polygon(answer, truth.size, truth.frame)
        if isinstance(polygon, Malformed):
            return _malformed("segmentation", polygon)
        iou = polygon_iou(polygon, truth.polygon, truth.size)
        messages: tuple[str, ...] = ()
        if not rasterise(polygon, truth.size).any():
            messages = (f"the polygon ({len(polygon)} vertices) covers no pixel of the image: degenerate or outside",)
        ok = iou >= self.passing
        return Verdict(iou, ok, (Check("segmentation", ok, f"mask IoU {iou:.3f}"),), messages)


@dataclass(frozen=True, slots=True)
class OcrJudge:
    """Text against :class:`ExpectedText`: :func:`~boxgym.judges.visual.ocr_reward`."""

    passing: float = 1.0

    async def score(self, episode: FinishedEpisode) -> Verdict:
        return await _judge(episode, ExpectedText, self._measure)

    def _measure(self, truth: ExpectedText, answer: str) -> Verdict:
        text = parse_text(answer)
        if isinstance(text, Malformed):
            return _malformed("ocr", text)
        reward = ocr_reward(text, truth.text, casefold=truth.casefold)
        ok = reward >= self.passing
        return Verdict(reward, ok, (Check("ocr", ok, f"read {text[:200]!r}: {reward:.3f}"),))


@dataclass(frozen=True, slots=True)
class CountingJudge:
    """A count against :class:`ExpectedCount`: :func:`~boxgym.judges.visual.count_reward`."""

    passing: float = 1.0

    async def score(self, episode: FinishedEpisode) -> Verdict:
        return await _judge(episode, ExpectedCount, self._measure)

    def _measure(self, truth: ExpectedCount, answer: str) -> Verdict:
        count = parse_count(answer)
        if isinstance(count, Malformed):
            return _malformed("counting", count)
        reward = count_reward(count, truth.count, scale=truth.scale)
        ok = reward >= self.passing
        return Verdict(reward, ok, (Check("counting", ok, f"counted {count}, truth {truth.count}"),))
