"""The gateway's HTTP routes: proxy a call, record it, answer the client.

The path of one call: read and check the body -> answer an SDK retry from its record, or ask the
engine (through the upstream adapter) -> strip the fields the gateway asked for and the client did
not -> write the record (handed to the OS) -> release the response. Every failure, the client's or
the engine's, becomes an OpenAI-style error body with a fitting status and a record.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..errors import GatewayError, GatewayRefused, GatewayStoreError, UpstreamError
from ._json import dumps, loads
from .config import DEFAULT_EPISODE
from .consistency import check_prompt
from .records import CallError, CallRecord, Prefix, PrefixCheck, Timings, record_to_json
from .sse import DONE, Assembler, encode_event, synthesize_chunks
from .state import STATE, GatewayState
from .upstream import Capture, Endpoint, UpstreamRequest
from .validate import validate_body

__all__ = ["add_routes"]

log = logging.getLogger("boxgym.gateway")

_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass(slots=True)
class _Call:
    """What is known about one call while it is handled."""

    state: GatewayState
    episode_id: str
    endpoint: str
    t0: float = field(default_factory=time.perf_counter)
    started_at: float = field(default_factory=time.time)
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    body: dict[str, Any] | None = None
    request_hash: str | None = None
    parent_hint: str | None = None
    upstream_s: float | None = None


def _episode(request: web.Request, state: GatewayState) -> str:
    episode = request.match_info.get("episode_id")
    if episode:
        return episode
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        token = auth[7:].strip()
        if token not in state.config.placeholder_bearers:
            return token
    return DEFAULT_EPISODE


def _error_body(status: int, type_: str, message: str, param: str | None = None) -> bytes:
    return dumps({"error": {"message": message, "type": type_, "param": param, "code": status}})


def _write(
    call: _Call,
    *,
    status: int,
    response: dict[str, Any] | None = None,
    capture: Capture | None = None,
    error: CallError | None = None,
    delivered: bool = True,
    replay_of: CallRecord | None = None,
) -> CallRecord:
    """Build the record, run the prefix check, hand it to the OS, count it."""
    state = call.state
    store = state.store
    assert store is not None
    body = call.body or {}
    prompt = completion = lps = None
    if replay_of is not None:
        prompt, completion, lps = replay_of.prompt_token_ids, replay_of.completion_token_ids, replay_of.logprobs
    elif capture is not None and capture.prompt_ids is not None and capture.completion_ids is not None:
        prompt, completion = tuple(capture.prompt_ids), tuple(capture.completion_ids)
        if capture.logprobs is not None and len(capture.logprobs) == len(completion):
            lps = tuple(capture.logprobs)
    if replay_of is not None:
        prefix = replay_of.prefix
    elif error is None and delivered:
        prefix = check_prompt(
            prompt,
            store.history(call.episode_id),
            tail=state.config.realign_tail_tokens,
            parent_call_id=call.parent_hint,
        )
    else:
        prefix = PrefixCheck(Prefix.UNCHECKED)
    upstream = state.upstream
    endpoint: Endpoint | str = call.endpoint
    choice = ((response or {}).get("choices") or [{}])[0]
    total = time.perf_counter() - call.t0
    first = capture.first_chunk_at - call.t0 if capture is not None and capture.first_chunk_at else None
    record = CallRecord(
        episode_id=call.episode_id,
        call_id=call.call_id,
        parent_call_id=prefix.parent_call_id,
        endpoint=call.endpoint,
        status=status,
        model=body.get("model") if isinstance(body.get("model"), str) else None,
        stream=bool(body.get("stream")),
        request=call.body,
        response=response,
        prompt_token_ids=prompt,
        completion_token_ids=completion,
        logprobs=lps,
        token_source="engine" if prompt is not None else "unavailable",
        finish_reason=choice.get("finish_reason") if isinstance(choice, dict) else None,
        engine=upstream.engine if upstream is not None else "",
        mode=upstream.mode(endpoint, bool(body.get("stream")))
        if upstream is not None and endpoint in ("chat.completions", "completions")
        else "",  # type: ignore[arg-type]
        weight_version=replay_of.weight_version
        if replay_of is not None
        else ((capture.weight_version if capture is not None else None) or state.weight_version),
        prefix=prefix,
        delivered=delivered,
        replay_of=replay_of.call_id if replay_of is not None else None,
        request_hash=call.request_hash,
        error=error,
        timings=Timings(
            started_at=call.started_at,
            upstream_ms=None if call.upstream_s is None else call.upstream_s * 1000,
            first_token_ms=None if first is None else first * 1000,
            total_ms=total * 1000,
        ),
    )
    store.append(record)
    state.metrics.observe(
        call.endpoint,
        status,
        record.stream,
        total,
        call.upstream_s,
        len(prompt or ()),
        len(completion or ()),
        prefix.kind.value,
        error.type if error is not None else None,
    )
    return record


def _fail(call: _Call, exc: GatewayError, origin: str) -> web.Response:
    status = getattr(exc, "status", 500)
    type_ = getattr(exc, "error_type", "gateway_error")
    message = str(exc)
    if isinstance(exc, UpstreamError) and exc.body:
        message = f"{message}: {exc.body[:1000]}"
    if origin != "client":
        log.warning("episode %s call %s: %s (%s)", call.episode_id, call.call_id, message, type_)
    _write(call, status=status, error=CallError(status, type_, message, origin))  # type: ignore[arg-type]
    return web.Response(
        status=status,
        body=_error_body(status, type_, message, getattr(exc, "param", None)),
        content_type="application/json",
    )


class _Strip:
    """Removes from responses and chunks the fields the gateway asked for and the client did not."""

    __slots__ = ("ids", "lp", "sg_prompt", "meta", "usage")

    def __init__(self, body: dict[str, Any], endpoint: str) -> None:
        self.ids = bool(body.get("return_token_ids"))
        self.usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.lp = bool(body.get("logprobs")) if endpoint == "chat.completions" else body.get("logprobs") is not None
        self.sg_prompt = bool(body.get("return_prompt_token_ids"))
        self.meta = bool(body.get("return_meta_info"))

    def keep(self, chunk: dict[str, Any]) -> bool:
        """False for the usage-only chunk the gateway asked for and the client did not."""
        return self.usage or bool(chunk.get("choices")) or not chunk.get("usage")

    def __call__(self, obj: dict[str, Any]) -> dict[str, Any]:
        if not self.ids:
            obj.pop("prompt_token_ids", None)
        for ch in obj.get("choices") or ():
            if not isinstance(ch, dict):
                continue
            if not self.ids:
                ch.pop("token_ids", None)
                if not self.sg_prompt:
                    ch.pop("prompt_token_ids", None)
            if not self.meta:
                ch.pop("meta_info", None)
            if not self.lp and ch.get("logprobs") is not None:
                ch["logprobs"] = None
        return obj


async def _read_body(request: web.Request, call: _Call) -> dict[str, Any]:
    limit = call.state.config.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise GatewayRefused(f"the body is larger than {limit} bytes", status=413)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise GatewayRefused(f"the body is larger than {limit} bytes", status=413) from exc
    call.request_hash = hashlib.blake2b(raw, digest_size=16).hexdigest()
    try:
        body = loads(raw)
    except ValueError as exc:
        raise GatewayRefused(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise GatewayRefused("the body must be a JSON object")
    call.body = body
    validate_body(body, call.endpoint)
    return body


async def _proxy(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    state = request.app[STATE]
    call = _Call(state, _episode(request, state), endpoint)
    try:
        body = await _read_body(request, call)
    except GatewayRefused as exc:
        return _fail(call, exc, "client")
    headers = state.config.headers
    call.parent_hint = request.headers.get(headers.parent_call)
    retry = request.headers.get(headers.retry_count, "0")
    if retry not in ("", "0") and call.request_hash is not None:
        earlier = state.store.answered(call.episode_id, call.request_hash) if state.store else None
        if earlier is not None and earlier.response is not None:
            return await _replay(request, call, earlier)
    ureq = UpstreamRequest(endpoint, body, call.episode_id)
    if body.get("stream"):
        return await _stream(request, call, ureq, _Strip(body, endpoint))
    upstream = state.upstream
    assert upstream is not None
    try:
        reply = await upstream.complete(ureq)
    except UpstreamError as exc:
        call.upstream_s = time.perf_counter() - call.t0
        return _fail(call, exc, "upstream")
    except asyncio.CancelledError:
        # the client went away: aiohttp cancelled us, which also cancelled the engine's request
        _write(
            call,
            status=499,
            error=CallError(499, "client_disconnected", "the client disconnected before the answer", "client"),
            delivered=False,
        )
        raise
    except Exception as exc:  # a bug of ours: answer 500, record it, keep serving
        log.exception("episode %s call %s: gateway failure", call.episode_id, call.call_id)
        return _fail(call, GatewayError(f"the gateway failed: {exc!r}"), "gateway")
    call.upstream_s = time.perf_counter() - call.t0
    response = _Strip(body, endpoint)(reply.body)
    payload = dumps(response)
    _write(call, status=200, response=response, capture=reply.capture)
    return web.Response(body=payload, content_type="application/json")


async def _stream(request: web.Request, call: _Call, ureq: UpstreamRequest, strip: _Strip) -> web.StreamResponse:
    upstream = call.state.upstream
    assert upstream is not None
    capture, asm = Capture(), Assembler(call.endpoint)
    resp = web.StreamResponse(headers=_SSE_HEADERS)
    chunks = upstream.stream(ureq, capture)
    try:
        async for batch in chunks:
            if not resp.prepared:
                await resp.prepare(request)
            out = []
            for chunk in batch:
                asm.add(chunk)
                if strip.keep(chunk):
                    out.append(encode_event(strip(chunk)))
            if out:
                await resp.write(b"".join(out))
    except (asyncio.CancelledError, ConnectionResetError) as exc:
        await chunks.aclose()  # cancels the engine's request
        call.upstream_s = time.perf_counter() - call.t0
        _write(
            call,
            status=499,
            response=asm.response(),
            capture=capture,
            delivered=False,
            error=CallError(499, "client_disconnected", "the client disconnected mid-stream", "client"),
        )
        if isinstance(exc, asyncio.CancelledError):
            raise
        return resp
    except Exception as exc:  # UpstreamError, or a bug of ours
        call.upstream_s = time.perf_counter() - call.t0
        origin = "upstream"
        if not isinstance(exc, UpstreamError):  # a bug of ours: answer 500, record it, keep serving
            log.exception("episode %s call %s: gateway failure", call.episode_id, call.call_id)
            exc, origin = GatewayError(f"the gateway failed: {exc!r}"), "gateway"
        if not resp.prepared:
            return _fail(call, exc, origin)
        # the stream has begun: the status is sent, so the error goes in the stream (the SDKs raise it)
        type_, status = getattr(exc, "error_type", "gateway_error"), getattr(exc, "status", 500)
        _write(
            call,
            status=status,
            response=asm.response(),
            capture=capture,
            error=CallError(status, type_, str(exc), origin),  # type: ignore[arg-type]
        )
        await resp.write(b"data: " + _error_body(status, type_, str(exc)) + b"\n\n")
        await resp.write_eof()
        return resp
    call.upstream_s = time.perf_counter() - call.t0
    _write(call, status=200, response=asm.response(), capture=capture)
    try:
        if not resp.prepared:
            await resp.prepare(request)
        await resp.write_eof(DONE)  # one send for [DONE] and the end of the chunked body
    except ConnectionResetError:
        pass  # recorded already; the client left just before [DONE]
    return resp


async def _replay(request: web.Request, call: _Call, earlier: CallRecord) -> web.StreamResponse:
    """An SDK retry of a call already answered: the same answer, without asking the engine again."""
    call.state.metrics.replays += 1
    response = earlier.response or {}
    _write(call, status=200, response=response, replay_of=earlier)
    if not (call.body or {}).get("stream"):
        return web.Response(body=dumps(response), content_type="application/json")
    resp = web.StreamResponse(headers=_SSE_HEADERS)
    await resp.prepare(request)
    include_usage = bool(((call.body or {}).get("stream_options") or {}).get("include_usage"))
    events = [encode_event(c) for c in synthesize_chunks(response, call.endpoint, include_usage=include_usage)]
    await resp.write_eof(b"".join(events) + DONE)
    return resp


async def _recorded(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    try:
        return await _proxy(request, endpoint)
    except GatewayStoreError as exc:
        # no answer leaves without its record: a trainer would silently miss the turn
        return web.Response(
            status=500, body=_error_body(500, "record_store_error", str(exc)), content_type="application/json"
        )


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _recorded(request, "chat.completions")


async def completions(request: web.Request) -> web.StreamResponse:
    return await _recorded(request, "completions")


async def models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    assert state.upstream is not None
    try:
        data = await state.upstream.models()
    except UpstreamError as exc:
        status = getattr(exc, "status", 502)
        return web.Response(
            status=status, body=_error_body(status, exc.error_type, str(exc)), content_type="application/json"
        )
    return web.Response(body=dumps(data), content_type="application/json")


async def episode_records(request: web.Request) -> web.Response:
    state = request.app[STATE]
    assert state.store is not None
    episode = request.match_info["episode_id"]
    records = await state.store.load_episode(episode)
    body = {"episode_id": episode, "records": [record_to_json(r) for r in records]}
    return web.Response(body=dumps(body), content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=request.app[STATE].metrics.render(), content_type="text/plain", charset="utf-8")


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


_KNOWN = {"/v1/chat/completions", "/v1/completions", "/v1/models"}


async def not_found(request: web.Request) -> web.Response:
    """Unknown routes and wrong methods: an OpenAI-style error, recorded like any refused call."""
    state = request.app[STATE]
    path = request.path
    tail = path.split("/v1/", 1)[-1] if path.startswith("/episodes/") else None
    known = path in _KNOWN or (tail is not None and "/v1/" + tail in _KNOWN)
    status, message = (
        (405, f"{request.method} is not allowed on {path}") if known else (404, f"no route {request.method} {path}")
    )
    if path.startswith("/episodes/"):
        episode = path.split("/")[2] or DEFAULT_EPISODE
    else:
        episode = _episode(request, state)
    call = _Call(state, episode, path)
    return _fail(
        call,
        GatewayRefused(message, status=status, error_type="not_found" if status == 404 else "method_not_allowed"),
        "client",
    )


def add_routes(app: web.Application) -> None:
    r = app.router
    for prefix in ("", "/episodes/{episode_id}"):
        r.add_post(prefix + "/v1/chat/completions", chat_completions)
        r.add_post(prefix + "/v1/completions", completions)
        r.add_get(prefix + "/v1/models", models)
    r.add_get("/episodes/{episode_id}/records", episode_records)
    r.add_get("/metrics", metrics)
    r.add_get("/health", health)
    r.add_route("*", "/{tail:.*}", not_found)
