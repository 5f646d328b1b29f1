"""Screenshots without an X client: Xvfb's framebuffer file, read as data and written as a PNG.

Xvfb started with ``-fbdir DIR`` keeps its screen in ``DIR/Xvfb_screen0``, an XWD image (a header,
a colour map, then the pixels) that it maps into memory and draws into. Mapping the same file is
the screenshot: no connection to the display, no process of the agent's involved, nothing run as
root on the display. The PNG is written with the standard library (the tool server imports
nothing else): 8-bit RGB, no row filter, zlib level 1, which on application screens (large flat
areas) is small and quick.

The work is done row by row into one buffer kept for the display's life: the server returns large
freed blocks to the kernel at once (``server._return_freed_memory``), so a few megabytes allocated
per screenshot would be page-faulted in anew every time (measured: 6 ms a 1280x800 screenshot this
way, 16-35 ms with whole-frame buffers under the server's allocator settings).
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib

__all__ = ["Framebuffer", "FramebufferError", "png_chunks"]

_HEADER = struct.Struct(">25I")
_ZLIB_LEVEL = 1
_MAX_SIZE = 256 << 20


class FramebufferError(Exception):
    """The file is not the 24-bit XWD screen Xvfb writes (a bug of the caller, or no Xvfb)."""


class Framebuffer:
    """Xvfb's screen file, mapped; :meth:`png` is the screen now."""

    def __init__(self, path: str) -> None:
        # The directory is the display user's and only that user and root may enter it;
        # O_NOFOLLOW all the same, so that nothing but Xvfb's own file is ever mapped.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            size = os.fstat(fd).st_size
            if not _HEADER.size <= size <= _MAX_SIZE:
                raise FramebufferError(f"{path}: {size} bytes is no screen of this plugin's")
            self._map = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        (header_size, _version, _format, depth, width, height, _xoffset, byte_order, _unit, _bit_order, _pad,
         bits_per_pixel, self._stride, _visual, red_mask, green_mask, blue_mask, _bits_rgb, _entries, ncolors,
         *_window) = _HEADER.unpack_from(self._map)  # fmt: skip
        if bits_per_pixel != 32 or depth != 24 or (red_mask, green_mask, blue_mask) != (0xFF0000, 0xFF00, 0xFF):
            self.close()
            raise FramebufferError(f"{path}: a {depth}-bit screen of {bits_per_pixel} bits per pixel is not read here")
        self._start = header_size + ncolors * 12
        if size < self._start + self._stride * height or self._stride < width * 4:
            self.close()
            raise FramebufferError(f"{path}: {size} bytes cannot hold a {width}x{height} screen")
        self.width, self.height = width, height
        # Each 32-bit pixel is 0x00RRGGBB in the file's byte order: B, G, R, pad when LSBFirst (0).
        self._channels = (2, 1, 0) if byte_order == 0 else (1, 2, 3)
        # The PNG's raw data: each row is a filter byte (0: none) and the row's RGB bytes.
        self._raw = bytearray(height * (1 + 3 * width))

    def png(self) -> bytes:
        width, stride, raw = self.width, self._stride, self._raw
        red, green, blue = self._channels
        span = 3 * width
        for row in range(self.height):
            start = self._start + row * stride
            pixels = self._map[start : start + 4 * width]
            at = row * (span + 1) + 1
            raw[at : at + span : 3] = pixels[red::4]
            raw[at + 1 : at + span : 3] = pixels[green::4]
            raw[at + 2 : at + span : 3] = pixels[blue::4]
        return png_chunks(width, self.height, zlib.compress(raw, _ZLIB_LEVEL))

    def close(self) -> None:
        self._map.close()


def png_chunks(width: int, height: int, compressed_rows: bytes) -> bytes:
    """A PNG of 8-bit RGB from its zlib-compressed, filtered rows."""
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)),
            _chunk(b"IDAT", compressed_rows),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
