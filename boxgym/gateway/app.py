"""The gateway application: an aiohttp app factory and an in-process server.

    app = create_app(config)                       # for aiohttp_client
    serve(config)                                  # run it until SIGTERM or Ctrl-C (the CLI)

    async with Gateway(config) as gw:              # what the rollout manager embeds
        client = AsyncOpenAI(base_url=gw.base_url_for("ep-1"), api_key="unused")
        ...
        records = gw.records("ep-1")

The app's cleanup context opens the record store (indexing an existing file), the HTTP session
to the engine and the background fsync, and closes all three, in reverse order, however the app
stops: after the server stopped accepting and the calls in flight finished or were cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
from aiohttp import web

from ..trajectories.tokens import LossRule
from .config import GatewayConfig
from .export import TokenView, training_view
from .records import CallRecord
from .control import add_control_routes
from .routes import add_proxy_routes
from .state import STATE, GatewayState
from .store import RecordStore
from .upstream import make_upstream

__all__ = ["create_app", "serve", "Gateway"]

log = logging.getLogger("boxgym.gateway")


def create_app(config: GatewayConfig) -> web.Application:
    """A fresh gateway app. Nothing is opened until the app starts."""
    app = web.Application(client_max_size=config.max_body_bytes)
    app[STATE] = GatewayState(config, weight_version=config.weight_version)
    app.cleanup_ctx.append(_resources)
    add_proxy_routes(app)
    add_control_routes(app)
    return app


async def _resources(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    store = await RecordStore.open(state.config.store)
    fsync = asyncio.create_task(store.run_fsync(), name="boxgym-gateway-fsync")
    up = state.config.upstream
    connector = aiohttp.TCPConnector(
        limit=up.max_connections, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=up.keepalive_seconds
    )
    # no cookie jar: the engine sets none, and the jar costs time on every request
    session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
    state.store, state.upstream = store, make_upstream(state.config, session)
    try:
        yield
    finally:
        fsync.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fsync
        await session.close()
        await store.aclose()


def _check_backlog(config: GatewayConfig) -> None:
    try:
        with open("/proc/sys/net/core/somaxconn") as fh:
            cap = int(fh.read())
    except (OSError, ValueError):
        return
    if cap < config.server.backlog:
        log.warning(
            "listen backlog %d is capped at %d by net.core.somaxconn: a burst of more new connections"
            " than that may fail (raise it with sysctl -w net.core.somaxconn=%d)",
            config.server.backlog,
            cap,
            config.server.backlog,
        )


def _runner_settings(config: GatewayConfig) -> dict[str, float]:
    return {"keepalive_timeout": config.server.header_timeout, "shutdown_timeout": config.server.shutdown_grace}


def serve(config: GatewayConfig) -> int:
    """Run the gateway until SIGTERM or SIGINT, then drain (``ServerConfig``); the exit code.
    With ``config.server.workers > 1``, as that many processes (:mod:`boxgym.gateway.workers`)."""
    _check_backlog(config)
    if config.server.workers > 1:
        from .workers import serve_workers

        return serve_workers(config)
    web.run_app(
        create_app(config),
        host=config.host,
        port=config.port,
        backlog=config.server.backlog,
        handler_cancellation=True,
        access_log=None,
        print=None,
        **_runner_settings(config),
    )
    return 0


class Gateway:
    """The gateway running in this process, on ``config.host:config.port`` (0 = a free port).

    Closing is idempotent and always releases the port, the engine connections and the store.
    """

    def __init__(self, config: GatewayConfig) -> None:
        if config.server.workers != 1:
            raise ValueError("an embedded Gateway is one process: serve(config) runs several workers")
        self.config = config
        self.app = create_app(config)
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def state(self) -> GatewayState:
        return self.app[STATE]

    async def start(self) -> str:
        if self._runner is None:
            _check_backlog(self.config)
            runner = web.AppRunner(
                self.app, handler_cancellation=True, access_log=None, **_runner_settings(self.config)
            )
            await runner.setup()
            self._runner = runner
            site = web.TCPSite(runner, self.config.host, self.config.port, backlog=self.config.server.backlog)
            await site.start()
            host, port = runner.addresses[0][:2]
            self.url = f"http://{host}:{port}"
        return self.url

    def base_url_for(self, episode_id: str) -> str:
        """The OpenAI ``base_url`` that attributes every call made through it to ``episode_id``."""
        return f"{self.url}/episodes/{quote(episode_id, safe='')}/v1"

    def records(self, episode_id: str) -> list[CallRecord]:
        """The episode's records so far, in the order they were written."""
        store = self.state.store
        return store.episode(episode_id) if store is not None else []

    def training_view(self, episode_id: str, *, loss_rule: LossRule = LossRule.ONCE) -> TokenView:
        """The episode's token sequences (token ids, loss mask, behaviour logprobs) from its records so far."""
        return training_view(
            self.records(episode_id), episode_id, loss_rule=loss_rule, tail=self.config.realign_tail_tokens
        )

    def forget(self, episode_id: str) -> None:
        """Drop an episode's records from memory (they stay in the store's file, and its next
        call reads them back)."""
        if self.state.store is not None:
            self.state.store.forget(episode_id)

    async def close_episode(self, episode_id: str) -> None:
        """The episode is complete: mark it so in the store, fsync, and drop it from memory.
        Later calls in it are refused (409)."""
        if self.state.store is not None:
            await self.state.store.close_episode(episode_id)

    def set_weight_version(self, version: str | None) -> None:
        """The weight version recorded from now on when the engine sends none (after a weight sync)."""
        self.state.weight_version = version

    @property
    def records_written(self) -> int:
        store = self.state.store
        return store.records_written if store is not None else 0

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Gateway:
        try:
            await self.start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
