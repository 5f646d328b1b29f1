"""One background event loop per process, for the sync ``reset``/``step``/``close``.

Sync callers block on a coroutine that runs on this loop (a daemon thread),
so the async core is the only implementation and async resources (the
sandbox pool, its HTTP sessions) always live on one loop, shared by every
sync env of the process. Calling the sync API from the loop's own thread
would deadlock, so it raises instead.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_sync", "background_loop"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def background_loop() -> asyncio.AbstractEventLoop:
    """The process's background loop, started on first use."""
    global _loop, _thread
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            running = threading.Event()
            loop.call_soon(running.set)
            thread = threading.Thread(target=loop.run_forever, name="boxgym-loop", daemon=True)
            thread.start()
            running.wait()
            _loop, _thread = loop, thread
        return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the background loop and wait for its result."""
    loop = background_loop()
    if threading.current_thread() is _thread:
        coro.close()
        raise RuntimeError("the sync env API was called from boxgym's own event loop; use the async API")
    if not loop.is_running():  # the interpreter is shutting down; waiting would hang
        coro.close()
        raise RuntimeError("boxgym's background event loop has stopped")
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


@atexit.register
def _stop() -> None:
    # atexit runs after other modules' hooks registered later, e.g. the default
    # pool's close, which needs the loop still running; here it only stops it.
    loop = _loop
    if loop is not None and not loop.is_closed():
        loop.call_soon_threadsafe(loop.stop)
