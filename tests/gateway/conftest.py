"""Fixtures for the gateway tests: the scripted engine as upstream, a gateway in front of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from boxgym.gateway import Gateway, GatewayConfig, MockEngine, MockEngineConfig, StoreConfig, UpstreamConfig

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "bash",
            "description": "run a shell command",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
        },
    }
]


@pytest.fixture
async def engine() -> AsyncIterator[MockEngine]:
    async with MockEngine(MockEngineConfig(mode="tools")) as e:
        yield e


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "gateway.jsonl"


@pytest.fixture
async def gateway(engine: MockEngine, store_path: Path) -> AsyncIterator[Gateway]:
    config = GatewayConfig(upstream=UpstreamConfig(engine.url, engine="vllm"), store=StoreConfig(str(store_path)))
    async with Gateway(config) as gw:
        yield gw


async def engine_direct(engine: MockEngine, path: str, body: dict[str, Any], episode: str) -> Any:
    """Ask the engine itself (as the gateway would, with token ids and logprobs) for comparison."""
    body = dict(body, return_token_ids=True)
    body.setdefault("logprobs", True if path.endswith("chat/completions") else 0)
    async with aiohttp.ClientSession() as s:
        async with s.post(engine.url + path, json=body, headers={"X-Boxgym-Episode-Id": episode}) as r:
            assert r.status == 200, await r.text()
            return await r.json()
