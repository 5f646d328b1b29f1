"""Screenshots without an X client: Xvfb's framebuffer file, read as data and written as a PNG.

Xvfb started with ``-fbdir DIR`` keeps its screen in ``DIR/Xvfb_screen0``, an XWD image (a header,
a colour map, then the pixels) that it updates as it draws. Reading that file is the screenshot:
no connection to the display, no process of the agent's involved, nothing run as root on the
display, and it costs a file read. The PNG is written with the standard library (the tool server
imports nothing else): 8-bit RGB, no row filter, zlib level 1, which on application screens
(large flat areas) is small and takes a few milliseconds.
"""

from __future__ import annotations

import os
import struct
import zlib

__all__ = ["FramebufferError", "png_of_framebuffer", "png_rgb"]

_HEADER = struct.Struct(">25I")
_ZLIB_LEVEL = 1


class FramebufferError(Exception):
    """The framebuffer file is not an XWD image this module reads (a bug of its caller, or Xvfb gone)."""


def _read(path: str) -> bytes:
    # The directory is the display user's and only root and that user may enter it; O_NOFOLLOW
    # all the same, and a size check, so that nothing but Xvfb's own file is ever read whole.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        size = os.fstat(fd).st_size
        if size > 256 << 20:
            raise FramebufferError(f"{path}: {size} bytes is no screen this plugin started")
        chunks, got = [], 0
        while got < size:
            chunk = os.read(fd, size - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def png_of_framebuffer(path: str) -> tuple[bytes, int, int]:
    """``(png, width, height)`` of the 24-bit TrueColor XWD file Xvfb writes."""
    data = _read(path)
    if len(data) < _HEADER.size:
        raise FramebufferError(f"{path}: {len(data)} bytes, shorter than an XWD header")
    (header_size, _version, _format, depth, width, height, _xoffset, byte_order, _unit, _bit_order, _pad,
     bits_per_pixel, bytes_per_line, _visual, red_mask, green_mask, blue_mask, _bits_rgb, _entries, ncolors,
     *_window) = _HEADER.unpack_from(data)  # fmt: skip
    if bits_per_pixel != 32 or depth != 24 or (red_mask, green_mask, blue_mask) != (0xFF0000, 0xFF00, 0xFF):
        raise FramebufferError(f"{path}: a {depth}-bit screen of {bits_per_pixel} bits per pixel is not read here")
    start = header_size + ncolors * 12
    if len(data) < start + bytes_per_line * height or bytes_per_line < width * 4:
        raise FramebufferError(f"{path}: {len(data)} bytes cannot hold a {width}x{height} screen")
    end = start + bytes_per_line * height
    if bytes_per_line != width * 4:  # rows padded: drop the padding first
        data = b"".join(data[r : r + width * 4] for r in range(start, end, bytes_per_line))
        start, end = 0, width * 4 * height
    # Each 32-bit pixel is 0x00RRGGBB in the file's byte order: B, G, R, pad in LSBFirst (0).
    red, green, blue = (2, 1, 0) if byte_order == 0 else (1, 2, 3)
    rgb = bytearray(width * height * 3)
    # Strided slices of bytes, not of a memoryview: the same copy, three times faster.
    rgb[0::3] = data[start + red : end : 4]
    rgb[1::3] = data[start + green : end : 4]
    rgb[2::3] = data[start + blue : end : 4]
    return png_rgb(rgb, width, height), width, height


def png_rgb(rgb: bytes | bytearray, width: int, height: int) -> bytes:
    """A PNG of 8-bit RGB rows, top to bottom."""
    stride = width * 3
    view = memoryview(rgb)
    # Filter type 0 ("none") before every row: one byte, then the row as it is.
    raw = b"".join(b"\x00" + view[r * stride : (r + 1) * stride] for r in range(height))
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)),
            _chunk(b"IDAT", zlib.compress(raw, _ZLIB_LEVEL)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
