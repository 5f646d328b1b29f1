"""Threads started in advance, so that blocking work never needs a new thread.

A fork bomb fills the container's pids limit, and the limit counts threads:
after it, ``pthread_create`` fails (``can't start new thread``). A thread pool
that starts its threads on demand (``ThreadPoolExecutor``, asyncio's default
executor) then cannot serve, and the server could not even kill the bomb. So
every thread the server uses exists from its start: :class:`Workers`.

The threads are daemons: the server never waits for them at exit, so a thread
stuck in the kernel cannot keep the server, or the container, alive.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any


class Workers:
    """``size`` threads, all started now, running blocking calls for the event loop."""

    def __init__(self, size: int, name: str, initializer: Callable[[], None] | None = None) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        started = threading.Barrier(size + 1)
        for n in range(size):
            threading.Thread(target=self._work, args=(initializer, started), name=f"{name}-{n}", daemon=True).start()
        started.wait()  # every thread exists (and has its identity) before the server serves

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on one of the threads; a cancelled caller stops waiting, the call runs on."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((loop, future, fn, args))
        return await future

    def _work(self, initializer: Callable[[], None] | None, started: threading.Barrier) -> None:
        if initializer is not None:
            initializer()
        started.wait()
        while True:
            loop, future, fn, args = self._jobs.get()
            if future.cancelled():
                continue
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting coroutine
                result, error = None, exc
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:
                return  # the loop is closed: the server is exiting


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
