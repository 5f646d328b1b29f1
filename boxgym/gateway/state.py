"""The gateway's application state, held under typed app keys."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from .config import GatewayConfig
from .metrics import Metrics
from .store import RecordStore
from .upstream import Upstream

__all__ = ["GatewayState", "STATE", "Cluster", "WorkerInfo"]


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One process of the gateway, as ``GET /workers`` shows it."""

    index: int
    pid: int
    records_written: int
    episodes_in_memory: int


class Cluster(Protocol):
    """What concerns every worker of a gateway of several processes (``serve --workers N``),
    each answered once all of them have: the control routes go through it."""

    async def set_weight_version(self, version: str | None) -> None: ...

    async def metrics(self) -> list[Metrics]: ...

    async def workers(self) -> list[WorkerInfo]: ...


@dataclass(slots=True)
class GatewayState:
    config: GatewayConfig
    metrics: Metrics = field(default_factory=Metrics)
    store: RecordStore | None = None  # opened by the app's cleanup context
    upstream: Upstream | None = None  # likewise
    weight_version: str | None = None  # the setting; the engine's header wins when present
    cluster: Cluster | None = None  # the other workers, in a gateway of several processes

    def info(self, index: int = 0) -> WorkerInfo:
        store = self.store
        return WorkerInfo(
            index,
            os.getpid(),
            store.records_written if store is not None else 0,
            len(store.episode_ids()) if store is not None else 0,
        )


STATE = web.AppKey("boxgym_gateway_state", GatewayState)
