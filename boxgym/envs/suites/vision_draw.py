"""Drawing the vision suite's images, and knowing exactly what was drawn.

Every picture is built from a seeded :class:`numpy.random.Generator` with Pillow, without
anti-aliasing, so the same seed gives the same pixels, and the truth (boxes, centres, the
polygon, the text, the chart's values) is the geometry that was drawn, never measured back.

The difficulty levels change the picture, not the question:

=====  =========================================================================================
level  picture
=====  =========================================================================================
0      few shapes on white, well apart, upright; black text; a short chart on white
1      clutter: more shapes and distractors, a tinted background with a faint grid, coloured text
2      overlap: shapes may cover each other; Gaussian pixel noise (sigma 10)
3      rotation: shapes, text and charts turned; stronger noise (sigma 18)
=====  =========================================================================================

Text is Pillow's built-in bitmap font (monospaced, 6 x 11 pixels a character) scaled up by
whole pixels, so an agent without vision can read it back by matching that font's glyphs.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "COLOURS",
    "SHAPES",
    "SIZE",
    "Chart",
    "Shape",
    "chart_image",
    "png",
    "polygon_scene",
    "shape_scene",
    "text_image",
]

SIZE = (512, 384)  # width, height of every image
# Hues far apart, so a colour is told by its hue alone (red 0, orange 32, yellow 53, green 134,
# blue 224, purple 279 degrees).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 38, 38),
    "orange": (240, 140, 20),
    "yellow": (225, 200, 20),
    "green": (40, 160, 70),
    "blue": (40, 90, 220),
    "purple": (150, 60, 200),
}
SHAPES = ("circle", "square", "triangle")
NOISE = (0.0, 0.0, 10.0, 18.0)  # sigma of the pixel noise per level
CHARSET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no I/1, O/0: a glyph read is then never ambiguous


@dataclass(frozen=True, slots=True)
class Shape:
    kind: str  # one of SHAPES
    colour: str  # a key of COLOURS
    centre: tuple[float, float]
    radius: float  # half the side of a square, the circumradius of a triangle
    angle: float = 0.0  # degrees, counter-clockwise

    def outline(self) -> tuple[tuple[float, float], ...]:
        """The drawn outline: a 64-gon for a circle."""
        cx, cy = self.centre
        if self.kind == "circle":
            corners, start = 64, 0.0
        elif self.kind == "square":
            corners, start, r = 4, 45.0, self.radius * math.sqrt(2)
            return _ring(cx, cy, r, corners, start + self.angle)
        else:
            corners, start = 3, 90.0
        return _ring(cx, cy, self.radius, corners, start + self.angle)

    def box(self) -> tuple[float, float, float, float]:
        xs, ys = zip(*self.outline())
        return (round(min(xs), 2), round(min(ys), 2), round(max(xs), 2), round(max(ys), 2))


def _ring(cx: float, cy: float, r: float, corners: int, start: float) -> tuple[tuple[float, float], ...]:
    # Image y grows downwards, so a counter-clockwise angle subtracts from y.
    return tuple(
        (cx + r * math.cos(math.radians(start + 360.0 * k / corners)), cy - r * math.sin(math.radians(start + 360.0 * k / corners)))
        for k in range(corners)
    )


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def _background(rng: np.random.Generator, level: int) -> Image.Image:
    if level == 0:
        return Image.new("RGB", SIZE, (255, 255, 255))
    tint = tuple(int(v) for v in rng.integers(232, 252, size=3))
    image = Image.new("RGB", SIZE, tint)
    draw = ImageDraw.Draw(image)
    step = int(rng.integers(28, 48))
    grey = tuple(max(0, v - 22) for v in tint)
    for x in range(step, SIZE[0], step):
        draw.line([(x, 0), (x, SIZE[1])], fill=grey)
    for y in range(step, SIZE[1], step):
        draw.line([(0, y), (SIZE[0], y)], fill=grey)
    return image


def _finish(image: Image.Image, rng: np.random.Generator, level: int) -> Image.Image:
    sigma = NOISE[level]
    if not sigma:
        return image
    pixels = np.asarray(image, np.float64) + rng.normal(0.0, sigma, size=(SIZE[1], SIZE[0], 3))
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def _draw_shape(draw: ImageDraw.ImageDraw, shape: Shape) -> None:
    draw.polygon(shape.outline(), fill=COLOURS[shape.colour])


def _gap(a: Shape, b: Shape) -> float:
    """Distance between the shapes' bounding circles (negative when they may overlap)."""
    return math.dist(a.centre, b.centre) - a.radius * 1.5 - b.radius * 1.5


def _place(rng: np.random.Generator, level: int, count: int, sizes: tuple[int, int], placed: list[Shape]) -> list[Shape]:
    """``count`` random shapes added to ``placed``: apart (levels 0-1) or overlapping up to
    most of the smaller one's radius (levels 2-3); fewer if the picture is full."""
    width, height = SIZE
    shapes = list(placed)
    for _ in range(count):
        for _attempt in range(200):
            radius = float(rng.integers(*sizes))
            margin = radius * 1.5 + 2
            centre = (float(rng.uniform(margin, width - margin)), float(rng.uniform(margin, height - margin)))
            angle = float(rng.uniform(-40, 40)) if level == 3 else 0.0
            kind = SHAPES[int(rng.integers(0, len(SHAPES)))]
            colour = list(COLOURS)[int(rng.integers(0, len(COLOURS)))]
            shape = Shape(kind, colour, (round(centre[0], 1), round(centre[1], 1)), radius, round(angle, 1))
            if all(_gap(shape, other) >= (6.0 if level < 2 else -0.9 * min(radius, other.radius)) for other in shapes):
                shapes.append(shape)
                break
    return shapes[len(placed) :]


def shape_scene(rng: np.random.Generator, level: int) -> tuple[Image.Image, list[Shape]]:
    """Shapes of every colour and kind, drawn in list order (a later one covers an earlier one)."""
    count = int(rng.integers(*((3, 7), (7, 13), (10, 17), (10, 17))[level]))
    sizes = ((16, 26), (11, 22), (11, 22), (12, 22))[level]
    shapes = _place(rng, level, count, sizes, [])
    image = _background(rng, level)
    draw = ImageDraw.Draw(image)
    for shape in shapes:
        _draw_shape(draw, shape)
    return _finish(image, rng, level), shapes


def polygon_scene(rng: np.random.Generator, level: int) -> tuple[Image.Image, str, tuple[tuple[float, float], ...]]:
    """One large convex polygon of one colour among small shapes of other colours (levels 1+)."""
    width, height = SIZE
    colour = list(COLOURS)[int(rng.integers(0, len(COLOURS)))]
    corners = int(rng.integers(5, 9))
    radius = float(rng.uniform(70, 130))
    cx, cy = float(rng.uniform(radius + 10, width - radius - 10)), float(rng.uniform(radius + 10, height - radius - 10))
    angles = np.sort(rng.uniform(0, 2 * math.pi, size=corners))
    # Spread the corners out (at least a third of an even share apart), so the polygon has area.
    angles = np.sort((angles + np.linspace(0, 2 * math.pi, corners, endpoint=False)) / 2)
    radii = rng.uniform(0.75, 1.0, size=corners) * radius
    polygon = tuple((round(cx + r * math.cos(a), 1), round(cy - r * math.sin(a), 1)) for a, r in zip(angles, radii))
    image = _background(rng, level)
    draw = ImageDraw.Draw(image)
    draw.polygon(polygon, fill=COLOURS[colour])
    if level:
        hub = Shape("circle", colour, (cx, cy), radius * 0.9)
        others = _place(rng, level, int(rng.integers(3, 8)), (10, 18), [hub])
        for shape in others:
            if shape.colour != colour and (level >= 2 or _gap(shape, hub) > 0):
                _draw_shape(draw, shape)
    return _finish(image, rng, level), colour, polygon


def random_text(rng: np.random.Generator) -> str:
    words = [
        "".join(CHARSET[int(i)] for i in rng.integers(0, len(CHARSET), size=int(rng.integers(3, 7))))
        for _ in range(int(rng.integers(1, 4)))
    ]
    return " ".join(words)


def _text_block(text: str, scale: int, ink: tuple[int, int, int], paper: tuple[int, int, int]) -> Image.Image:
    font = ImageFont.load_default_imagefont()
    block = Image.new("RGB", (6 * len(text) + 2, 13), paper)
    ImageDraw.Draw(block).text((1, 0), text, font=font, fill=ink)
    return block.resize((block.width * scale, block.height * scale), Image.Resampling.NEAREST)


def text_image(rng: np.random.Generator, level: int) -> tuple[Image.Image, str]:
    text = random_text(rng)
    image = _background(rng, level)
    scale = int(rng.integers(3, 5))
    ink = (20, 20, 20) if level == 0 else COLOURS[list(COLOURS)[int(rng.integers(0, len(COLOURS)))]]
    paper = image.getpixel((0, 0))
    block = _text_block(text, scale, ink, paper)  # type: ignore[arg-type]
    if level == 3:
        block = block.rotate(float(rng.uniform(-6, 6)), resample=Image.Resampling.NEAREST, expand=True, fillcolor=paper)
    x = int(rng.integers(8, max(9, SIZE[0] - block.width - 8)))
    y = int(rng.integers(8, SIZE[1] - block.height - 8))
    image.paste(block, (x, y))
    return _finish(image, rng, level), text


@dataclass(frozen=True, slots=True)
class Chart:
    style: str  # "bar" or "line"
    labels: tuple[str, ...]  # bar labels (A, B, ...) or x values (1, 2, ...)
    values: tuple[int, ...]
    top: int  # the value of the top gridline; gridlines every top / 5


_PLOT = (70, 40, 490, 330)  # left, top, right, bottom of the plot area


def chart_image(rng: np.random.Generator, level: int) -> tuple[Image.Image, Chart]:
    style = "bar" if rng.random() < 0.5 else "line"
    top = int(rng.choice([10, 20, 50, 100, 200, 500]))
    count = int(rng.integers(*((3, 6), (5, 9), (5, 9), (5, 9))[level]))
    values = tuple(int(v) for v in rng.integers(round(top * 0.1), top + 1, size=count))
    labels = tuple(chr(ord("A") + i) for i in range(count)) if style == "bar" else tuple(str(i + 1) for i in range(count))
    chart = Chart(style, labels, values, top)
    image = _background(rng, level) if level else Image.new("RGB", SIZE, (255, 255, 255))
    paper = image.getpixel((0, 0))
    draw = ImageDraw.Draw(image)
    left, up, right, bottom = _PLOT
    for k in range(6):
        y = round(bottom - (bottom - up) * k / 5)
        draw.line([(left, y), (right, y)], fill=(190, 190, 190) if k else (0, 0, 0), width=1 if k else 2)
        label = _text_block(str(top * k // 5), 2, (0, 0, 0), paper)  # type: ignore[arg-type]
        image.paste(label, (left - 6 - label.width, y - 13))
    draw.line([(left, up), (left, bottom)], fill=(0, 0, 0), width=2)
    colour = COLOURS[list(COLOURS)[int(rng.integers(0, len(COLOURS)))]]
    slot = (right - left) / count
    points = []
    for i, (label, value) in enumerate(zip(labels, values)):
        x = left + slot * (i + 0.5)
        y = bottom - (bottom - up) * value / top
        if style == "bar":
            draw.rectangle([round(x - slot * 0.3), round(y), round(x + slot * 0.3), bottom - 1], fill=colour)
        points.append((x, y))
        tag = _text_block(label, 2, (0, 0, 0), paper)  # type: ignore[arg-type]
        image.paste(tag, (round(x - tag.width / 2), bottom + 6))
        draw.line([(round(x), bottom), (round(x), bottom + 4)], fill=(0, 0, 0))
    if style == "line":
        draw.line(points, fill=colour, width=3)
        for x, y in points:
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour)
    if level == 3:
        image = image.rotate(float(rng.uniform(-4, 4)), resample=Image.Resampling.NEAREST, fillcolor=paper)
    return _finish(image, rng, level), chart
