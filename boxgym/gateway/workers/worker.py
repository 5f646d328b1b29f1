"""One worker process of a gateway of several: the gateway app, behind a router, on a port it
shares with the others (SO_REUSEPORT), writing its own part of the store.

The supervisor starts it with :func:`run_worker` and talks to it over a pipe: the worker says
when it is ready, asks for what concerns every worker (the weight version, the metrics, the
list of workers: :class:`boxgym.gateway.state.Cluster`), and does its share when asked. SIGTERM
drains it as it drains a gateway of one; so does the end of the pipe (the supervisor died).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from aiohttp import web

from ...errors import BoxgymError
from ..app import create_app
from ..config import GatewayConfig
from ..metrics import Metrics
from ..parts import part_path, worker_of
from ..routes import episode_in_path, episode_of, error_response
from ..state import STATE, WorkerInfo
from .handoff import Handoff
from .routing import Router

__all__ = ["Worker", "run_worker", "listen_socket", "HANDOFF_WAIT"]

log = logging.getLogger("boxgym.gateway")

#: how long a call for a worker that is restarting waits for it before it is answered 503
HANDOFF_WAIT = 30.0


def listen_socket(host: str, port: int, backlog: int, *, listen: bool = True) -> socket.socket:
    """A TCP socket on ``host:port`` that the other workers bind too (SO_REUSEPORT: the kernel
    spreads new connections over them). ``listen=False`` only holds the port."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if listen:
            sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _RoutedSite(web.BaseSite):
    """aiohttp's server on a socket given, each connection behind a :class:`Router`."""

    __slots__ = ("_sock", "_worker")

    def __init__(self, runner: web.AppRunner, sock: socket.socket, worker: Worker, backlog: int) -> None:
        super().__init__(runner, backlog=backlog)
        self._sock = sock
        self._worker = worker

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Router(self._worker), sock=self._sock, backlog=self._backlog)


class Worker:
    """The gateway app of worker ``index`` of ``workers``, its router's view of it, and its end
    of the pipe to the supervisor (it is the app's :class:`~boxgym.gateway.state.Cluster`)."""

    def __init__(self, config: GatewayConfig, index: int, workers: int, directory: str, control: Connection) -> None:
        store = config.store
        if store.path is not None:
            store = replace(store, path=str(part_path(store.path, index, workers)))
        self.config = replace(config, store=store)
        self.index, self.count = index, workers
        self.affinity = config.headers.affinity.lower().encode()
        self.placeholders = frozenset(config.placeholder_bearers)
        self.routers: dict[object, Router] = {}  # aiohttp's handler of a connection -> its router
        self.connections: set[Router] = set()
        self.header_timeout = config.server.header_timeout
        self.draining = False
        self.handoff = Handoff(directory, index, HANDOFF_WAIT, self._adopt)
        self.app = create_app(self.config)
        self.app[STATE].cluster = self
        self.runner: web.AppRunner | None = None
        self._control = control
        self._calls: dict[int, asyncio.Future[list[Any]]] = {}
        self._ids = itertools.count()
        self._adopting: set[asyncio.Task[Any]] = set()
        self.stopped = asyncio.Event()

    def http(self) -> asyncio.Protocol:
        """A new aiohttp request handler, for one connection."""
        assert self.runner is not None and self.runner.server is not None
        return self.runner.server()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self._control.fileno(), self._on_control)
        server = self.config.server
        runner = web.AppRunner(
            self.app,
            handler_cancellation=True,
            access_log=None,
            keepalive_timeout=server.header_timeout,
            shutdown_timeout=server.shutdown_grace,
        )
        await runner.setup()  # opens this worker's part of the store, indexing what it holds
        assert runner.server is not None
        runner.server.request_handler = self._track(runner.server.request_handler)
        self.runner = runner
        self.handoff.listen()
        sock = listen_socket(self.config.host, self.config.port, server.backlog)
        await _RoutedSite(runner, sock, self, server.backlog).start()

    async def drain(self) -> None:
        """Stop taking connections and hand-overs, let calls in flight finish (for up to
        ``shutdown_grace``), close the store."""
        self.draining = True
        self.handoff.close()
        for router in list(self.connections):
            router.close_if_idle()
        if self.runner is not None:
            await self.runner.cleanup()
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._control.fileno())

    # -- connections -----------------------------------------------------------

    def _adopt(self, fd: int, pending: bytes) -> None:
        if self.draining:
            os.close(fd)  # its client sees the connection close, and retries
            return
        sock = socket.socket(fileno=fd)
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(
            loop.connect_accepted_socket(lambda: Router(self, pending, handed=True), sock)
        )
        self._adopting.add(task)
        task.add_done_callback(lambda t: self._adopted(t, sock))

    def _adopted(self, task: asyncio.Task[Any], sock: socket.socket) -> None:
        self._adopting.discard(task)
        if task.cancelled() or task.exception() is not None:
            log.warning("worker %d: a connection handed over could not be served: %r", self.index, task)
            sock.close()

    def _track(
        self, handle: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
        """Wrap aiohttp's handler of every request: its router learns when the request has been
        answered (the task that runs it ends after the answer is written), so that the connection
        moves only when nothing is in flight on it. Cheaper than a middleware."""

        async def tracked(request: web.BaseRequest) -> web.StreamResponse:
            router = self.routers.get(request.protocol)
            if router is not None:
                task = asyncio.current_task()
                assert task is not None
                task.add_done_callback(router.request_done)
                if router.pinned and not self._owns(request):
                    return error_response(
                        421, "misdirected_request", "this connection cannot be routed: send the call on a new one"
                    )
            return await handle(request)

        return tracked

    def _owns(self, request: web.BaseRequest) -> bool:
        episode = episode_in_path(request.rel_url.path_safe)
        if episode is None:
            episode, _ = episode_of(request, self.app[STATE])  # type: ignore[arg-type]
        return worker_of(episode, self.count) == self.index

    # -- the supervisor --------------------------------------------------------

    def _on_control(self) -> None:
        try:
            while self._control.poll():
                self._handle(self._control.recv())
        except (EOFError, OSError):  # the supervisor is gone: drain and exit
            asyncio.get_running_loop().remove_reader(self._control.fileno())
            self.stopped.set()

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind, ident, *rest = message
        if kind == "do":
            self._control.send(("done", ident, self._do(*rest)))
        elif kind == "reply":
            future = self._calls.pop(ident, None)
            if future is not None and not future.done():
                future.set_result(rest[0])

    def _do(self, command: str, arg: Any) -> Any:
        state = self.app[STATE]
        if command == "weight_version":
            state.weight_version = arg
            return None
        if command == "metrics":
            return state.metrics
        if command == "info":
            return state.info(self.index)
        raise ValueError(f"unknown command {command!r}")

    async def _all(self, command: str, arg: Any = None) -> list[Any]:
        ident = next(self._ids)
        future = self._calls[ident] = asyncio.get_running_loop().create_future()
        self._control.send(("all", ident, command, arg))
        try:
            async with asyncio.timeout(HANDOFF_WAIT * 3):
                return await future
        finally:
            self._calls.pop(ident, None)

    async def set_weight_version(self, version: str | None) -> None:
        await self._all("weight_version", version)

    async def metrics(self) -> list[Metrics]:
        return await self._all("metrics")

    async def workers(self) -> list[WorkerInfo]:
        return await self._all("info")


def run_worker(config: GatewayConfig, index: int, workers: int, directory: str, control: Connection) -> None:
    """A worker process's main (started by the supervisor)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which stops us
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s %(name)s[{index}] %(levelname)s %(message)s"
    )
    try:
        asyncio.run(_serve(config, index, workers, directory, control))
    except BoxgymError as exc:
        with contextlib.suppress(OSError):
            control.send(("failed", index, str(exc)))
        raise SystemExit(1) from None


async def _serve(config: GatewayConfig, index: int, workers: int, directory: str, control: Connection) -> None:
    worker = Worker(config, index, workers, directory, control)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.stopped.set)
    try:
        await worker.start()
        control.send(("ready", index, os.getpid()))
        await worker.stopped.wait()
    finally:
        await worker.drain()
