"""The sandbox provider ``gym.make`` uses when none is given: a shared warm pool.

:class:`SharedPool` is a handle on one process-wide
:class:`~boxgym.sandboxes.SandboxPool` per (image, size, event loop). The pool
is created on the first ``acquire`` (so ``gym.make`` itself starts nothing
and imports no Docker code), shared by every env holding a handle on that
loop, and closed when the last handle closes, or at interpreter exit. A pool
lives on one event loop, hence one per loop. ``warm`` names plugin operations
each sandbox runs before it is handed out (``("ipython.ready",)``: a kernel
already running), so pools with different ``warm`` are different pools.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import SandboxClosed
from ..sandboxes.base import Sandbox
from . import runner  # noqa: F401 - imported first so that its atexit hook runs after ours

__all__ = ["SharedPool"]


@dataclass
class _Entry:
    pool: Any
    loop: asyncio.AbstractEventLoop
    started: asyncio.Task[Any]
    handles: int = 0


_pools: dict[tuple[str, int, tuple[str, ...], int], _Entry] = {}


@dataclass
class SharedPool:
    """A :class:`~boxgym.sandboxes.base.SandboxProvider` over the process's shared pool."""

    lends: ClassVar[bool] = False
    image: str = "slim"
    size: int = 2
    warm: tuple[str, ...] = ()
    _entry: _Entry | None = field(default=None, init=False, repr=False)
    _closed: bool = field(default=False, init=False, repr=False)

    async def acquire(self) -> Sandbox:
        if self._closed:
            raise SandboxClosed("this pool handle is closed")
        loop = asyncio.get_running_loop()
        if self._entry is not None and self._entry.loop is not loop:
            raise RuntimeError("a boxgym env's async API was used from two event loops")
        key = (self.image, self.size, self.warm, id(loop))
        entry = _pools.get(key)
        if entry is None or entry.loop is not loop:
            entry = _pools[key] = _start(self.image, self.size, self.warm, loop)
        if self._entry is not entry:  # first use, or the pool was replaced after failing to start
            entry.handles += 1
            self._entry = entry
        try:
            await asyncio.shield(entry.started)
        except Exception:
            # A pool that could not start (image not built, no daemon) is dropped, so
            # the next episode tries again instead of failing for the process's lifetime.
            if _pools.get(key) is entry:
                del _pools[key]
                await entry.pool.aclose()
            raise
        return await entry.pool.acquire()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        entry, self._entry = self._entry, None
        if entry is None:
            return
        entry.handles -= 1
        key = (self.image, self.size, self.warm, id(entry.loop))
        if entry.handles <= 0 and _pools.get(key) is entry:
            del _pools[key]
            await entry.pool.aclose()


def _start(image: str, size: int, warm: tuple[str, ...], loop: asyncio.AbstractEventLoop) -> _Entry:
    from ..sandboxes import SandboxPool, SandboxSpec  # Docker code loads here, on first use

    pool = SandboxPool(SandboxSpec(image=image, warm=warm), size=size)
    return _Entry(pool, loop, loop.create_task(pool.__aenter__()))


@atexit.register
def _close_all() -> None:
    # atexit is LIFO and runner registered its loop-stopping hook first, so the
    # background loop still runs here.
    for key, entry in list(_pools.items()):
        del _pools[key]
        loop = entry.loop
        with contextlib.suppress(Exception):
            if loop.is_closed():
                continue
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(entry.pool.aclose(), loop).result(timeout=60)
            else:
                loop.run_until_complete(entry.pool.aclose())
