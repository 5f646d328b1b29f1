"""A worker's client connections: each request's head names an episode, and the connection is
served here if this worker owns it, else handed to the worker that does.

The router sits between the socket and aiohttp's request handler. It reads only the heads:
the request line and the headers that name an episode (the path ``/episodes/{id}/``, the
``X-Boxgym-Episode-Id`` header, a bearer token that is not a placeholder; the same rule, in the
same order, as :func:`boxgym.gateway.routes.episode_of`) and the ones that frame the body
(``Content-Length``, ``Transfer-Encoding: chunked``), so that it knows where the next request on
a keep-alive connection starts. Everything else, parsing included, is aiohttp's.

A head for another worker's episode is not consumed by aiohttp: the router stops reading,
waits until the connection has no request in flight here (a client that pipelines may have
sent it early), and passes the socket with the bytes it has read to the owner
(:mod:`boxgym.gateway.workers.handoff`), which serves it from then on. A client whose
connection carries one episode is handed over once; nothing is proxied.

A head the router cannot frame (a malformed one, an unknown transfer coding) stays here, and so
does the rest of its connection ("pinned"): aiohttp answers it, and usually closes it. A call on
a pinned connection for another worker's episode is refused with 421 (see ``worker.py``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from yarl import URL

from ..config import DEFAULT_EPISODE
from ..parts import worker_of
from ..routes import episode_in_path

if TYPE_CHECKING:
    from .worker import Worker

__all__ = ["Router", "read_head", "CHUNKED"]

log = logging.getLogger("boxgym.gateway")

#: ``read_head``'s body length for a chunked body
CHUNKED = -1
#: a head longer than this is not read: aiohttp refuses it (its lines are limited to 8 KiB)
HEAD_LIMIT = 64 * 1024

_IDLE, _SIZE, _DATA, _TRAILER = 0, 1, 2, 3  # where in a chunked body the router is


def _path_episode(target: bytes) -> str | None:
    if b"episodes" not in target and b"%" not in target:
        return None
    text = target.decode("utf-8", "surrogateescape")
    if text.startswith("/"):
        path = text.partition("#")[0].partition("?")[0]
        if "%" not in path:  # what yarl's path_safe would give: the path as it came
            return episode_in_path(path)
    try:
        if text.startswith("/"):  # as aiohttp's parser builds the URL of an origin-form target
            url = URL.build(path=path, encoded=True)
        elif "://" in text:
            url = URL(text, encoded=True)
        else:
            return None
        return episode_in_path(url.path_safe)
    except ValueError:
        return None


def _field(head: bytes, low: bytes, key: bytes) -> tuple[bytes | None, bool]:
    """The first value of the header ``key`` (``b"\\r\\n<name>:"``, lowercase) and whether it comes again."""
    i = low.find(key)
    if i < 0:
        return None, False
    start = i + len(key)
    end = head.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip(b" \t"), low.find(key, start) >= 0


def read_head(head: bytes, affinity: bytes, placeholders: frozenset[str]) -> tuple[str, int] | None:
    """The episode a request head names and its body's length (``CHUNKED`` for a chunked body),
    or None for a head that cannot be framed here. ``affinity``: the episode header, lowercase.

    Only the fields that name the episode or frame the body are looked up (aiohttp parses the
    rest, and closes the connection on a head it refuses, so a field it would refuse cannot
    leave the framing here and there apart on a connection that goes on)."""
    head = head.lstrip(b"\r\n")
    line_end = head.find(b"\r\n")
    parts = (head if line_end < 0 else head[:line_end]).split(b" ")
    if len(parts) != 3 or parts[0] == b"CONNECT":
        return None
    low = head.lower()
    length, again = _field(head, low, b"\r\ncontent-length:")
    if length is not None and (again or not length.isdigit()):
        return None
    coding, again = _field(head, low, b"\r\ntransfer-encoding:")
    if coding is not None and (again or length is not None or coding.lower() != b"chunked"):
        return None
    body = CHUNKED if coding is not None else int(length or 0)
    episode = _path_episode(parts[1])
    if episode is None:
        named, _ = _field(head, low, b"\r\n" + affinity + b":")
        if named:
            episode = named.decode("utf-8", "surrogateescape")
        else:
            auth, _ = _field(head, low, b"\r\nauthorization:")
            if auth is not None and auth.startswith(b"Bearer "):
                token = auth[7:].decode("utf-8", "surrogateescape").strip()
                if token not in placeholders:
                    episode = token
    return (episode if episode is not None else DEFAULT_EPISODE), body


class Router(asyncio.Protocol):
    """One client connection of a worker (see the module docstring).

    ``pending`` holds bytes read by the worker that handed the connection over; ``handed``
    says the connection came that way, and its first request is served here whatever it names.
    aiohttp's handler of the connection is made with its first request served here: a
    connection handed over at its first request never costs one. Until then the router keeps
    the header deadline itself.
    """

    def __init__(self, worker: Worker, pending: bytes = b"", handed: bool = False) -> None:
        self._worker = worker
        self._pending = pending
        self._handed = handed
        self._buf = b""  # read and not yet given to aiohttp: a head, or a chunk-size line, in part
        self._left = 0  # body bytes (or chunk bytes and their CRLF) still to come
        self._chunk = _IDLE
        self._inflight = 0  # requests given to aiohttp and not yet answered
        self._owner: int | None = None  # a head for this worker waits to be handed over
        self._moving: asyncio.Task[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._episode: str | None = None  # the last episode named, and its owner
        self._episode_owner = 0
        self.pinned = False
        self.transport: asyncio.Transport | None = None
        self.inner: asyncio.Protocol | None = None

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._worker.connections.add(self)
        if self._pending:
            pending, self._pending = self._pending, b""
            self.data_received(pending)
        if self.inner is None and not transport.is_closing():
            # no request yet: the header deadline is the router's until aiohttp takes over
            self._deadline = asyncio.get_running_loop().call_later(self._worker.header_timeout, transport.close)

    def _serve_here(self) -> asyncio.Protocol:
        if self.inner is None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            self.inner = self._worker.http()
            self._worker.routers[self.inner] = self
            self.inner.connection_made(self.transport)
        return self.inner

    def data_received(self, data: bytes) -> None:
        if self.pinned:
            self._serve_here().data_received(data)
            return
        if self._owner is not None:  # read before reading paused: it goes with the connection
            self._buf += data
            return
        if self._buf:
            data, self._buf = self._buf + data, b""
        i, n, start = 0, len(data), 0
        while i < n:
            if self._left:
                take = min(self._left, n - i)
                i += take
                self._left -= take
                if not self._left and self._chunk == _DATA:
                    self._chunk = _SIZE
                continue
            if self._chunk:
                j = data.find(b"\r\n", i)
                if j < 0:
                    break
                if not self._chunk_line(data[i:j]):
                    self._pin(data[start:])
                    return
                i = j + 2
                continue
            j = data.find(b"\r\n\r\n", i)
            if j < 0:
                if n - i > HEAD_LIMIT:
                    self._pin(data[start:])
                    return
                break
            head = read_head(data[i:j], self._worker.affinity, self._worker.placeholders)
            if head is None:
                self._pin(data[start:])
                return
            if head[0] != self._episode:  # a connection mostly carries one episode
                self._episode, self._episode_owner = head[0], worker_of(head[0], self._worker.count)
            owner = self._episode_owner
            if owner != self._worker.index and not self._handed:
                if i > start:
                    self._serve_here().data_received(data[start:i])
                self._buf = data[i:]
                self._move(owner)
                return
            self._handed = False
            self._inflight += 1
            i = j + 4
            if head[1] == CHUNKED:
                self._chunk = _SIZE
            else:
                self._left = head[1]
        if i > start:
            self._serve_here().data_received(data if start == 0 and i == n else data[start:i])
        if i < n:
            self._buf = data[i:]

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._worker.connections.discard(self)
        if self._deadline is not None:
            self._deadline.cancel()
        if self._moving is not None and not self._moving.done():
            self._moving.cancel()
        inner, self.inner = self.inner, None
        if inner is not None:
            self._worker.routers.pop(inner, None)
            inner.connection_lost(exc)

    def close_if_idle(self) -> None:
        """Close a connection aiohttp does not know of (its first request has not come, or is
        waiting to be handed over): what a draining worker does to its idle connections."""
        if self.inner is None and self.transport is not None:
            self.transport.close()

    # -- framing ---------------------------------------------------------------

    def _chunk_line(self, line: bytes) -> bool:
        if self._chunk == _TRAILER:
            if not line:  # the empty line that ends the trailers ends the body
                self._chunk = _IDLE
            return True
        try:
            size = int(line.split(b";", 1)[0].strip(b" \t"), 16)
        except ValueError:
            return False
        if size < 0:
            return False
        if size == 0:
            self._chunk = _TRAILER
        else:
            self._left, self._chunk = size + 2, _DATA
        return True

    def _pin(self, data: bytes) -> None:
        self.pinned = True
        inner = self._serve_here()
        if data:
            inner.data_received(data)

    # -- hand-over -------------------------------------------------------------

    def request_done(self, _: object = None) -> None:
        """aiohttp answered one request of this connection (called by the worker's request wrapper)."""
        self._inflight -= 1
        if self._owner is not None:
            self._try_move()

    def _move(self, owner: int) -> None:
        assert self.transport is not None
        self.transport.pause_reading()
        self._owner = owner
        self._try_move()

    def _try_move(self) -> None:
        transport = self.transport
        if transport is None or self._moving is not None or transport.is_closing():
            return
        if self._inflight > 0:
            return  # request_done comes back here
        if transport.get_write_buffer_size():  # the last answer is still on its way out
            asyncio.get_running_loop().call_later(0.001, self._try_move)
            return
        assert self._owner is not None
        if self._worker.handoff.send_nowait(self._owner, transport.get_extra_info("socket"), self._buf):
            transport.abort()  # the owner holds the socket now (see _hand_over)
            return
        self._moving = asyncio.ensure_future(self._hand_over())

    async def _hand_over(self) -> None:
        transport, owner = self.transport, self._owner
        assert transport is not None and owner is not None
        moved = await self._worker.handoff.send(owner, transport.get_extra_info("socket"), self._buf)
        if moved:
            # the owner holds the socket now: closing ours closes a descriptor, not the connection
            transport.abort()
            return
        why = "draining" if self._worker.draining else f"worker {owner} did not come back in time"
        log.warning("a call for worker %d could not be handed over (%s): answered 503", owner, why)
        transport.write(_unavailable(owner))
        transport.close()


def _unavailable(owner: int) -> bytes:
    body = (
        b'{"error":{"message":"the gateway worker that owns this episode is restarting or stopping",'
        b'"type":"worker_unavailable","param":null,"code":503}}'
    )
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
        f"Connection: close\r\nX-Boxgym-Worker: {owner}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body
