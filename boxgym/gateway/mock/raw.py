"""The scripted engine's raw-prompt routes: vLLM's completions, SGLang's native /generate, and
vLLM's /tokenize and /detokenize."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from .._json import dumps
from .script import Plan, ScriptExhausted
from .tokenizer import render_chat
from .wire import (
    ENGINE,
    EngineState,
    alternatives,
    engine_headers,
    error,
    open_sse,
    pace,
    plan_for,
    read_body,
    usage_of,
)

__all__ = ["completions", "generate", "tokenize", "detokenize"]


def _prompt_ids(eng: EngineState, prompt: Any) -> list[int] | None:
    if isinstance(prompt, str):
        return eng.tok.encode(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return list(prompt)
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return eng.tok.encode(prompt[0])
    return None


def _legacy_logprobs(eng: EngineState, ids: Sequence[int], lps: Sequence[float], k: int) -> dict[str, Any]:
    tokens = [eng.tok.decode([t]) for t in ids]
    return {
        "tokens": tokens,
        "token_logprobs": list(lps),
        "top_logprobs": [
            {eng.tok.decode([a]): alp for a, alp in alternatives(t, lp, max(k, 1))} for t, lp in zip(ids, lps)
        ],
        "text_offset": [],
    }


def _visible(eng: EngineState, plan: Plan, start: int, end: int) -> str:
    """The text of token_ids[start:end] as a completion shows it: special tokens skipped, and a
    matched stop string left out (vLLM's default)."""
    if plan.stop_reason is not None:
        end = min(end, plan.content_len)
    return eng.tok.decode(plan.token_ids[start:end], skip_special=True) if end > start else ""


def _plan_raw_prompt(
    eng: EngineState, request: web.Request, body: dict[str, Any], prompt: list[int]
) -> Plan | web.Response:
    """The plan for a raw prompt (completions, SGLang's /generate); the turn is counted from the
    assistant headers the template left in it. An exhausted script is the caller's 400."""
    turn = max(0, eng.tok.decode(prompt).count("<|assistant|>") - 1)
    try:
        return plan_for(eng, request, body, prompt, turn)
    except ScriptExhausted as exc:
        return error(400, str(exc))


async def completions(request: web.Request) -> web.StreamResponse:
    eng = request.app[ENGINE]
    body = await read_body(request, eng)
    prompt = _prompt_ids(eng, body.get("prompt"))
    if prompt is None:
        return error(400, "prompt must be a string or a list of token ids")
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
        await pace(eng, len(plan.token_ids))
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
            "usage": usage_of(len(prompt), len(plan.token_ids)),
        }
        return web.Response(body=dumps(resp), content_type="application/json", headers=engine_headers(eng))
    out = await open_sse(request, eng)
    step = max(1, eng.config.chunk_tokens)
    n = len(plan.token_ids)
    try:
        for start in range(0, max(n, 1), step):
            end = min(start + step, n)
            await pace(eng, end - start)
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
            usage = base | {"object": "text_completion", "choices": [], "usage": usage_of(len(prompt), n)}
            await out.write(b"data: " + dumps(usage) + b"\n\n")
        await out.write(b"data: [DONE]\n\n")
    except (asyncio.CancelledError, ConnectionResetError):
        eng.stats.cancelled += 1
        raise
    await out.write_eof()
    return out


# -- SGLang native ---------------------------------------------------------------


def _meta(eng: EngineState, prompt: list[int], plan: Plan, upto: int, want_lp: bool) -> dict[str, Any]:
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
    body = await read_body(request, eng)
    prompt = _prompt_ids(eng, body.get("input_ids") if body.get("input_ids") is not None else body.get("text"))
    if prompt is None:
        return error(400, "give text or input_ids")
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
        await pace(eng, n)
        meta = _meta(eng, prompt, plan, n, want_lp) | {"finish_reason": finish}
        out = {
            "text": _visible(eng, plan, 0, n),
            "output_ids": plan.token_ids,
            "meta_info": meta,
        }
        return web.Response(body=dumps(out), content_type="application/json", headers=engine_headers(eng))
    resp = await open_sse(request, eng)
    step = max(1, eng.config.chunk_tokens)
    try:
        for end in range(min(step, n), n + step, step):  # cumulative chunks, as SGLang streams by default
            end = min(end, n)
            await pace(eng, step)
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
    body = await read_body(request, eng)
    if isinstance(body.get("messages"), list):
        generation = body.get("add_generation_prompt", True)
        ids = eng.tok.encode(render_chat(body["messages"], body.get("tools"), generation_prompt=generation))
    elif isinstance(body.get("prompt"), str):
        ids = eng.tok.encode(body["prompt"])
    else:
        return error(400, "give a prompt string or messages")
    return web.json_response({"count": len(ids), "max_model_len": 1 << 20, "tokens": ids, "token_strs": None})


async def detokenize(request: web.Request) -> web.Response:
    eng = request.app[ENGINE]
    body = await read_body(request, eng)
    ids = body.get("tokens")
    if not isinstance(ids, list) or not all(isinstance(t, int) and 0 <= t < eng.tok.vocab_size for t in ids):
        return error(400, "tokens must be a list of token ids")
    return web.json_response({"prompt": eng.tok.decode(ids)})
