"""A warm pool of fresh sandboxes for one spec, on one Docker host or spread over several.

The pool keeps ``size`` started, connected sandboxes ready, refilling in the
background as they are handed out. Every sandbox is handed out once: the
caller owns it and closes it; nothing returns to the pool. ``acquire`` checks
liveness before handing one out, and creates one on demand when none is ready.
Closing the pool removes everything it still holds and cancels refills.

With ``hosts=`` (Docker hosts of this machine, :mod:`.hosts`) each new sandbox
goes to the host that holds the fewest of this pool's live sandboxes (ready,
starting, or handed out and not yet closed), at most ``max_creating`` starting
per host. A host whose creations fail backs off on its own; the others go on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..errors import EngineError, SandboxClosed, SandboxError
from .config import SandboxSpec
from .docker import DockerSandbox, resolve_image_ref
from .engine import DockerEngine
from .hosts import DockerHost
from .ownership import Run, current_run

__all__ = ["HostStatistics", "PoolStatistics", "SandboxPool"]


@dataclass(frozen=True, slots=True)
class HostStatistics:
    host: str
    ready: int
    creating: int
    created: int
    create_failures: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    ready: int
    creating: int
    handed_out: int
    created: int
    create_failures: int
    discarded_dead: int
    last_error: str | None
    hosts: tuple[HostStatistics, ...] = ()


class _Host:
    """One Docker host of a pool: its engine, what it holds, and its back-off."""

    def __init__(self, engine: DockerEngine, own: bool) -> None:
        self.engine = engine
        self.own = own
        self.spec: SandboxSpec | None = None  # the pool's spec naming this host, once resolved
        self.ready = 0
        self.creating = 0
        self.out: weakref.WeakSet[DockerSandbox] = weakref.WeakSet()  # handed out, maybe still open
        self.created = self.failures = 0
        self.last_error: str | None = None
        self.backoff = 0.0
        self.retry_at = 0.0

    def load(self) -> int:
        return self.ready + self.creating + sum(1 for sb in self.out if not sb.closed)


class SandboxPool:
    """Fresh sandboxes of one spec, started ahead of demand. Implements ``SandboxProvider``.

    ``hosts`` spreads the pool over several Docker hosts (default: the one ``spec.host``
    names, else the default host); ``engine`` is one host's engine to share instead.
    ``max_creating`` bounds the creations in flight per host.
    """

    lends = False  # the caller owns what it acquires

    def __init__(
        self,
        spec: SandboxSpec,
        *,
        size: int = 4,
        max_creating: int = 4,
        engine: DockerEngine | None = None,
        run: Run | None = None,
        hosts: Sequence[DockerHost] | None = None,
    ) -> None:
        if size < 0 or max_creating < 1:
            raise ValueError("size must be >= 0 and max_creating >= 1")
        if engine is not None and hosts is not None:
            raise ValueError("give one host's engine= or hosts=, not both")
        if hosts is not None and not hosts:
            raise ValueError("hosts= names no Docker host")
        self.spec = spec
        self.size = size
        self._max_creating = max_creating
        if engine is not None:
            self._hosts = [_Host(engine, own=False)]
        else:
            named = list(hosts) if hosts is not None else [spec.host or DockerHost()]
            urls = [h.address for h in named]
            if len(set(urls)) != len(urls):
                raise ValueError(f"hosts= names a Docker host twice: {urls}")
            self._hosts = [_Host(DockerEngine(host=h), own=True) for h in named]
        self._by_url = {h.engine.host.url: h for h in self._hosts}
        if spec.host is not None and spec.host.address not in self._by_url:
            raise ValueError(f"the spec names the Docker host {spec.host}, which is not among the pool's {list(self._by_url)}")
        self._run = run
        self._ready: collections.deque[DockerSandbox] = collections.deque()
        self._creating: set[asyncio.Task] = set()
        self._wakeup = asyncio.Event()
        self._refiller: asyncio.Task | None = None
        self._closed = False
        self._handed_out = self._dead = 0

    @property
    def hosts(self) -> tuple[DockerHost, ...]:
        return tuple(h.engine.host for h in self._hosts)

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Resolve the image on every host (failing fast if one lacks it) and begin filling."""
        if self._closed:
            raise SandboxClosed("pool is closed")
        if self._refiller is None:
            tags = [await resolve_image_ref(self.spec.image, h.engine) for h in self._hosts]
            self.spec = replace(self.spec, image=tags[0])
            for h in self._hosts:
                h.spec = replace(self.spec, host=h.engine.host)
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
        for h in self._hosts:
            if h.own:
                await h.engine.aclose()

    # -- handing out -----------------------------------------------------------------

    async def acquire(self) -> DockerSandbox:
        """A fresh, live sandbox that the caller now owns (and must ``aclose``)."""
        await self.start()
        while self._ready:
            sandbox = self._ready.popleft()
            host = self._by_url[sandbox.host.url]
            host.ready -= 1
            self._wakeup.set()
            if await self._alive(sandbox):
                return self._hand_out(host, sandbox)
            self._dead += 1
            await sandbox.aclose()
        # None ready: do not wait behind the refills; another host if this one fails.
        tried: list[_Host] = []
        while True:
            host = self._pick(exclude=tried, any_state=True)
            assert host is not None
            try:
                sandbox = await self._create(host)
            except (SandboxError, EngineError):
                tried.append(host)
                if len(tried) == len(self._hosts) or self._closed:
                    raise
                continue
            self._wakeup.set()
            return self._hand_out(host, sandbox)

    def _hand_out(self, host: _Host, sandbox: DockerSandbox) -> DockerSandbox:
        self._handed_out += 1
        if len(self._hosts) > 1:
            host.out.add(sandbox)
        return sandbox

    async def _alive(self, sandbox: DockerSandbox) -> bool:
        try:
            return (await asyncio.wait_for(sandbox.health(), 2.0)).ok
        except (SandboxError, TimeoutError):
            return False

    def statistics(self) -> PoolStatistics:
        hosts = tuple(
            HostStatistics(h.engine.host.url, h.ready, h.creating, h.created, h.failures, h.last_error) for h in self._hosts
        )
        errors = [h.last_error for h in self._hosts if h.last_error is not None]
        return PoolStatistics(
            ready=len(self._ready),
            creating=len(self._creating),
            handed_out=self._handed_out,
            created=sum(h.created for h in self._hosts),
            create_failures=sum(h.failures for h in self._hosts),
            discarded_dead=self._dead,
            last_error=errors[-1] if errors else None,
            hosts=hosts,
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

    def _pick(self, *, exclude: Sequence[_Host] = (), any_state: bool = False) -> _Host | None:
        """The host for the next sandbox: the least loaded of those not backing off and below
        ``max_creating``. With ``any_state`` (an acquire that must try anyway): of all hosts but
        ``exclude``, those in good standing first."""
        now = time.monotonic()
        if any_state:
            candidates = [h for h in self._hosts if h not in exclude]
            return min(candidates, key=lambda h: (h.retry_at > now, h.load()), default=None)
        candidates = [h for h in self._hosts if h.creating < self._max_creating and h.retry_at <= now]
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        return min(candidates, key=_Host.load)

    async def _create(self, host: _Host) -> DockerSandbox:
        if self._closed:
            raise SandboxClosed("pool is closed")
        assert host.spec is not None
        try:
            sandbox = await DockerSandbox.create(host.spec, engine=host.engine, run=self._run)
        except (SandboxError, EngineError) as exc:
            host.failures += 1
            host.last_error = str(exc)
            # Back off so a dead or overloaded engine is not hammered; acquire() still raises clearly.
            host.backoff = min(max(host.backoff * 2, 0.5), 10.0)
            host.retry_at = time.monotonic() + host.backoff
            raise
        host.backoff, host.retry_at = 0.0, 0.0
        host.created += 1
        return sandbox

    async def _refill_one(self, host: _Host) -> None:
        try:
            sandbox = await self._create(host)
        except (SandboxError, EngineError):
            return
        finally:
            host.creating -= 1
            self._creating.discard(asyncio.current_task())
            self._wakeup.set()
        if self._closed:
            await sandbox.aclose()
        else:
            self._ready.append(sandbox)
            host.ready += 1

    async def _refill_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            while len(self._ready) + len(self._creating) < self.size:
                host = self._pick()
                if host is None:
                    break
                host.creating += 1  # now, so that the next pick sees it
                task = loop.create_task(self._refill_one(host), name="boxgym-pool-create")
                self._creating.add(task)
            self._wakeup.clear()
            now = time.monotonic()
            backing_off = [h.retry_at - now for h in self._hosts if h.retry_at > now]
            if backing_off and len(self._ready) + len(self._creating) < self.size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), min(backing_off))  # or until a back-off ends
                continue
            await self._wakeup.wait()


@contextlib.asynccontextmanager
async def sandbox(spec: SandboxSpec, *, engine: DockerEngine | None = None):
    """One sandbox without a pool, on ``spec.host``: ``async with sandbox(spec) as sb: ...``."""
    own = engine is None
    engine = engine or DockerEngine(host=spec.host)
    try:
        spec = replace(spec, image=await resolve_image_ref(spec.image, engine))
        sb = await DockerSandbox.create(spec, engine=engine)
        async with sb:
            yield sb
    finally:
        if own:
            await engine.aclose()
