"""The gateway's application state, held under typed app keys."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from .config import GatewayConfig
from .metrics import Metrics
from .store import RecordStore
from .upstream import Upstream

__all__ = ["GatewayState", "STATE"]


@dataclass(slots=True)
class GatewayState:
    config: GatewayConfig
    metrics: Metrics = field(default_factory=Metrics)
    store: RecordStore | None = None  # opened by the app's cleanup context
    upstream: Upstream | None = None  # likewise
    weight_version: str | None = None  # the setting; the engine's header wins when present


STATE = web.AppKey("boxgym_gateway_state", GatewayState)
