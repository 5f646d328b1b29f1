"""Limits shared by every boxgym process on a host, so that together they cannot swamp the daemon.

Several training processes on one machine share one Docker daemon, which slows
sharply past a few dozen concurrent calls and can hang at high container churn.
These limits live in small files under a per-user directory and use ``flock``
in non-blocking mode only, so they never block the event loop; a waiter polls
with short sleeps. A process that dies drops its locks with its descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import tempfile
import time
from pathlib import Path

__all__ = ["HostSlots", "HostRate", "limits_dir"]

_POLL_S = 0.002
_POLL_MAX_S = 0.02


def limits_dir() -> Path:
    path = Path(os.environ.get("BOXGYM_LIMITS_DIR") or Path(tempfile.gettempdir()) / f"boxgym-limits-{os.getuid()}")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


class HostSlots:
    """At most ``count`` holders across all processes of this host (a counting semaphore)."""

    def __init__(self, name: str, count: int, *, directory: Path | None = None) -> None:
        self.count = count
        base = (directory or limits_dir()) / name
        base.mkdir(mode=0o700, exist_ok=True)
        self._paths = [base / f"slot-{i}" for i in range(count)]
        self._free: list[int] = []  # open descriptors of slots this process does not hold
        self._opened = False

    def _open(self) -> None:
        if not self._opened:
            self._free = [os.open(p, os.O_RDWR | os.O_CREAT, 0o600) for p in self._paths]
            self._opened = True

    def _try(self) -> int | None:
        self._open()
        for i, fd in enumerate(self._free):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            return self._free.pop(i)
        return None

    @contextlib.asynccontextmanager
    async def hold(self):
        delay = _POLL_S
        fd = self._try()
        while fd is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX_S)
            fd = self._try()
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            self._free.append(fd)

    def close(self) -> None:
        for fd in self._free:
            os.close(fd)
        self._free, self._opened = [], False


class HostRate:
    """A token bucket of ``rate`` per second (``burst`` deep) shared by every process of this host."""

    _STATE = struct.Struct("dd")  # tokens, monotonic-free wall stamp

    def __init__(self, name: str, rate: float, burst: int, *, directory: Path | None = None) -> None:
        self.rate, self.burst = rate, float(burst)
        self._path = (directory or limits_dir()) / f"{name}.bucket"
        self._fd: int | None = None

    def _take(self) -> float:
        """Take a token if there is one: 0.0. Otherwise how long until one is due (nothing taken)."""
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _POLL_S
        try:
            raw = os.pread(self._fd, self._STATE.size, 0)
            now = time.time()
            tokens, stamp = self._STATE.unpack(raw) if len(raw) == self._STATE.size else (self.burst, now)
            tokens = min(self.burst, tokens + max(0.0, now - stamp) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            if wait == 0.0:
                tokens -= 1
            os.pwrite(self._fd, self._STATE.pack(tokens, now), 0)
            return wait
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    async def take(self) -> None:
        while (wait := self._take()) > 0:
            await asyncio.sleep(wait)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
