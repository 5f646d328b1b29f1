"""Wire format between the host and the in-container tool server.

Frames over a Unix stream socket: a 4-byte big-endian length, then that many
bytes of UTF-8 JSON. One connection carries many calls at once; each request
has an integer ``id`` that its response repeats.

    request   {"id": 7, "op": "exec", "args": {...}}
    cancel    {"id": 8, "op": "cancel", "args": {"target": 7}}   (no response)
    response  {"id": 7, "ok": true, "result": ...}
    error     {"id": 7, "ok": false, "error": {"type": "refused", "message": "..."}}

Error types: ``refused`` (the request cannot be served as asked; its
``reason`` names why, one of :data:`REFUSALS`), ``busy`` (an exclusive
operation is already running), ``not_found`` (a path does not exist),
``timeout`` (an operation's own deadline passed), ``wrecked`` (the agent's
processes left the sandbox unusable and they could not be killed),
``unavailable`` (a plugin's tool cannot run: its kernel or browser does not
start), ``internal`` (a bug in the server or a plugin). Bytes travel as base64 strings in fields
ending in ``_b64``. Frames are JSON with every non-ASCII character escaped, so
a string that is not valid Unicode (a lone surrogate) still travels.

This module is shared by the host client and the server, and uses only the
standard library (the server runs on the image's bare python3).
"""

from __future__ import annotations

import json
import struct

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024  # a frame larger than this is a protocol error
VERSION = "2"

ERROR_TYPES = ("refused", "busy", "not_found", "timeout", "wrecked", "unavailable", "internal")

#: Why a request was refused (the ``reason`` of a ``refused`` error).
REFUSALS = (
    "bad_request",  # malformed arguments, an unknown operation or user
    "bad_name",  # a path that is empty, holds a NUL, or is not valid Unicode (a lone surrogate)
    "bad_content",  # data that is not valid Unicode where text was given
    "not_regular",  # a FIFO, socket or device where a regular file is needed
    "is_directory",
    "not_directory",  # a path component that is a file
    "exists",
    "symlink",  # a root-side operation met a symlink it does not follow (one not owned by root)
    "too_large",  # a read, write, listing or command over its limit (the message says how to split it)
    "read_only",  # a read-only file system
    "no_space",  # the file system (a tmpfs of the sandbox) is full
    "name_too_long",
    "permission",
    "pids_exhausted",  # a command cannot start: the sandbox's process limit is reached
    "os_error",  # any other error of the operating system (the message names it)
)

#: The most a ``read_file`` returns in one answer, and the most a ``write_file`` or a command's
#: stdin carries: far enough below MAX_FRAME that base64 and JSON fit. Larger files are read in
#: parts (``offset``, ``max_bytes``).
READ_LIMIT = 4 * 1024 * 1024
WRITE_LIMIT = 16 * 1024 * 1024
#: The most output one command keeps per stream (``max_output`` is capped to it).
OUTPUT_LIMIT = 8 * 1024 * 1024

#: Stands where command output was cut; ``omitted`` is the number of bytes left out.
TRUNCATION_MARKER = "[... boxgym: output truncated, {omitted} bytes omitted ...]"


class ProtocolError(Exception):
    """The peer sent something that is not a frame of this protocol."""


def encode(message: dict) -> bytes:
    return b"".join(encode_parts(message))


def encode_parts(message: dict) -> tuple[bytes, bytes]:
    """The frame as (header, body), for a writer that takes them without joining (one copy less)."""
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds {MAX_FRAME}")
    return HEADER.pack(len(body)), body


async def read_frame(reader) -> dict | None:
    """Read one frame from an asyncio StreamReader; None at a clean end of stream."""
    try:
        header = await reader.readexactly(HEADER.size)
    except Exception as exc:  # IncompleteRead at EOF
        if getattr(exc, "partial", None) == b"":
            return None
        raise
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes exceeds {MAX_FRAME}")
    body = await reader.readexactly(length)
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    return message
