"""A bound on concurrent work with a synchronous fast path and statistics.

``asyncio.Semaphore`` costs a coroutine call per acquire even when a slot is
free; at 100k episodes that is a visible share of a step. Here a free slot is
taken with :meth:`acquire_nowait` (an integer test) and only a full limiter
makes the caller wait, in FIFO order, so no waiter starves.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

__all__ = ["Limiter", "LimiterStatistics"]

_UNBOUNDED = 1 << 62


@dataclass(frozen=True, slots=True)
class LimiterStatistics:
    bound: int | None
    in_use: int
    waiting: int


class Limiter:
    """At most ``bound`` holders at once (``None``: unbounded, still counted).

    Usage on a hot path::

        if not limiter.acquire_nowait():
            await limiter.acquire()
        try: ...
        finally: limiter.release()
    """

    __slots__ = ("_free", "_waiters", "bound", "name")

    def __init__(self, name: str, bound: int | None) -> None:
        self.name = name
        self.bound = bound
        # An unbounded limiter is a limiter with more slots than there can be coroutines.
        self._free = bound if bound is not None else _UNBOUNDED
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_use(self) -> int:
        return (self.bound if self.bound is not None else _UNBOUNDED) - self._free

    def acquire_nowait(self) -> bool:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        if self.acquire_nowait():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            # Cancelled after release() handed us the slot: pass it on instead of losing it.
            if fut.done() and not fut.cancelled():
                self.release()
            else:
                try:
                    self._waiters.remove(fut)
                except ValueError:
                    pass
            raise
        # release() transferred its slot to us: _free was not incremented.

    def release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self._free += 1

    def statistics(self) -> LimiterStatistics:
        return LimiterStatistics(self.bound, self.in_use, len(self._waiters))
