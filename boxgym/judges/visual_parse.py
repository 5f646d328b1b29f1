"""Reading boxes, points, polygons, text and counts out of what vision models answer.

Models write coordinates in many shapes; these functions accept the common ones and turn
them into pixels of the image they are about:

* JSON, bare or in a Markdown fence: ``[[x1, y1, x2, y2], ...]``, ``[x1, y1, x2, y2]``,
  ``[{"bbox_2d": [...], "label": "cat"}]`` (also ``bbox``, ``box``, ``boxes``,
  ``point_2d``, ``point``, ``points``, ``polygon``, ``vertices``, ``coordinates`` and
  ``{"x1": .., "y1": .., "x2": .., "y2": ..}`` / ``{"x": .., "y": ..}`` objects);
* tags: ``<box>(x1,y1),(x2,y2)</box>``, ``<box>x1 y1 x2 y2</box>``, ``<bbox>...</bbox>``,
  ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>``, ``<point>x y</point>``;
* plain pairs anywhere in the text: ``(x1,y1),(x2,y2)``; two pairs make a box.

They are tried in that order: tags first, then JSON, then pairs. A reasoning block
(``<think>...</think>``) is removed first, so coordinates the model thought about and
discarded are not read.

Coordinate frames (:data:`Frame`): ``"pixels"``, ``"norm1000"`` (0–1000 across each axis,
the Qwen-VL convention), ``"norm1"`` (0–1), or ``"auto"``, which decides per answer:

1. every value in [0, 1] and one of them fractional: ``norm1``;
2. a tag format (``<box>``, ``<|box_start|>``, ``<point>``), every value <= 1000: ``norm1000``;
3. every x <= width and every y <= height: ``pixels``;
4. every value <= 1000: ``norm1000``;
5. otherwise the answer is malformed (it fits no frame).

A task that tells the model its frame should state it in its oracle instead of ``"auto"``
(on a 1000×1000 image the two agree anyway).

An answer that cannot be read is not an exception: every parser returns a
:class:`Malformed` with the reason, which the judges turn into a reward of 0.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterator
from typing import Any, Literal

from .base import Malformed

__all__ = [
    "Box",
    "Frame",
    "Malformed",
    "MAX_ANSWER_CHARS",
    "MAX_ITEMS",
    "Point",
    "normalise_text",
    "parse_boxes",
    "parse_count",
    "parse_points",
    "parse_polygon",
    "parse_text",
]

Frame = Literal["auto", "pixels", "norm1000", "norm1"]
Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels, x1 <= x2 and y1 <= y2
Point = tuple[float, float]  # x, y in pixels

MAX_ANSWER_CHARS = 100_000  # longer answers are refused before any regular expression runs
MAX_ITEMS = 1_000  # boxes, points or polygon vertices in one answer
_JSON_ATTEMPTS = 256  # places a JSON value may start; bounds the work on an answer of brackets
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER = re.compile(_NUM)
_PAIR = re.compile(rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\)")
_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
# Tag contents exclude "<" so that an answer of many unclosed tags is read in linear time.
_BOX_TAGS = re.compile(r"<\|box_start\|>([^<]*)<\|box_end\|>|<box>([^<]*)</box>|<bbox>([^<]*)</bbox>", re.IGNORECASE)
_POINT_TAGS = re.compile(r"<point>([^<]*)</point>", re.IGNORECASE)
_POLYGON_TAGS = re.compile(r"<polygon>([^<]*)</polygon>", re.IGNORECASE)
_BOX_KEYS = ("bbox_2d", "bbox", "box", "boxes", "bboxes", "coordinates")
_POINT_KEYS = ("point_2d", "point", "points", "coordinates")
_POLYGON_KEYS = ("polygon", "points", "vertices", "coordinates")

Kind = Literal["box", "point", "polygon"]


def _strip(answer: str) -> str | Malformed:
    if not isinstance(answer, str):
        return Malformed(f"the answer is a {type(answer).__name__}, not text")
    if len(answer) > MAX_ANSWER_CHARS:
        return Malformed(f"the answer has {len(answer)} characters; at most {MAX_ANSWER_CHARS} are read")
    return _THINK.sub(" ", answer)


def _finite(values: list[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def _numbers(text: str) -> list[float]:
    return [float(n) for n in _NUMBER.findall(text)]


# -- JSON ------------------------------------------------------------------------


def _json_values(text: str) -> Iterator[Any]:
    """Every JSON array or object in ``text``: the fenced blocks first, then the text itself."""
    blocks = [m.group(1) for m in _FENCE.finditer(text)] or [text]
    decoder = json.JSONDecoder()
    attempts = 0
    for block in blocks:
        i = 0
        while attempts < _JSON_ATTEMPTS:
            starts = [p for p in (block.find("[", i), block.find("{", i)) if p >= 0]
            if not starts:
                break
            i = min(starts)
            attempts += 1
            try:
                value, end = decoder.raw_decode(block, i)
            except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
                i += 1
                continue
            yield value
            i = end


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _collect(value: Any, kind: Kind, out: list[list[float]], depth: int = 0) -> None:
    """Coordinate groups in a decoded JSON value: 4 numbers a box, 2 a point, pairs a polygon."""
    if depth > 8:
        return
    if isinstance(value, dict):
        keys = {"box": _BOX_KEYS, "point": _POINT_KEYS, "polygon": _POLYGON_KEYS}[kind]
        for key in keys:
            if key in value:
                _collect(value[key], kind, out, depth + 1)
                return
        named = ("x1", "y1", "x2", "y2") if kind == "box" else ("x", "y")
        if kind != "polygon" and all(_is_number(value.get(k)) for k in named):
            out.append([float(value[k]) for k in named])
        return
    if not isinstance(value, list) or not value:
        return
    if all(_is_number(v) for v in value):
        out.append([float(v) for v in value])  # a wrong count of numbers is named by the arity check
        return
    if kind == "polygon" and all(isinstance(v, list) and len(v) == 2 and all(map(_is_number, v)) for v in value):
        out.append([float(c) for v in value for c in v])  # [[x, y], ...] is one polygon
        return
    for item in value:
        _collect(item, kind, out, depth + 1)


def _from_json(text: str, kind: Kind) -> list[list[float]] | None:
    """The first JSON value's coordinate groups; ``[]`` for an explicit empty list (no objects)."""
    empty = False
    for value in _json_values(text):
        groups: list[list[float]] = []
        _collect(value, kind, groups)
        if groups:
            return groups
        empty = empty or value == [] or (isinstance(value, dict) and any(v == [] for v in value.values()))
    return [] if empty else None


# -- the three sources, in order --------------------------------------------------


def _groups(text: str, kind: Kind) -> tuple[list[list[float]], bool] | Malformed:
    """The coordinate groups of the answer and whether they came from tags (a frame hint)."""
    tags = {"box": _BOX_TAGS, "point": _POINT_TAGS, "polygon": _POLYGON_TAGS}[kind]
    tagged = ["".join(g for g in m.groups() if g) for m in tags.finditer(text)]
    if tagged:
        return [_numbers(t) for t in tagged], True
    found = _from_json(text, kind)
    if found is not None:
        return found, False
    pairs = [[float(x), float(y)] for x, y in _PAIR.findall(text)]
    if pairs:
        if kind == "point":
            return pairs, False
        if kind == "polygon":
            return [[c for p in pairs for c in p]], False
        if len(pairs) % 2:
            return Malformed(f"{len(pairs)} coordinate pairs: boxes need two each, (x1,y1),(x2,y2)")
        return [pairs[i] + pairs[i + 1] for i in range(0, len(pairs), 2)], False
    what = {"box": "boxes", "point": "points", "polygon": "polygon"}[kind]
    return Malformed(f"no {what} found: give JSON, tags or (x,y) pairs")


def _frame(groups: list[list[float]], frame: Frame, size: tuple[int, int], tagged: bool) -> Frame | Malformed:
    if frame != "auto":
        return frame
    values = [v for g in groups for v in g]
    xs = [v for g in groups for v in g[0::2]]
    ys = [v for g in groups for v in g[1::2]]
    if all(0.0 <= v <= 1.0 for v in values) and any(v != int(v) for v in values):
        return "norm1"
    within_1000 = all(0.0 <= v <= 1000.0 for v in values)
    if tagged and within_1000:
        return "norm1000"
    width, height = size
    if all(x <= width for x in xs) and all(y <= height for y in ys):
        return "pixels"
    if within_1000:
        return "norm1000"
    return Malformed(f"the coordinates fit neither the {width}x{height} image in pixels nor 0-1000")


def _to_pixels(group: list[float], frame: Frame, size: tuple[int, int]) -> list[float]:
    if frame == "pixels":
        return group
    scale = 1000.0 if frame == "norm1000" else 1.0
    width, height = size
    return [v / scale * (width if i % 2 == 0 else height) for i, v in enumerate(group)]


def _read(answer: str, kind: Kind, size: tuple[int, int], frame: Frame) -> list[list[float]] | Malformed:
    text = _strip(answer)
    if isinstance(text, Malformed):
        return text
    found = _groups(text, kind)
    if isinstance(found, Malformed):
        return found
    groups, tagged = found
    arity = {"box": 4, "point": 2}.get(kind)
    for group in groups:
        if arity is not None and len(group) != arity:
            return Malformed(f"a {kind} needs {arity} numbers, got {len(group)}: {group[:8]}")
        if not _finite(group):
            return Malformed(f"a {kind} has a coordinate that is not a finite number")
    count = len(groups) if kind != "polygon" else sum(len(g) // 2 for g in groups)
    if count > MAX_ITEMS:
        what = {"box": "boxes", "point": "points", "polygon": "polygon vertices"}[kind]
        return Malformed(f"{count} {what}; at most {MAX_ITEMS} are read")
    chosen = _frame(groups, frame, size, tagged)
    if isinstance(chosen, Malformed):
        return chosen
    return [_to_pixels(g, chosen, size) for g in groups]


def parse_boxes(answer: str, size: tuple[int, int], frame: Frame = "auto") -> tuple[Box, ...] | Malformed:
    """The boxes in ``answer``, in pixels of an image of ``size`` (width, height).

    Corners may come in either order; each box is returned as (left, top, right, bottom).
    An answer that explicitly holds no boxes (``[]``) is an empty tuple.
    """
    groups = _read(answer, "box", size, frame)
    if isinstance(groups, Malformed):
        return groups
    return tuple((min(g[0], g[2]), min(g[1], g[3]), max(g[0], g[2]), max(g[1], g[3])) for g in groups)


def parse_points(answer: str, size: tuple[int, int], frame: Frame = "auto") -> tuple[Point, ...] | Malformed:
    """The points in ``answer``, in pixels of an image of ``size`` (width, height)."""
    groups = _read(answer, "point", size, frame)
    if isinstance(groups, Malformed):
        return groups
    return tuple((g[0], g[1]) for g in groups)


def parse_polygon(answer: str, size: tuple[int, int], frame: Frame = "auto") -> tuple[Point, ...] | Malformed:
    """The one polygon in ``answer`` (its vertices in order, in pixels). Several is malformed."""
    groups = _read(answer, "polygon", size, frame)
    if isinstance(groups, Malformed):
        return groups
    if len(groups) != 1:
        return Malformed(f"{len(groups)} polygons; give exactly one" if groups else "the polygon is empty")
    [flat] = groups
    if len(flat) % 2:
        return Malformed(f"a polygon needs (x, y) pairs; got {len(flat)} numbers")
    return tuple((flat[i], flat[i + 1]) for i in range(0, len(flat), 2))


# -- text and counts -----------------------------------------------------------------

_ANSWER_TAG = re.compile(r"<answer>((?:(?!</?answer>).)*)</answer>", re.DOTALL | re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_QUOTES = ('"', "'", "`", "\u201c\u201d", "\u2018\u2019")


def parse_text(answer: str) -> str | Malformed:
    """The text an OCR answer gives: inside ``<answer>`` tags or a fence if present, unquoted.

    Not normalised here; see :func:`normalise_text`.
    """
    text = _strip(answer)
    if isinstance(text, Malformed):
        return text
    tagged = _ANSWER_TAG.findall(text)
    if tagged:
        text = tagged[-1]
    else:
        fenced = _FENCE.findall(text)
        if len(fenced) == 1:
            text = fenced[0]
    text = text.strip()
    for quote in _QUOTES:
        opening, closing = (quote, quote) if len(quote) == 1 else (quote[0], quote[1])
        if len(text) >= 2 and text.startswith(opening) and text.endswith(closing):
            text = text[1:-1]
            break
    return text


def normalise_text(text: str, *, casefold: bool = False) -> str:
    """Unicode NFKC, every run of whitespace one space, no space at either end; casefolded if asked.

    NFKC makes ligatures, full-width forms and compatibility characters compare as the
    plain letters they show (``ﬁ`` is ``fi``), so a reading is not penalised for a code
    point the image cannot show.
    """
    text = " ".join(unicodedata.normalize("NFKC", text).split())
    return text.casefold() if casefold else text


_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
}
_LABELLED = re.compile(
    rf"(?:answer|count|total|number|there (?:are|is))\s*(?:is|=|:)?\s*\**\s*({_NUM}|{'|'.join(_WORDS)})\b",
    re.IGNORECASE,
)
_INTEGER_TOKEN = re.compile(rf"(?<![\w.]){_NUM}(?![\w.])|\b(?:{'|'.join(_WORDS)})\b", re.IGNORECASE)


def _as_count(token: str) -> int | Malformed:
    token = token.strip().lower()
    if token in _WORDS:
        return _WORDS[token]
    try:
        value = float(token)
    except ValueError:
        return Malformed(f"{token!r} is not a number")
    if not math.isfinite(value) or value != int(value) or value < 0:
        return Malformed(f"{token} is not a count (a whole number >= 0)")
    return int(value)


def parse_count(answer: str) -> int | Malformed:
    """The count an answer gives, in this order of preference:

    ``\\boxed{n}``; ``<answer>n</answer>``; JSON ``{"count": n}``; a labelled number
    (``answer: n``, ``count = n``, ``total n``, ``there are n``; the last one); else the
    only number in the answer (digits, or a word from zero to twenty). Several unlabelled
    numbers are malformed: the answer must say which one it means.
    """
    text = _strip(answer)
    if isinstance(text, Malformed):
        return text
    for pattern in (_BOXED, _ANSWER_TAG):
        found = pattern.findall(text)
        if found:
            return _as_count(found[-1])
    for value in _json_values(text):
        if isinstance(value, dict) and _is_number(value.get("count")):
            return _as_count(str(value["count"]))
    labelled = _LABELLED.findall(text)
    if labelled:
        return _as_count(labelled[-1])
    tokens = _INTEGER_TOKEN.findall(text)
    if len(tokens) == 1:
        return _as_count(tokens[0])
    if not tokens:
        return Malformed("no number found in the answer")
    return Malformed(f"{len(tokens)} numbers in the answer and none labelled; give one count")
