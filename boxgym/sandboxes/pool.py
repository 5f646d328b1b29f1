"""A warm pool of fresh sandboxes for one spec.

The pool keeps ``size`` started, connected sandboxes ready, refilling in the
background as they are handed out. Every sandbox is handed out once: the
caller owns it and closes it; nothing returns to the pool. ``acquire`` checks
liveness before handing one out, and creates one on demand when none is ready.
Closing the pool removes everything it still holds and cancels refills.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from dataclasses import dataclass, replace

from ..errors import EngineError, SandboxClosed, SandboxError
from .config import SandboxSpec
from .docker import DockerSandbox, resolve_image_ref
from .engine import DockerEngine
from .ownership import Run, current_run

__all__ = ["PoolStatistics", "SandboxPool"]


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    ready: int
    creating: int
    handed_out: int
    created: int
    create_failures: int
    discarded_dead: int
    last_error: str | None


class SandboxPool:
    """Fresh sandboxes of one spec, started ahead of demand. Implements ``SandboxProvider``."""

    lends = False  # the caller owns what it acquires

    def __init__(
        self,
        spec: SandboxSpec,
        *,
        size: int = 4,
        max_creating: int = 4,
        engine: DockerEngine | None = None,
        run: Run | None = None,
    ) -> None:
        if size < 0 or max_creating < 1:
            raise ValueError("size must be >= 0 and max_creating >= 1")
        self.spec = spec
        self.size = size
        self._max_creating = max_creating
        self._own_engine = engine is None
        self._engine = engine or DockerEngine()
        self._run = run
        self._ready: collections.deque[DockerSandbox] = collections.deque()
        self._creating: set[asyncio.Task] = set()
        self._wakeup = asyncio.Event()
        self._refiller: asyncio.Task | None = None
        self._closed = False
        self._handed_out = self._created = self._failures = self._dead = 0
        self._last_error: str | None = None
        self._backoff = 0.0

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Resolve the image (failing fast if it is not built) and begin filling."""
        if self._closed:
            raise SandboxClosed("pool is closed")
        if self._refiller is None:
            self.spec = replace(self.spec, image=await resolve_image_ref(self.spec.image))
            self._run = self._run or current_run()
            self._refiller = asyncio.get_running_loop().create_task(self._refill_loop(), name="boxgym-pool-refill")

    async def __aenter__(self) -> "SandboxPool":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop refilling and remove every sandbox still held. Idempotent."""
        if self._closed:
            return
        self._closed = True
        tasks = [t for t in (self._refiller, *self._creating) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        ready, self._ready = list(self._ready), collections.deque()
        await asyncio.gather(*(sb.aclose() for sb in ready), return_exceptions=True)
        if self._own_engine:
            await self._engine.aclose()

    # -- handing out -----------------------------------------------------------------

    async def acquire(self) -> DockerSandbox:
        """A fresh, live sandbox that the caller now owns (and must ``aclose``)."""
        await self.start()
        while self._ready:
            sandbox = self._ready.popleft()
            self._wakeup.set()
            if await self._alive(sandbox):
                self._handed_out += 1
                return sandbox
            self._dead += 1
            await sandbox.aclose()
        sandbox = await self._create()  # none ready: do not wait behind the refills
        self._wakeup.set()
        self._handed_out += 1
        return sandbox

    async def _alive(self, sandbox: DockerSandbox) -> bool:
        try:
            return (await asyncio.wait_for(sandbox.health(), 2.0)).ok
        except (SandboxError, TimeoutError):
            return False

    def statistics(self) -> PoolStatistics:
        return PoolStatistics(
            ready=len(self._ready),
            creating=len(self._creating),
            handed_out=self._handed_out,
            created=self._created,
            create_failures=self._failures,
            discarded_dead=self._dead,
            last_error=self._last_error,
        )

    async def wait_ready(self, count: int | None = None, *, timeout: float = 120.0) -> None:
        """Wait until ``count`` (default: ``size``) sandboxes are ready."""
        want = self.size if count is None else count
        async with asyncio.timeout(timeout):
            while len(self._ready) < want:
                if self._closed:
                    raise SandboxClosed("pool is closed")
                await asyncio.sleep(0.01)

    # -- filling ---------------------------------------------------------------------

    async def _create(self) -> DockerSandbox:
        if self._closed:
            raise SandboxClosed("pool is closed")
        try:
            sandbox = await DockerSandbox.create(self.spec, engine=self._engine, run=self._run)
        except (SandboxError, EngineError) as exc:
            self._failures += 1
            self._last_error = str(exc)
            raise
        self._created += 1
        return sandbox

    async def _refill_one(self) -> None:
        try:
            sandbox = await self._create()
        except (SandboxError, EngineError):
            # Back off so a dead or overloaded engine is not hammered; acquire() still raises clearly.
            self._backoff = min(max(self._backoff * 2, 0.5), 10.0)
            return
        finally:
            self._creating.discard(asyncio.current_task())
            self._wakeup.set()
        self._backoff = 0.0
        if self._closed:
            await sandbox.aclose()
        else:
            self._ready.append(sandbox)

    async def _refill_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            while len(self._ready) + len(self._creating) < self.size and len(self._creating) < self._max_creating:
                task = loop.create_task(self._refill_one(), name="boxgym-pool-create")
                self._creating.add(task)
            self._wakeup.clear()
            if self._backoff:
                await asyncio.sleep(self._backoff)
            await self._wakeup.wait()


@contextlib.asynccontextmanager
async def sandbox(spec: SandboxSpec, *, engine: DockerEngine | None = None):
    """One sandbox without a pool: ``async with sandbox(spec) as sb: ...``."""
    own = engine is None
    engine = engine or DockerEngine()
    try:
        spec = replace(spec, image=await resolve_image_ref(spec.image))
        sb = await DockerSandbox.create(spec, engine=engine)
        async with sb:
            yield sb
    finally:
        if own:
            await engine.aclose()
