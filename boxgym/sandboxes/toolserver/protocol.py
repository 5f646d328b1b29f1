"""Wire format between the host and the in-container tool server.

Frames over a Unix stream socket: a 4-byte big-endian length, then that many
bytes of UTF-8 JSON. One connection carries many calls at once; each request
has an integer ``id`` that its response repeats.

    request   {"id": 7, "op": "exec", "args": {...}}
    cancel    {"id": 8, "op": "cancel", "args": {"target": 7}}   (no response)
    response  {"id": 7, "ok": true, "result": ...}
    error     {"id": 7, "ok": false, "error": {"type": "refused", "message": "..."}}

Error types: ``refused`` (bad arguments, unknown operation), ``busy`` (an
exclusive operation is already running), ``not_found`` (a path does not
exist), ``timeout`` (an operation's own deadline passed), ``internal`` (a bug
in the server). Bytes travel as base64 strings in fields ending in ``_b64``.

This module is shared by the host client and the server, and uses only the
standard library (the server runs on the image's bare python3).
"""

from __future__ import annotations

import json
import struct

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024  # a frame larger than this is a protocol error
VERSION = "1"

ERROR_TYPES = ("refused", "busy", "not_found", "timeout", "internal")

#: Stands where command output was cut; ``omitted`` is the number of bytes left out.
TRUNCATION_MARKER = "[... boxgym: output truncated, {omitted} bytes omitted ...]"


class ProtocolError(Exception):
    """The peer sent something that is not a frame of this protocol."""


def encode(message: dict) -> bytes:
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds {MAX_FRAME}")
    return HEADER.pack(len(body)) + body


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
