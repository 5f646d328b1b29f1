"""What the scripted engine's handlers share: its state, request reading, plans, errors."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .._json import dumps
from .script import MockEngineConfig, Plan, Reply, plan_reply
from .tokenizer import ByteTokenizer

__all__ = [
    "EngineStats",
    "EngineState",
    "ENGINE",
    "error",
    "alternatives",
    "tok_entry",
    "usage_of",
    "read_body",
    "episode_of",
    "pace",
    "plan_for",
    "engine_headers",
    "open_sse",
]


@dataclass(slots=True)
class EngineStats:
    """What the engine saw, for tests: requests, cancellations, the last request's headers."""

    requests: int = 0
    cancelled: int = 0
    last_headers: dict[str, str] = field(default_factory=dict)
    last_body: dict[str, Any] = field(default_factory=dict)


class EngineState:
    def __init__(self, config: MockEngineConfig) -> None:
        self.config = config
        self.tok = ByteTokenizer()
        self.scripts: dict[str, list[Reply]] = {k: list(v) for k, v in config.scripts.items()}
        self.stats = EngineStats()


ENGINE = web.AppKey("engine", EngineState)


def error(status: int, message: str, type_: str = "BadRequestError") -> web.Response:
    body = {"object": "error", "message": message, "type": type_, "param": None, "code": status}
    return web.Response(status=status, body=dumps({"error": body} | body), content_type="application/json")


def alternatives(t: int, lp: float, k: int) -> list[tuple[int, float]]:
    """The ``k`` most likely tokens at a position, most likely first: the sampled one, then
    ``k - 1`` others, each less likely (deterministic)."""
    return [(t, lp)] + [((t + 1 + i) % 256, round(lp - 0.5 * (i + 1), 6)) for i in range(k - 1)]


def tok_entry(tok: ByteTokenizer, t: int, lp: float, top: int) -> dict[str, Any]:
    text = tok.decode([t])
    entry = {"token": text, "logprob": lp, "bytes": list(tok.token_bytes(t)), "top_logprobs": []}
    entry["top_logprobs"] = [
        {"token": tok.decode([a]), "logprob": alp, "bytes": list(tok.token_bytes(a))}
        for a, alp in (alternatives(t, lp, top) if top else ())
    ]
    return entry


def usage_of(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def read_body(request: web.Request, eng: EngineState) -> dict[str, Any]:
    eng.stats.requests += 1
    eng.stats.last_headers = dict(request.headers)
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"invalid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be an object")
    eng.stats.last_body = body
    return body


def episode_of(request: web.Request, body: dict[str, Any], eng: EngineState) -> str | None:
    return request.headers.get(eng.config.episode_header) or body.get("user")


async def pace(eng: EngineState, n_tokens: int) -> None:
    if eng.config.token_delay > 0:
        await asyncio.sleep(eng.config.token_delay * n_tokens)


def plan_for(eng: EngineState, request: web.Request, body: dict[str, Any], prompt: list[int], turn: int) -> Plan:
    episode = episode_of(request, body, eng)
    messages = body.get("messages") or []
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    sp = body.get("sampling_params") or {}
    stop = body.get("stop") if body.get("stop") is not None else sp.get("stop")
    return plan_reply(
        eng.config,
        eng.tok,
        prompt_ids=prompt,
        script=eng.scripts.get(episode) if episode else None,
        turn=turn,
        tools=body.get("tools"),
        last_role=messages[-1].get("role") if messages else None,
        max_tokens=max_tokens or sp.get("max_new_tokens"),
        seed=body.get("seed"),
        stop=[stop] if isinstance(stop, str) else list(stop or ()),
    )


def engine_headers(eng: EngineState) -> dict[str, str]:
    return {"X-Weight-Version": eng.config.weight_version} if eng.config.weight_version else {}


async def open_sse(request: web.Request, eng: EngineState) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"} | engine_headers(eng)
    )
    await resp.prepare(request)
    return resp
