"""A scripted solver of the vision suite that reads only the pixels of ``image.png``.

It is what an agent without vision would write in the ``python`` tool: NumPy over the image,
no knowledge of the generator beyond what a reader of the picture knows (colours by hue,
shapes by how much of their box they fill, the text's font matched glyph by glyph, a chart's
gridlines and labels). :func:`solver_cell` is the IPython cell that solves one task: this
module's own source (it imports only NumPy and Pillow, both in the ``jupyter`` image) followed
by one call that prints ``ANSWER: <answer>``; :func:`read_answer` takes the answer back out of
the cell's output. The same functions run on the host in the unit tests.

What it cannot do, by design of the levels: tell apart objects that overlap (levels 2-3),
read rotated text or charts (level 3), classify rotated squares (level 3).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["read_answer", "solve", "solver_cell"]

HUES = {"red": 0.0, "orange": 32.7, "yellow": 52.7, "green": 134.0, "blue": 224.2, "purple": 279.0}
_GLYPHS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "


def load(path: str = "image.png") -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)


def smooth(img: np.ndarray) -> np.ndarray:
    """3x3 mean, edges repeated: takes the edge off pixel noise."""
    pad = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = img.shape[:2]
    return sum(pad[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)) / 9.0


def hue_sat(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    high, low = img.max(axis=2), img.min(axis=2)
    span = np.where(high > low, high - low, 1.0)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    hue = np.where(high == r, (g - b) / span % 6, np.where(high == g, (b - r) / span + 2, (r - g) / span + 4)) * 60.0
    return hue, np.where(high > 0, (high - low) / np.maximum(high, 1.0), 0.0)


def colour_masks(img: np.ndarray) -> dict[str, np.ndarray]:
    """Each named colour's pixels: saturated, and nearest in hue to that name's hue."""
    hue, sat = hue_sat(smooth(img))
    names = list(HUES)
    centres = np.array([HUES[n] for n in names])
    distance = np.abs((hue[..., None] - centres + 180.0) % 360.0 - 180.0)
    nearest = distance.argmin(axis=2)
    saturated = sat > 0.4
    return {name: saturated & (nearest == i) for i, name in enumerate(names)}


def components(mask: np.ndarray, min_area: int = 25) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 4-connected regions of ``mask`` (their rows and columns), largest first."""
    h, w = mask.shape
    big = h * w
    label = np.where(mask, np.arange(big).reshape(h, w), big)
    while True:
        low = label.copy()
        low[1:] = np.minimum(low[1:], label[:-1])
        low[:-1] = np.minimum(low[:-1], label[1:])
        low[:, 1:] = np.minimum(low[:, 1:], label[:, :-1])
        low[:, :-1] = np.minimum(low[:, :-1], label[:, 1:])
        low = np.where(mask, low, big)
        flat = np.append(low.ravel(), big)
        low = np.where(mask, flat[low], big)  # jump to the label's own label: converges in few rounds
        if np.array_equal(low, label):
            break
        label = low
    found = []
    for value in np.unique(label[mask]):
        rows, cols = np.nonzero(label == value)
        if len(rows) >= min_area:
            found.append((rows, cols))
    return sorted(found, key=lambda rc: -len(rc[0]))


def objects(img: np.ndarray) -> list[dict[str, Any]]:
    """Every coloured object: its colour, shape (by how much of its box it fills), box and centre."""
    found = []
    for colour, mask in colour_masks(img).items():
        for rows, cols in components(mask):
            box = [float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)]
            fill = len(rows) / ((box[2] - box[0]) * (box[3] - box[1]))
            shape = "square" if fill > 0.9 else "circle" if fill > 0.66 else "triangle"
            centre = [round(float(cols.mean()) + 0.5, 1), round(float(rows.mean()) + 0.5, 1)]
            found.append({"colour": colour, "shape": shape, "box": box, "centre": centre})
    return found


def hull(points: np.ndarray) -> list[list[float]]:
    """Convex hull (monotone chain), counter-clockwise."""
    pts = sorted(set(map(tuple, points.tolist())))

    def half(seq: list[tuple[float, float]]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for p in seq:
            while len(out) >= 2 and (out[-1][0] - out[-2][0]) * (p[1] - out[-2][1]) - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0]) <= 0:
                out.pop()
            out.append(p)
        return out

    return [list(p) for p in half(pts)[:-1] + half(pts[::-1])[:-1]]


def outline(img: np.ndarray, colour: str) -> list[list[float]]:
    rows, cols = components(colour_masks(img)[colour])[0]
    edge = []  # the outer corners of the region's pixels, so the hull encloses them all
    for dy in (0, 1):
        for dx in (0, 1):
            edge.append(np.stack([cols + dx, rows + dy], axis=1))
    return hull(np.concatenate(edge).astype(float))


def _templates() -> dict[str, np.ndarray]:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default_imagefont()
    out = {}
    for ch in _GLYPHS:
        cell = Image.new("L", (6, 13), 255)
        ImageDraw.Draw(cell).text((0, 0), ch, font=font, fill=0)
        out[ch] = np.asarray(cell) < 128
    return out


def ink(img: np.ndarray) -> np.ndarray:
    """Pixels far from the background colour (the median of the border)."""
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    paper = np.median(border, axis=0)
    raw = np.sqrt(((img - paper) ** 2).sum(axis=2)) > 80
    # A speck of noise has few inked neighbours; a corner of a stroke two pixels wide has three.
    near = smooth(raw[..., None].astype(np.float64))[..., 0] * 9
    return raw & (near >= 3.5)


def read_text(mask: np.ndarray) -> str:
    """The line of text in ``mask`` (ink pixels), matched against the bitmap font's glyphs
    at every whole-pixel scale: the reading that fits best."""
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return ""
    top, left, right = rows.min(), cols.min(), cols.max()
    glyphs = _templates()
    best: tuple[float, str] = (float("inf"), "")
    for scale in range(1, 7):
        for first_row in (2, 3):  # digits start on font row 2, capitals on row 3
            y0, x0 = top - first_row * scale, left
            cells = int(np.ceil((right + 1 - x0) / (6 * scale)))
            ys = y0 + np.arange(13) * scale
            xs = x0 + np.arange(6 * cells) * scale
            if ys.min() < 0 or ys.max() + scale > mask.shape[0] or xs.max() + scale > mask.shape[1]:
                continue
            grid = np.zeros((13, 6 * cells), bool)
            for i, y in enumerate(ys):
                band = mask[y : y + scale, x0 : x0 + 6 * cells * scale]
                grid[i] = band.reshape(scale, 6 * cells, scale).mean(axis=(0, 2)) > 0.5
            text, error = "", 0.0
            for c in range(cells):
                cell = grid[:, 6 * c : 6 * c + 6]
                ch, miss = min(((g, int((cell != t).sum())) for g, t in glyphs.items()), key=lambda gm: gm[1])
                text, error = text + ch, error + miss
            covered = mask[y0 : y0 + 13 * scale, x0 : x0 + 6 * cells * scale].sum()
            error = (error * scale * scale + (mask.sum() - covered)) / max(1, mask.sum())
            if error < best[0]:
                best = (error, " ".join(text.split()))
    return best[1]


def read_chart(img: np.ndarray, label: str, style: str) -> float:
    dark = img.max(axis=2) < 90
    grey = (np.abs(img - 190).max(axis=2) < 14) & ~dark
    axis_rows = np.nonzero(dark.sum(axis=1) > img.shape[1] * 0.5)[0]
    axis_cols = np.nonzero(dark.sum(axis=0) > img.shape[0] * 0.4)[0]
    grid_rows = np.nonzero(grey.sum(axis=1) > img.shape[1] * 0.4)[0]
    bottom, y_axis = axis_rows.max(), axis_cols.min()
    zero, top = int(axis_rows.min()), int(grid_rows.min())  # bars may hide the gridlines between
    top_value = float(read_text(ink(img[top - 14 : top + 14, : y_axis - 2])).replace(" ", ""))
    per_pixel = top_value / (zero - top)
    ticks = np.nonzero(dark[bottom + 2] & (np.arange(img.shape[1]) > y_axis + 3))[0]
    index = ord(label) - ord("A") if style == "bar" else int(label) - 1
    column = int(ticks[index])
    saturated = hue_sat(img)[1][:, column] > 0.4
    rows = np.nonzero(saturated[: bottom - 2])[0]
    y = rows.min() if style == "bar" else rows.mean() + 0.5
    return round((zero - y) * per_pixel, 1)


def solve(img: np.ndarray, meta: Mapping[str, Any]) -> str:
    """The answer to a task of ``meta["kind"]``, from the pixels and the question's parameters."""
    kind = meta["kind"]
    if kind in ("count", "box", "point"):
        chosen = [
            o for o in objects(img)
            if meta.get("colour") in (None, o["colour"]) and meta.get("shape") in (None, o["shape"])
        ]
        if kind == "count":
            return str(len(chosen))
        return json.dumps([o["box" if kind == "box" else "centre"] for o in chosen])
    if kind == "polygon":
        return json.dumps(outline(img, meta["colour"]))
    if kind == "ocr":
        return read_text(ink(img))
    return f"{read_chart(img, meta['label'], meta['style']):g}"


def solver_cell(meta: Mapping[str, Any], path: str = "image.png") -> str:
    """The IPython cell that solves a task with this module's code: prints ``ANSWER: ...``."""
    question = {k: meta.get(k) for k in ("kind", "colour", "shape", "label", "style")}
    # A __future__ import is only allowed first in a cell, and the kernel needs none.
    source = Path(__file__).read_text(encoding="utf-8").replace("from __future__ import annotations\n", "")
    return f"{source}\n\nprint('ANSWER: ' + solve(load({path!r}), {question!r}))\n"


def read_answer(output: str) -> str | None:
    """The answer a :func:`solver_cell` printed, or None if it printed none."""
    for line in reversed(output.splitlines()):
        if line.startswith("ANSWER: "):
            return line[len("ANSWER: ") :]
    return None
