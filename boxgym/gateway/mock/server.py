"""The scripted engine: an OpenAI/vLLM-compatible server with a real tokenizer and chat template.

It answers in vLLM's shapes, including vLLM's extensions that the gateway relies on:
``return_token_ids`` adds ``prompt_token_ids`` (on the response of a chat completion, on each
choice of a completion, on the first chunk of a stream) and per-choice ``token_ids`` (the delta
tokens of each chunk when streaming); ``logprobs`` gives ``logprobs.content`` (chat) or the
legacy ``tokens``/``token_logprobs`` (completions). It also speaks SGLang's dialect: chat with
``return_prompt_token_ids`` + ``return_meta_info`` (non-streaming only, as SGLang) and the native
``/generate`` with ``input_ids``/``text``, ``return_logprob`` and ``meta_info``. Like vLLM it honours
``stop`` strings (the text ends before the match, whose tokens are sampled; ``stop_reason`` names
it), returns ``top_logprobs`` / legacy ``logprobs`` entries as many as asked, sends a usage chunk
on any stream whose ``stream_options.include_usage`` is set, and serves ``/tokenize`` and
``/detokenize``.

    async with MockEngine(MockEngineConfig(mode="tools")) as engine:
        engine.script("ep-1", [Reply.say("hi"), Reply.call("bash", command="ls")])
        ... engine.url ...

Tests use it as the upstream; it knows nothing of the gateway.
"""

from __future__ import annotations

import asyncio
import codecs
import time
import uuid
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from .._json import dumps
from .raw import completions, detokenize, generate, tokenize
from .script import MockEngineConfig, Plan, Reply, ScriptExhausted
from .tokenizer import render_chat
from .wire import (
    ENGINE,
    EngineState,
    EngineStats,
    engine_headers,
    error,
    open_sse,
    pace,
    plan_for,
    read_body,
    tok_entry,
    usage_of,
)

__all__ = ["MockEngine", "EngineStats", "create_engine_app"]


# -- chat ----------------------------------------------------------------------


async def chat_completions(request: web.Request) -> web.StreamResponse:
    eng = request.app[ENGINE]
    body = await read_body(request, eng)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return error(400, "messages must be a non-empty list")
    prompt = eng.tok.encode(render_chat(messages, body.get("tools")))
    turn = sum(1 for m in messages if m.get("role") == "assistant")
    try:
        plan = plan_for(eng, request, body, prompt, turn)
    except ScriptExhausted as exc:
        return error(400, str(exc))
    sglang = bool(body.get("return_prompt_token_ids") or body.get("return_meta_info"))
    if body.get("stream"):
        if sglang and body.get("return_prompt_token_ids"):
            return error(400, "return_prompt_token_ids is not supported with streaming; set stream=false")
        return await _chat_stream(request, eng, body, prompt, plan)
    try:
        await pace(eng, len(plan.token_ids))
    except asyncio.CancelledError:
        eng.stats.cancelled += 1
        raise
    choice: dict[str, Any] = {
        "index": 0,
        "message": _message(plan),
        "logprobs": None,
        "finish_reason": plan.finish_reason,
        "stop_reason": plan.stop_reason,
    }
    if body.get("logprobs"):
        top = int(body.get("top_logprobs") or 0)
        choice["logprobs"] = {
            "content": [tok_entry(eng.tok, t, lp, top) for t, lp in zip(plan.token_ids, plan.logprobs)]
        }
    resp: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or eng.config.model,
        "choices": [choice],
        "usage": usage_of(len(prompt), len(plan.token_ids)),
    }
    if body.get("return_token_ids"):
        choice["token_ids"] = plan.token_ids
        resp["prompt_token_ids"] = prompt
    if body.get("return_prompt_token_ids"):
        choice["prompt_token_ids"] = prompt
    if body.get("return_meta_info"):
        choice["meta_info"] = {
            "prompt_tokens": len(prompt),
            "completion_tokens": len(plan.token_ids),
            "finish_reason": {"type": "length" if plan.finish_reason == "length" else "stop"},
            "output_token_logprobs": [[lp, t, None] for t, lp in zip(plan.token_ids, plan.logprobs)],
        }
    return web.Response(body=dumps(resp), content_type="application/json", headers=engine_headers(eng))


def _message(plan: Plan) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": plan.content or None}
    if plan.tool_calls:
        msg["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            for cid, name, args in plan.tool_calls
        ]
    return msg


def _chat_segments(eng: EngineState, plan: Plan) -> list[tuple[dict[str, Any], int, int]]:
    """(delta, start, end) per chunk: text in chunks of chunk_tokens, each tool call whole, then EOS."""
    segs: list[tuple[dict[str, Any], int, int]] = []
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    step = max(1, eng.config.chunk_tokens)
    for start in range(0, plan.content_len, step):
        end = min(start + step, plan.content_len)
        piece = plan.token_ids[start:end]
        if plan.finish_reason == "length":
            text = eng.tok.decode(piece)
        else:
            text = dec.decode(bytes(piece), final=end == plan.content_len)
        segs.append(({"content": text}, start, end))
    pos = plan.content_len
    for i, ((cid, name, args), n) in enumerate(zip(plan.tool_calls, plan.call_lens)):
        call = {"index": i, "id": cid, "type": "function", "function": {"name": name, "arguments": args}}
        segs.append(({"tool_calls": [call]}, pos, pos + n))
        pos += n
    segs.append(({}, pos, len(plan.token_ids)))  # the final chunk carries EOS (if any) and finish_reason
    return segs


async def _chat_stream(
    request: web.Request, eng: EngineState, body: dict[str, Any], prompt: list[int], plan: Plan
) -> web.StreamResponse:
    resp = await open_sse(request, eng)
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model") or eng.config.model,
    }
    want_ids, want_lp = bool(body.get("return_token_ids")), bool(body.get("logprobs"))
    top = int(body.get("top_logprobs") or 0)
    first = base | {
        "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        ]
    }
    if want_ids:
        first["prompt_token_ids"] = prompt
    try:
        await resp.write(b"data: " + dumps(first) + b"\n\n")
        segs = _chat_segments(eng, plan)
        for i, (delta, start, end) in enumerate(segs):
            await pace(eng, end - start)
            last = i == len(segs) - 1
            choice: dict[str, Any] = {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": plan.finish_reason if last else None,
            }
            if last:
                choice["stop_reason"] = plan.stop_reason
            if want_lp:
                choice["logprobs"] = {
                    "content": [
                        tok_entry(eng.tok, t, lp, top)
                        for t, lp in zip(plan.token_ids[start:end], plan.logprobs[start:end])
                    ]
                }
            if want_ids:
                choice["token_ids"] = plan.token_ids[start:end]
            await resp.write(b"data: " + dumps(base | {"choices": [choice]}) + b"\n\n")
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = base | {"choices": [], "usage": usage_of(len(prompt), len(plan.token_ids))}
            await resp.write(b"data: " + dumps(usage) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
    except (asyncio.CancelledError, ConnectionResetError):
        eng.stats.cancelled += 1
        raise
    await resp.write_eof()
    return resp


async def models(request: web.Request) -> web.Response:
    eng = request.app[ENGINE]
    data = [{"id": eng.config.model, "object": "model", "created": 0, "owned_by": "boxgym"}]
    return web.json_response({"object": "list", "data": data})


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_engine_app(config: MockEngineConfig) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[ENGINE] = EngineState(config)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/generate", generate)
    app.router.add_post("/tokenize", tokenize)
    app.router.add_post("/detokenize", detokenize)
    return app


class MockEngine:
    """The scripted engine as an async context manager: ``async with MockEngine() as e: e.url``."""

    def __init__(self, config: MockEngineConfig | None = None) -> None:
        self.config = config or MockEngineConfig()
        self.app = create_engine_app(self.config)
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def stats(self) -> EngineStats:
        return self.app[ENGINE].stats

    def script(self, episode_id: str, replies: Sequence[Reply]) -> None:
        """Set (or replace) the replies of an episode; reply ``i`` answers the turn with ``i``
        earlier assistant turns."""
        self.app[ENGINE].scripts[episode_id] = list(replies)

    async def start(self) -> str:
        if self._runner is None:
            self._runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.config.host, self.config.port)
            await site.start()
            host, port = self._runner.addresses[0][:2]
            self.url = f"http://{host}:{port}"
        return self.url

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> MockEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
