"""Handing a client connection to another worker: the socket itself crosses a Unix socket as
SCM_RIGHTS ancillary data, with the bytes already read from it.

Each worker listens on ``<directory>/<index>.sock``, a SOCK_SEQPACKET socket: every send is
one message, so a descriptor never lands in the middle of bytes meant for another connection.
The first message of a hand-over carries the descriptor and a 4-byte length of what was read
from the connection, then as much of it as fits; the rest follows in the next messages of the
same ordered socket, which one lock per peer keeps from interleaving. After the first message
is sent, the kernel holds a reference to the connection: the sender closes its own
descriptor, and the connection lives on in the receiver.

A peer that is not there (restarting after a crash) is tried again every 50 ms until ``wait``
runs out; then the sender answers its client 503. The directory is the supervisor's, private
(mode 0700), and removed when the gateway stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["Handoff"]

log = logging.getLogger("boxgym.gateway")

_LENGTH = struct.Struct("!I")
_CHUNK = 60 * 1024  # below the default socket buffer (208 KiB): a message always fits
_RETRY = 0.05


class _Incoming:
    """A hand-over being received from one peer."""

    __slots__ = ("fd", "total", "parts", "size")

    def __init__(self) -> None:
        self.fd: int | None = None
        self.total = 0
        self.parts: list[bytes] = []
        self.size = 0


class Handoff:
    """This worker's end of the hand-overs: a listener for what peers send, and a socket per peer
    to send to. ``adopt(fd, pending)`` is given each connection received. Closing is idempotent."""

    def __init__(
        self, directory: str | os.PathLike[str], index: int, wait: float, adopt: Callable[[int, bytes], None]
    ) -> None:
        self._dir = Path(directory)
        self.index = index
        self.wait = wait
        self._adopt = adopt
        self._listener: socket.socket | None = None
        self._incoming: dict[socket.socket, _Incoming] = {}
        self._peers: dict[int, socket.socket] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self.closed = False

    def path(self, index: int) -> str:
        return str(self._dir / f"{index}.sock")

    def listen(self) -> None:
        path = self.path(self.index)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by this worker's predecessor, which died
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(path)
        listener.listen(64)
        listener.setblocking(False)
        self._listener = listener
        asyncio.get_running_loop().add_reader(listener.fileno(), self._accept)

    # -- receiving ---------------------------------------------------------------

    def _accept(self) -> None:
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            conn.setblocking(False)
            self._incoming[conn] = _Incoming()
            loop.add_reader(conn.fileno(), self._receive, conn)

    def _receive(self, conn: socket.socket) -> None:
        state = self._incoming[conn]
        while True:
            try:
                msg, fds, flags, _ = socket.recv_fds(conn, _CHUNK + _LENGTH.size, 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                msg, fds, flags = b"", [], 0
            if not msg and not fds:  # the peer is gone
                self._drop(conn)
                return
            if flags & socket.MSG_CTRUNC:
                log.error("worker %d: a connection handed over was lost (descriptor limit?)", self.index)
            if fds:
                _close(state.fd)
                for extra in fds[1:]:
                    _close(extra)
                state.fd, state.parts, state.size = fds[0], [], 0
                (state.total,) = _LENGTH.unpack_from(msg)
                msg = msg[_LENGTH.size :]
            elif state.fd is None:
                continue  # the rest of a hand-over whose descriptor never arrived
            state.parts.append(msg)
            state.size += len(msg)
            if state.size >= state.total:
                fd, pending = state.fd, b"".join(state.parts)
                state.fd, state.parts, state.size = None, [], 0
                self._adopt(fd, pending)

    def _drop(self, conn: socket.socket) -> None:
        state = self._incoming.pop(conn, None)
        if state is not None:
            _close(state.fd)
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(conn.fileno())
        conn.close()

    # -- sending -----------------------------------------------------------------

    def send_nowait(self, owner: int, sock: Any, pending: bytes) -> bool:
        """Hand the connection over now if that needs no waiting (the usual case: the peer is
        there and what was read fits in one message); False if :meth:`send` must do it."""
        peer = self._peers.get(owner)
        lock = self._locks.get(owner)
        if peer is None or self.closed or len(pending) > _CHUNK or (lock is not None and lock.locked()):
            return False
        fd = sock.fileno()
        if fd < 0:
            return False
        try:
            socket.send_fds(peer, [_LENGTH.pack(len(pending)) + pending], [fd])
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            self._forget(owner)
            return False
        return True

    async def send(self, owner: int, sock: Any, pending: bytes) -> bool:
        """Hand the connection ``sock`` (and the bytes read from it) to worker ``owner``. False if
        that worker could not be reached within ``wait`` (or this one is closing): the caller
        still holds the connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        lock = self._locks.setdefault(owner, asyncio.Lock())
        async with lock:
            while not self.closed:
                peer = self._peers.get(owner) or self._connect(owner)
                if peer is not None:
                    fd = sock.fileno()
                    if fd < 0:
                        return False  # the connection closed meanwhile
                    first = _LENGTH.pack(len(pending)) + pending[:_CHUNK]
                    try:
                        await _send(peer, first, fd)
                    except OSError:  # the peer died since it was reached: reach its successor
                        self._forget(owner)
                    else:
                        try:
                            for i in range(_CHUNK, len(pending), _CHUNK):
                                await _send(peer, pending[i : i + _CHUNK], None)
                        except OSError:
                            self._forget(owner)  # the connection went down with the peer
                        return True
                if loop.time() >= deadline:
                    return False
                await asyncio.sleep(_RETRY)
        return False

    def _connect(self, owner: int) -> socket.socket | None:
        peer = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        peer.setblocking(False)
        try:
            peer.connect(self.path(owner))
        except OSError:  # not listening (yet): missing, refused, or its queue is full
            peer.close()
            return None
        self._peers[owner] = peer
        return peer

    def _forget(self, owner: int) -> None:
        peer = self._peers.pop(owner, None)
        if peer is not None:
            peer.close()

    def close(self) -> None:
        """Stop receiving, and sending after the hand-overs under way (a retry gives up).
        Connections received and not yet adopted are closed."""
        if self.closed:
            return
        self.closed = True
        loop = asyncio.get_running_loop()
        if self._listener is not None:
            loop.remove_reader(self._listener.fileno())
            self._listener.close()
            with contextlib.suppress(OSError):
                os.unlink(self.path(self.index))
        for conn in list(self._incoming):
            self._drop(conn)
        for owner in list(self._peers):
            lock = self._locks.get(owner)
            if lock is None or not lock.locked():  # a send under way keeps its socket until it ends
                self._forget(owner)


async def _send(peer: socket.socket, data: bytes, fd: int | None) -> None:
    loop = asyncio.get_running_loop()
    while True:
        try:
            if fd is None:
                peer.send(data)
            else:
                socket.send_fds(peer, [data], [fd])
            return
        except (BlockingIOError, InterruptedError):
            pass
        writable = loop.create_future()
        loop.add_writer(peer.fileno(), lambda: writable.done() or writable.set_result(None))
        try:
            await writable
        finally:
            loop.remove_writer(peer.fileno())


def _close(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
