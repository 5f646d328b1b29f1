"""Upstream adapters, one per engine dialect, behind the :class:`Upstream` protocol."""

from __future__ import annotations

import aiohttp

from ..config import GatewayConfig
from .base import Capture, Endpoint, HttpUpstream, Upstream, UpstreamReply, UpstreamRequest
from .openai import OpenAIUpstream
from .replay import ReplayUpstream
from .sglang import SglangUpstream
from .vllm import VllmUpstream

__all__ = [
    "Upstream",
    "UpstreamRequest",
    "UpstreamReply",
    "Capture",
    "Endpoint",
    "make_upstream",
    "VllmUpstream",
    "SglangUpstream",
    "OpenAIUpstream",
    "ReplayUpstream",
    "HttpUpstream",
]

_ADAPTERS = {"vllm": VllmUpstream, "sglang": SglangUpstream, "openai": OpenAIUpstream, "replay": ReplayUpstream}


def make_upstream(config: GatewayConfig, session: aiohttp.ClientSession) -> Upstream:
    try:
        cls = _ADAPTERS[config.upstream.engine]
    except KeyError:
        raise ValueError(f"unknown engine {config.upstream.engine!r}; use one of {sorted(_ADAPTERS)}") from None
    return cls(config, session)
