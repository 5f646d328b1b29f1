"""The host side of the tool-server connection: many calls at once over one socket.

Each call gets an id and a future; one reader task resolves futures as
responses arrive, in any order. A call whose caller is cancelled, or whose
deadline passes, sends a ``cancel`` frame so the server kills what it started.
When the connection drops every pending call fails with
:class:`~boxgym.errors.SandboxBroken`.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from ..errors import (
    SandboxBroken,
    SandboxBusy,
    SandboxError,
    SandboxFileNotFound,
    SandboxRefused,
    SandboxTimeout,
    SandboxWrecked,
    ToolServerError,
    ToolUnavailable,
)
from .toolserver import protocol

__all__ = ["ToolClient", "error_from_wire", "payload_bytes"]

_ERRORS: dict[str, type[SandboxError]] = {
    "busy": SandboxBusy,
    "not_found": SandboxFileNotFound,
    "timeout": SandboxTimeout,
    "wrecked": SandboxWrecked,
    "unavailable": ToolUnavailable,
    "internal": ToolServerError,
}


def error_from_wire(error: dict[str, Any], fallback: str) -> SandboxError:
    """The host exception for a tool server's error answer (see :mod:`.toolserver.protocol`)."""
    message = error.get("message") or fallback
    if error.get("type") == "refused":
        return SandboxRefused(message, reason=error.get("reason") or "bad_request")
    return _ERRORS.get(error.get("type"), SandboxError)(message)


def payload_bytes(data: bytes | str, what: str) -> bytes:
    """``data`` as bytes for a write or a command's stdin, refused (not raised raw) when it cannot be."""
    if isinstance(data, str):
        try:
            data = data.encode()
        except UnicodeEncodeError as exc:
            raise SandboxRefused(
                f"{what} is not valid Unicode ({exc.reason} at position {exc.start})", reason="bad_content"
            ) from None
    if len(data) > protocol.WRITE_LIMIT:
        raise SandboxRefused(
            f"{what} has {len(data)} bytes, more than the {protocol.WRITE_LIMIT} one call takes", reason="too_large"
        )
    return data


class ToolClient:
    """One connection to one tool server. Create with :meth:`connect`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
        self._reader = reader
        self._writer = writer
        self._name = name
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._lost: BaseException | None = None
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def connect(cls, path: str, *, name: str = "") -> "ToolClient":
        reader, writer = await asyncio.open_unix_connection(path, limit=protocol.MAX_FRAME)
        return cls(reader, writer, name or path)

    @property
    def connected(self) -> bool:
        return self._lost is None and not self._writer.is_closing()

    async def request(self, op: str, args: dict[str, Any] | None = None, *, timeout: float) -> Any:
        """Send one call and wait for its answer, at most ``timeout`` seconds."""
        if self._lost is not None:
            raise SandboxBroken(f"connection to tool server of {self._name} lost: {self._lost}")
        rid = next(self._ids)
        try:
            frame = protocol.encode({"id": rid, "op": op, "args": args or {}})
        except protocol.ProtocolError as exc:
            raise SandboxRefused(f"{op}: the request is too large to send ({exc})", reason="too_large") from None
        future = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            self._writer.write(frame)
            async with asyncio.timeout(timeout):
                message = await future
        except TimeoutError:
            self._cancel(rid)
            raise SandboxTimeout(f"{op} on {self._name} gave no answer within {timeout:.1f}s") from None
        except asyncio.CancelledError:
            self._cancel(rid)
            raise
        finally:
            self._pending.pop(rid, None)
        if message.get("ok"):
            return message.get("result")
        raise error_from_wire(message.get("error") or {}, f"{op} failed on {self._name}")

    def _cancel(self, rid: int) -> None:
        if self._lost is None and not self._writer.is_closing():
            self._writer.write(protocol.encode({"id": 0, "op": "cancel", "args": {"target": rid}}))

    async def _read_loop(self) -> None:
        try:
            while True:
                message = await protocol.read_frame(self._reader)
                if message is None:
                    raise ConnectionResetError("tool server closed the connection")
                future = self._pending.get(message.get("id"))
                if future is not None and not future.done():
                    future.set_result(message)
        except asyncio.CancelledError:
            self._fail(ConnectionAbortedError("client closed"))
            raise
        except Exception as exc:  # EOF, reset, garbage: the server is gone for this client
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        self._lost = exc
        for future in self._pending.values():
            if not future.done():
                future.set_exception(SandboxBroken(f"connection to tool server of {self._name} lost: {exc}"))

    async def aclose(self) -> None:
        self._reader_task.cancel()
        try:
            await self._reader_task
        except (asyncio.CancelledError, Exception):
            pass
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except Exception:
            pass
