"""Images in observations: find them, and compare two by perceptual distance.

An observation may carry images as OpenAI content parts (``{"type": "image_url", "image_url":
{"url": "data:image/png;base64,..."}}``). Two screenshots of the same page are rarely equal byte
for byte (a caret blinks, a clock ticks, the encoder differs), so :func:`perceptual_distance`
compares what they look like: a 16x16 difference hash of each (the sign of the brightness step
between neighbouring cells of a 17x16 grid of block means), and the share of its 256 bits that
differ. Unrelated images land near 0.5, the same image re-encoded near 0.

PNG is decoded here with zlib and NumPy (8-bit grey, grey+alpha, RGB and RGBA, not
interlaced: what browsers and X servers write), so no imaging library is needed. An image of
another format is compared byte for byte.
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["decode_png", "image_parts", "perceptual_distance", "image_bytes"]

_PNG = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> channels


def image_parts(content: Any) -> Iterator[dict[str, Any]]:
    """The image parts of a message's content (a list of OpenAI content parts)."""
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") in ("image_url", "input_image", "image"):
                yield part


def image_bytes(part: dict[str, Any]) -> bytes | None:
    """The bytes of an inline (``data:`` URL) image part; None for a reference elsewhere."""
    ref = part.get("image_url")
    url = ref.get("url") if isinstance(ref, dict) else ref if isinstance(ref, str) else part.get("url")
    if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
        return None
    try:
        return base64.b64decode(url.split(";base64,", 1)[1], validate=False)
    except ValueError:
        return None


def _unfilter(raw: bytes, width: int, height: int, bpp: int) -> np.ndarray:
    """Undo PNG's per-row filters. None, Sub and Up are vectorised; Average and Paeth depend on
    the byte to the left as it is being rebuilt, so they run byte by byte (on plain ints)."""
    stride = width * bpp
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    pos = 0
    for y in range(height):
        kind = raw[pos]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=pos + 1)
        pos += stride + 1
        if kind == 0:
            cur = line
        elif kind == 1:
            cur = (np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.int64) & 0xFF).astype(np.uint8).ravel()
        elif kind == 2:
            cur = line + prev  # uint8 wraps modulo 256, as the filter wants
        elif kind in (3, 4):
            cur = np.frombuffer(_sequential(kind, line.tobytes(), prev.tobytes(), bpp), dtype=np.uint8)
        else:
            raise ValueError(f"unknown PNG filter {kind}")
        out[y] = cur
        prev = out[y]
    return out


def _sequential(kind: int, line: bytes, prev: bytes, bpp: int) -> bytearray:
    cur = bytearray(len(line))
    for x, value in enumerate(line):
        left = cur[x - bpp] if x >= bpp else 0
        up = prev[x]
        if kind == 3:
            pred = (left + up) >> 1
        else:
            upleft = prev[x - bpp] if x >= bpp else 0
            p = left + up - upleft
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
            pred = left if pa <= pb and pa <= pc else up if pb <= pc else upleft
        cur[x] = (value + pred) & 0xFF
    return cur


def decode_png(data: bytes) -> np.ndarray:
    """A PNG as a float array of brightness (height x width, 0..255). ValueError if unsupported."""
    if not data.startswith(_PNG):
        raise ValueError("not a PNG")
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ValueError("a PNG without a header")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in _CHANNELS or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {colour}, interlace {interlace})")
    channels = _CHANNELS[colour]
    pixels = _unfilter(zlib.decompress(b"".join(idat)), width, height, channels).reshape(height, width, channels)
    rgb = pixels[..., :3] if channels >= 3 else pixels[..., :1]
    return rgb.astype(np.float64).mean(axis=2)


def _hash(grey: np.ndarray) -> np.ndarray:
    """A 16x16 difference hash: block means on a 17x16 grid, then left-right brightness steps."""
    h, w = grey.shape
    rows = np.linspace(0, h, 17).astype(int)
    cols = np.linspace(0, w, 18).astype(int)
    grid = np.zeros((16, 17))
    for i in range(16):
        for j in range(17):
            block = grey[rows[i] : max(rows[i + 1], rows[i] + 1), cols[j] : max(cols[j + 1], cols[j] + 1)]
            grid[i, j] = block.mean() if block.size else 0.0
    return (grid[:, 1:] > grid[:, :-1]).ravel()


def perceptual_distance(a: bytes, b: bytes) -> float:
    """0.0 (look the same) .. 1.0; byte equality (0.0 or 1.0) for images that are not PNG."""
    if a == b:
        return 0.0
    try:
        ha, hb = _hash(decode_png(a)), _hash(decode_png(b))
    except (ValueError, zlib.error, struct.error, IndexError):
        return 1.0
    return float(np.count_nonzero(ha != hb)) / ha.size
