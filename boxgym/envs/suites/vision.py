"""The vision suite: questions about generated pictures, answered by looking or by computing.

Each task draws one picture from its seed (:mod:`.vision_draw`) and asks one question of a
*kind*; the picture is shown to the policy after the prompt (the task's ``images``) and is the
file ``image.png`` in the work directory, so an agent without vision can answer with code in
the ``python`` tool (NumPy and Pillow in an IPython kernel), as the zero-vision training of
the Kimi K2.5 report does. Each kind is judged by its visual judge (:mod:`boxgym.judges.visual_judges`):

=======  ====================================================  ============================  ==================
kind     question                                              answer                        judge
=======  ====================================================  ============================  ==================
count    how many objects of a colour, a shape, or both        a whole number                CountingJudge
box      a box around every such object                        ``[[x1, y1, x2, y2], ...]``   GroundingJudge
point    the centre of every such object                       ``[[x, y], ...]``             PointingJudge
polygon  the outline of the one large polygon of a colour      ``[[x, y], ...]`` in order    SegmentationJudge
ocr      the text written in the picture                       the text                      OcrJudge
chart    a value read off a bar or line chart                  a number (2% of the axis)     AnswerJudge
=======  ====================================================  ============================  ==================

Coordinates are pixels of the 512 x 384 image, x from the left, y down from the top. The
levels (clutter, overlap, noise, rotation) are :mod:`.vision_draw`'s. The reference solution
submits the truth itself, so it scores 1 by construction; the scripted solver that works from
the pixels alone is :mod:`.vision_solver`.
"""

from __future__ import annotations

import json

import numpy as np

from ...judges.answer import AnswerJudge, ExpectedAnswer
from ...judges.oracle import OracleJudge
from ...judges.visual_judges import (
    CountingJudge,
    ExpectedBoxes,
    ExpectedCount,
    ExpectedPoints,
    ExpectedPolygon,
    ExpectedText,
    GroundingJudge,
    OcrJudge,
    PointingJudge,
    SegmentationJudge,
)
from ...toolsets.calls import ToolCall
from ..tasks import ProceduralTaskSet, Task
from .vision_draw import SIZE, Shape, chart_image, png, polygon_scene, shape_scene, text_image

__all__ = ["IMAGE", "KINDS", "LEVELS", "SYSTEM_PROMPT", "generate", "judge", "task_set"]

SYSTEM_PROMPT = (
    "You answer questions about an image, working in a Linux sandbox with no network access. The image is shown "
    "to you and is also a PNG file in the working directory. The python tool runs code in a persistent IPython "
    "kernel with NumPy and Pillow installed, so you can also measure the image with code. When you know the "
    "answer, call submit with answer set to it, in the format the question asks for."
)
LEVELS = 4
IMAGE = "image.png"
KINDS = ("count", "box", "point", "polygon", "ocr", "chart")


def _plural(shape: str) -> str:
    return shape + "s"


def _query(rng: np.random.Generator, shapes: list[Shape]) -> tuple[str, str | None, str | None, list[Shape]]:
    """A set of objects to ask about, named by colour, shape or both, with at least one member."""
    pick = shapes[int(rng.integers(0, len(shapes)))]
    by = int(rng.integers(0, 3))
    colour = pick.colour if by != 1 else None
    shape = pick.kind if by != 0 else None
    chosen = [s for s in shapes if (colour is None or s.colour == colour) and (shape is None or s.kind == shape)]
    if colour and shape:
        phrase = f"{colour} {_plural(shape)}"
    elif colour:
        phrase = f"{colour} objects (of any shape)"
    else:
        phrase = f"{_plural(shape or '')} (of any colour)"
    return phrase, colour, shape, chosen


_SHAPES_NOTE = "The objects are circles, squares and triangles in red, orange, yellow, green, blue and purple."


def _coords(values: object) -> str:
    return json.dumps(values, separators=(", ", ": "))


def generate(seed: int, level: int) -> Task:
    rng = np.random.default_rng([seed, level])
    kind = KINDS[int(rng.integers(0, len(KINDS)))]
    size = SIZE
    meta: dict[str, object] = {"suite": "vision", "kind": kind}
    oracle: object
    if kind in ("count", "box", "point"):
        image, shapes = shape_scene(rng, level)
        phrase, colour, shape, chosen = _query(rng, shapes)
        meta.update(colour=colour, shape=shape)
        if kind == "count":
            question = f"{_SHAPES_NOTE} How many {phrase} are there?"
            fmt = 'Submit the number alone, e.g. submit(answer="3").'
            oracle, answer = ExpectedCount(len(chosen)), str(len(chosen))
        elif kind == "box":
            question = f"{_SHAPES_NOTE} Draw a bounding box around every one of the {phrase}."
            fmt = "Submit a JSON list of boxes, one per object: [[x1, y1, x2, y2], ...] (left, top, right, bottom)."
            boxes = [list(s.box()) for s in chosen]
            oracle, answer = ExpectedBoxes(tuple(map(tuple, boxes)), size, frame="pixels"), _coords(boxes)
        else:
            question = f"{_SHAPES_NOTE} Point at the centre of every one of the {phrase}."
            fmt = "Submit a JSON list of points, one per object: [[x, y], ...]."
            points = [list(s.centre) for s in chosen]
            oracle, answer = ExpectedPoints(tuple(map(tuple, points)), size, frame="pixels"), _coords(points)
    elif kind == "polygon":
        image, colour, polygon = polygon_scene(rng, level)
        meta.update(colour=colour)
        question = f"Outline the large {colour} polygon (the one big {colour} shape) with a polygon."
        fmt = "Submit its vertices in order around the outline as a JSON list: [[x, y], ...]."
        oracle, answer = ExpectedPolygon(polygon, size, frame="pixels"), _coords([list(p) for p in polygon])
    elif kind == "ocr":
        image, text = text_image(rng, level)
        question = "Read the text written in the image (capital letters, digits and spaces)."
        fmt = "Submit the text exactly as written, words separated by single spaces."
        oracle, answer = ExpectedText(text, casefold=True), text
    else:
        image, chart = chart_image(rng, level)
        tolerance = chart.top * 0.02
        pick = int(rng.integers(0, len(chart.values)))
        meta.update(style=chart.style, label=chart.labels[pick])
        if chart.style == "bar":
            question = f"The image is a bar chart. What is the value of the bar labelled {chart.labels[pick]}?"
        else:
            question = f"The image is a line chart. What is the value of the line at x = {chart.labels[pick]}?"
        fmt = f"Submit the number alone; an answer within {tolerance:g} of the value counts as right."
        oracle = ExpectedAnswer(str(chart.values[pick]), "numeric", rel_tol=0.0, abs_tol=tolerance)
        answer = str(chart.values[pick])
    width, height = size
    prompt = (
        f"The image {IMAGE} ({width}x{height} pixels) is in the working directory and shown below. Coordinates "
        f"are pixels: x from the left edge, y down from the top edge.\n\n{question}\n\n{fmt}"
    )
    return Task(
        id=f"vision/d{level}/s{seed}",
        prompt=prompt,
        oracle=oracle,  # type: ignore[arg-type]
        files={IMAGE: png(image)},
        reference=(ToolCall("ref_0", "submit", {"answer": answer}),),
        difficulty=level,
        metadata=meta,
        images=(IMAGE,),
    )


def task_set() -> ProceduralTaskSet:
    return ProceduralTaskSet("vision", generate, LEVELS)


def judge() -> OracleJudge:
    """Each kind's visual judge, chosen by the task's oracle."""
    return OracleJudge(
        {
            ExpectedCount: CountingJudge(),
            ExpectedBoxes: GroundingJudge(),
            ExpectedPoints: PointingJudge(),
            ExpectedPolygon: SegmentationJudge(),
            ExpectedText: OcrJudge(),
            ExpectedAnswer: AnswerJudge(),
        }
    )
