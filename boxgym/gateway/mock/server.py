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
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .._json import dumps
from .script import MockEngineConfig, Plan, Reply, ScriptExhausted, plan_reply
from .tokenizer import ByteTokenizer, render_chat

__all__ = ["MockEngine", "EngineStats", "create_engine_app"]


@dataclass(slots=True)
class EngineStats:
    """What the engine saw, for tests: requests, cancellations, the last request's headers."""

    requests: int = 0
    cancelled: int = 0
    last_headers: dict[str, str] = field(default_factory=dict)
    last_body: dict[str, Any] = field(default_factory=dict)


class _Engine:
    def __init__(self, config: MockEngineConfig) -> None:
        self.config = config
        self.tok = ByteTokenizer()
        self.scripts: dict[str, list[Reply]] = {k: list(v) for k, v in config.scripts.items()}
        self.stats = EngineStats()


ENGINE = web.AppKey("engine", _Engine)


def _error(status: int, message: str, type_: str = "BadRequestError") -> web.Response:
    body = {"object": "error", "message": message, "type": type_, "param": None, "code": status}
    return web.Response(status=status, body=dumps({"error": body} | body), content_type="application/json")


def _alternatives(t: int, lp: float, k: int) -> list[tuple[int, float]]:
    """The ``k`` most likely tokens at a position, most likely first: the sampled one, then
    ``k - 1`` others, each less likely (deterministic)."""
    return [(t, lp)] + [((t + 1 + i) % 256, round(lp - 0.5 * (i + 1), 6)) for i in range(k - 1)]


def _tok_entry(tok: ByteTokenizer, t: int, lp: float, top: int) -> dict[str, Any]:
    text = tok.decode([t])
    entry = {"token": text, "logprob": lp, "bytes": list(tok.token_bytes(t)), "top_logprobs": []}
    entry["top_logprobs"] = [
        {"token": tok.decode([a]), "logprob": alp, "bytes": list(tok.token_bytes(a))}
        for a, alp in (_alternatives(t, lp, top) if top else ())
    ]
    return entry


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _read(request: web.Request, eng: _Engine) -> dict[str, Any]:
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


def _episode(request: web.Request, body: dict[str, Any], eng: _Engine) -> str | None:
    return request.headers.get(eng.config.episode_header) or body.get("user")


async def _pace(eng: _Engine, n_tokens: int) -> None:
    if eng.config.token_delay > 0:
        await asyncio.sleep(eng.config.token_delay * n_tokens)


def _plan(eng: _Engine, request: web.Request, body: dict[str, Any], prompt: list[int], turn: int) -> Plan:
    episode = _episode(request, body, eng)
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


def _headers(eng: _Engine) -> dict[str, str]:
    return {"X-Weight-Version": eng.config.weight_version} if eng.config.weight_version else {}


# -- chat ----------------------------------------------------------------------


async def chat_completions(request: web.Request) -> web.StreamResponse:
    eng = request.app[ENGINE]
    body = await _read(request, eng)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _error(400, "messages must be a non-empty list")
    prompt = eng.tok.encode(render_chat(messages, body.get("tools")))
    turn = sum(1 for m in messages if m.get("role") == "assistant")
    try:
        plan = _plan(eng, request, body, prompt, turn)
    except ScriptExhausted as exc:
        return _error(400, str(exc))
    sglang = bool(body.get("return_prompt_token_ids") or body.get("return_meta_info"))
    if body.get("stream"):
        if sglang and body.get("return_prompt_token_ids"):
            return _error(400, "return_prompt_token_ids is not supported with streaming; set stream=false")
        return await _chat_stream(request, eng, body, prompt, plan)
    try:
        await _pace(eng, len(plan.token_ids))
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
            "content": [_tok_entry(eng.tok, t, lp, top) for t, lp in zip(plan.token_ids, plan.logprobs)]
        }
    resp: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or eng.config.model,
        "choices": [choice],
        "usage": _usage(len(prompt), len(plan.token_ids)),
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
    return web.Response(body=dumps(resp), content_type="application/json", headers=_headers(eng))


def _message(plan: Plan) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": plan.content or None}
    if plan.tool_calls:
        msg["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            for cid, name, args in plan.tool_calls
        ]
    return msg


def _chat_segments(eng: _Engine, plan: Plan) -> list[tuple[dict[str, Any], int, int]]:
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


async def _sse(request: web.Request, eng: _Engine) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"} | _headers(eng)
    )
    await resp.prepare(request)
    return resp


async def _chat_stream(
    request: web.Request, eng: _Engine, body: dict[str, Any], prompt: list[int], plan: Plan
) -> web.StreamResponse:
    resp = await _sse(request, eng)
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
            await _pace(eng, end - start)
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
                        _tok_entry(eng.tok, t, lp, top)
                        for t, lp in zip(plan.token_ids[start:end], plan.logprobs[start:end])
                    ]
                }
            if want_ids:
                choice["token_ids"] = plan.token_ids[start:end]
            await resp.write(b"data: " + dumps(base | {"choices": [choice]}) + b"\n\n")
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = base | {"choices": [], "usage": _usage(len(prompt), len(plan.token_ids))}
            await resp.write(b"data: " + dumps(usage) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
    except (asyncio.CancelledError, ConnectionResetError):
        eng.stats.cancelled += 1
        raise
    await resp.write_eof()
    return resp


# -- completions -----------------------------------------------------------------


def _prompt_ids(eng: _Engine, prompt: Any) -> list[int] | None:
    if isinstance(prompt, str):
        return eng.tok.encode(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return list(prompt)
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return eng.tok.encode(prompt[0])
    return None


def _legacy_logprobs(eng: _Engine, ids: Sequence[int], lps: Sequence[float], k: int) -> dict[str, Any]:
    tokens = [eng.tok.decode([t]) for t in ids]
    return {
        "tokens": tokens,
        "token_logprobs": list(lps),
        "top_logprobs": [
            {eng.tok.decode([a]): alp for a, alp in _alternatives(t, lp, max(k, 1))} for t, lp in zip(ids, lps)
        ],
        "text_offset": [],
    }


def _visible(eng: _Engine, plan: Plan, start: int, end: int) -> str:
    """The text of token_ids[start:end] as a completion shows it: special tokens skipped, and a
    matched stop string left out (vLLM's default)."""
    if plan.stop_reason is not None:
        end = min(end, plan.content_len)
    return eng.tok.decode(plan.token_ids[start:end], skip_special=True) if end > start else ""


def _plan_raw_prompt(eng: _Engine, request: web.Request, body: dict[str, Any], prompt: list[int]) -> Plan | web.Response:
    """The plan for a raw prompt (completions, SGLang's /generate); the turn is counted from the
    assistant headers the template left in it. An exhausted script is the caller's 400."""
    turn = max(0, eng.tok.decode(prompt).count("<|assistant|>") - 1)
    try:
        return _plan(eng, request, body, prompt, turn)
    except ScriptExhausted as exc:
        return _error(400, str(exc))


async def completions(request: web.Request) -> web.StreamResponse:
    eng = request.app[ENGINE]
    body = await _read(request, eng)
    prompt = _prompt_ids(eng, body.get("prompt"))
    if prompt is None:
        return _error(400, "prompt must be a string or a list of token ids")
    plan = _plan_raw_prompt(eng, request, body, prompt)
    if isinstance(plan, web.Response):
        return plan
    text = _visible(eng, plan, 0, len(plan.token_ids))
    want_ids, want_lp = bool(body.get("return_token_ids")), body.get("logprobs") is not None
    k = int(body.get("logprobs") or 0)
    base = {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "created": int(time.time()),
        "model": body.get("model") or eng.config.model,
    }
    if not body.get("stream"):
        await _pace(eng, len(plan.token_ids))
        choice: dict[str, Any] = {
            "index": 0,
            "text": text,
            "logprobs": None,
            "finish_reason": "length" if plan.finish_reason == "length" else "stop",
            "stop_reason": plan.stop_reason,
        }
        if want_lp:
            choice["logprobs"] = _legacy_logprobs(eng, plan.token_ids, plan.logprobs, k)
        if want_ids:
            choice["prompt_token_ids"], choice["token_ids"] = prompt, plan.token_ids
        resp = base | {
            "object": "text_completion",
            "choices": [choice],
            "usage": _usage(len(prompt), len(plan.token_ids)),
        }
        return web.Response(body=dumps(resp), content_type="application/json", headers=_headers(eng))
    out = await _sse(request, eng)
    step = max(1, eng.config.chunk_tokens)
    n = len(plan.token_ids)
    try:
        for start in range(0, max(n, 1), step):
            end = min(start + step, n)
            await _pace(eng, end - start)
            ids = plan.token_ids[start:end]
            last = end >= n
            choice = {
                "index": 0,
                "text": _visible(eng, plan, start, end),
                "logprobs": None,
                "finish_reason": ("length" if plan.finish_reason == "length" else "stop") if last else None,
            }
            if last:
                choice["stop_reason"] = plan.stop_reason
            if want_lp:
                choice["logprobs"] = _legacy_logprobs(eng, ids, plan.logprobs[start:end], k)
            if want_ids:
                choice["token_ids"] = ids
                if start == 0:
                    choice["prompt_token_ids"] = prompt
            await out.write(b"data: " + dumps(base | {"object": "text_completion", "choices": [choice]}) + b"\n\n")
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = base | {"object": "text_completion", "choices": [], "usage": _usage(len(prompt), n)}
            await out.write(b"data: " + dumps(usage) + b"\n\n")
        await out.write(b"data: [DONE]\n\n")
    except (asyncio.CancelledError, ConnectionResetError):
        eng.stats.cancelled += 1
        raise
    await out.write_eof()
    return out


# -- SGLang native ---------------------------------------------------------------


def _meta(eng: _Engine, prompt: list[int], plan: Plan, upto: int, want_lp: bool) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "prompt_tokens": len(prompt),
        "completion_tokens": upto,
        "finish_reason": None,
    }
    if want_lp:
        meta["input_token_logprobs"] = [[None if i == 0 else -1.0, t, None] for i, t in enumerate(prompt)]
        meta["output_token_logprobs"] = [[lp, t, None] for t, lp in zip(plan.token_ids[:upto], plan.logprobs[:upto])]
    return meta


async def generate(request: web.Request) -> web.StreamResponse:
    eng = request.app[ENGINE]
    body = await _read(request, eng)
    prompt = _prompt_ids(eng, body.get("input_ids") if body.get("input_ids") is not None else body.get("text"))
    if prompt is None:
        return _error(400, "give text or input_ids")
    plan = _plan_raw_prompt(eng, request, body, prompt)
    if isinstance(plan, web.Response):
        return plan
    want_lp = bool(body.get("return_logprob"))
    finish = (
        {"type": "length", "length": len(plan.token_ids)}
        if plan.finish_reason == "length"
        else {"type": "stop", "matched": eng.tok.eos_id}
    )
    n = len(plan.token_ids)
    if not body.get("stream"):
        await _pace(eng, n)
        meta = _meta(eng, prompt, plan, n, want_lp) | {"finish_reason": finish}
        out = {
            "text": _visible(eng, plan, 0, n),
            "output_ids": plan.token_ids,
            "meta_info": meta,
        }
        return web.Response(body=dumps(out), content_type="application/json", headers=_headers(eng))
    resp = await _sse(request, eng)
    step = max(1, eng.config.chunk_tokens)
    try:
        for end in range(min(step, n), n + step, step):  # cumulative chunks, as SGLang streams by default
            end = min(end, n)
            await _pace(eng, step)
            meta = _meta(eng, prompt, plan, end, want_lp) | {"finish_reason": finish if end == n else None}
            chunk = {
                "text": _visible(eng, plan, 0, end),
                "output_ids": plan.token_ids[:end],
                "meta_info": meta,
            }
            await resp.write(b"data: " + dumps(chunk) + b"\n\n")
            if end == n:
                break
        await resp.write(b"data: [DONE]\n\n")
    except (asyncio.CancelledError, ConnectionResetError):
        eng.stats.cancelled += 1
        raise
    await resp.write_eof()
    return resp


async def tokenize(request: web.Request) -> web.Response:
    """vLLM's /tokenize: a prompt, or messages rendered by the chat template."""
    eng = request.app[ENGINE]
    body = await _read(request, eng)
    if isinstance(body.get("messages"), list):
        generation = body.get("add_generation_prompt", True)
        ids = eng.tok.encode(render_chat(body["messages"], body.get("tools"), generation_prompt=generation))
    elif isinstance(body.get("prompt"), str):
        ids = eng.tok.encode(body["prompt"])
    else:
        return _error(400, "give a prompt string or messages")
    return web.json_response({"count": len(ids), "max_model_len": 1 << 20, "tokens": ids, "token_strs": None})


async def detokenize(request: web.Request) -> web.Response:
    eng = request.app[ENGINE]
    body = await _read(request, eng)
    ids = body.get("tokens")
    if not isinstance(ids, list) or not all(isinstance(t, int) and 0 <= t < eng.tok.vocab_size for t in ids):
        return _error(400, "tokens must be a list of token ids")
    return web.json_response({"prompt": eng.tok.decode(ids)})


async def models(request: web.Request) -> web.Response:
    eng = request.app[ENGINE]
    data = [{"id": eng.config.model, "object": "model", "created": 0, "owned_by": "boxgym"}]
    return web.json_response({"object": "list", "data": data})


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_engine_app(config: MockEngineConfig) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[ENGINE] = _Engine(config)
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
        """Set (or replace) the replies of an episode; reply ``i`` answers the turn with ``i`` earlier assistant turns."""
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
