"""The gateway's proxy routes: proxy a call, record it, answer the client.

The path of one call: name its episode -> read and check the body (within the body deadline) ->
bring the episode's earlier records back from the store if they are not in memory -> answer an
SDK retry from its record, or ask the engine (through the upstream adapter) -> strip the fields
the gateway asked for and the client did not, and name the response by its call id -> write the
record (handed to the OS) -> release the response. Every failure, the client's or the engine's,
becomes an OpenAI-style error body with a fitting status and a record.

The Responses API rides on the same path: its request is turned into a chat request for the
engine, and the answer back into a Responses object or events (:mod:`boxgym.gateway.responses`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..errors import GatewayError, GatewayRefused, GatewayStoreError, UpstreamError
from ._json import dumps, loads
from .config import DEFAULT_EPISODE
from .consistency import check_prompt
from .records import CallError, CallRecord, Prefix, PrefixCheck, Timings
from .responses import ResponseEvents, chat_body, replay_events, response_object
from .sse import DONE, Assembler, encode_event, synthesize_chunks
from .state import STATE, GatewayState
from .upstream import Capture, Endpoint, UpstreamRequest
from .validate import validate_body

__all__ = ["add_proxy_routes", "error_response", "error_body", "episode_of", "episode_in_path", "record_refusal"]

log = logging.getLogger("boxgym.gateway")

_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_RESPONSES = "responses"


@dataclass(slots=True)
class _Call:
    """What is known about one call while it is handled."""

    state: GatewayState
    episode_id: str
    endpoint: str
    t0: float = field(default_factory=time.perf_counter)
    started_at: float = field(default_factory=time.time)
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    body: dict[str, Any] | None = None  # the client's body, as recorded
    request_hash: str | None = None
    parent_hint: str | None = None
    upstream_s: float | None = None


_EPISODE_PATH = re.compile(r"/episodes/([^/]+)")


def episode_in_path(path_safe: str) -> str | None:
    """The episode a path names (``/episodes/{id}/...``), from aiohttp's ``URL.path_safe`` form
    of it (every escape decoded but ``%2F`` and ``%25``), decoded as aiohttp decodes
    ``match_info``. The gateway's routes and a worker's router both name episodes with it."""
    m = _EPISODE_PATH.match(path_safe)
    if m is None:
        return None
    value = m[1]
    return value.replace("%2F", "/").replace("%25", "%") if "%" in value else value


def episode_of(request: web.Request, state: GatewayState) -> tuple[str, GatewayRefused | None]:
    """The episode a request names (see ``Headers``), and a refusal if the path and the header
    name two different ones."""
    path = request.match_info.get("episode_id")
    header = request.headers.get(state.config.headers.affinity)
    if path:
        if header and header != path:
            return path, GatewayRefused(
                f"the path names episode {path!r} and the {state.config.headers.affinity} header {header!r}",
                param=state.config.headers.affinity,
            )
        return path, None
    if header:
        return header, None
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        token = auth[7:].strip()
        if token not in state.config.placeholder_bearers:
            return token, None
    return DEFAULT_EPISODE, None


def error_body(status: int, type_: str, message: str, param: str | None = None) -> bytes:
    return dumps({"error": {"message": message, "type": type_, "param": param, "code": status}})


def error_response(status: int, type_: str, message: str, param: str | None = None) -> web.Response:
    return web.Response(status=status, body=error_body(status, type_, message, param), content_type="application/json")


def _write(
    call: _Call,
    *,
    status: int,
    response: dict[str, Any] | None = None,
    capture: Capture | None = None,
    error: CallError | None = None,
    delivered: bool = True,
    replay_of: CallRecord | None = None,
    finish_reason: str | None = None,
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
    endpoint: Endpoint | str = "chat.completions" if call.endpoint == _RESPONSES else call.endpoint
    if finish_reason is None and response is not None:
        choice = (response.get("choices") or [{}])[0]
        finish_reason = choice.get("finish_reason") if isinstance(choice, dict) else None
    total = time.perf_counter() - call.t0
    first = capture.first_chunk_at - call.t0 if capture is not None and capture.first_chunk_at else None
    stream = body.get("stream") is True
    record = CallRecord(
        episode_id=call.episode_id,
        call_id=call.call_id,
        parent_call_id=prefix.parent_call_id,
        endpoint=call.endpoint,
        status=status,
        model=body.get("model") if isinstance(body.get("model"), str) else None,
        stream=stream,
        request=call.body,
        response=response,
        prompt_token_ids=prompt,
        completion_token_ids=completion,
        logprobs=lps,
        token_source="engine" if prompt is not None else "unavailable",
        finish_reason=finish_reason,
        engine=upstream.engine if upstream is not None else "",
        mode=upstream.mode(endpoint, stream)  # type: ignore[arg-type]
        if upstream is not None and endpoint in ("chat.completions", "completions")
        else "",
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
        stream,
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
    return error_response(status, type_, message, getattr(exc, "param", None))


def record_refusal(state: GatewayState, episode_id: str, endpoint: str, exc: GatewayRefused) -> web.Response:
    """Record a refused request that never became a call (an unknown route) and answer it."""
    return _fail(_Call(state, episode_id, endpoint), exc, "client")


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
    config = call.state.config
    limit = config.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise GatewayRefused(f"the body is larger than {limit} bytes", status=413)
    try:
        if request.content.is_eof():  # the whole body came with the headers: nothing to wait for
            raw = await request.read()
        else:
            async with asyncio.timeout(config.server.body_timeout):
                raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise GatewayRefused(f"the body is larger than {limit} bytes", status=413) from exc
    except TimeoutError as exc:
        raise GatewayRefused(
            f"the body did not arrive within {config.server.body_timeout} s", status=408, error_type="timeout"
        ) from exc
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


async def _refused(request: web.Request, call: _Call, exc: GatewayRefused) -> web.StreamResponse:
    response = _fail(call, exc, "client")
    if exc.status == 408:
        # the client trickles its body: answer and hang up, rather than read the rest of it
        response.force_close()
        await response.prepare(request)
        await response.write_eof()
        if request.transport is not None:
            request.transport.close()
    return response


async def _proxy(request: web.Request, endpoint: str) -> web.StreamResponse:
    state = request.app[STATE]
    store = state.store
    assert store is not None
    episode, conflict = episode_of(request, state)
    call = _Call(state, episode, endpoint)
    try:
        if conflict is not None:
            raise conflict
        body = await _read_body(request, call)
    except GatewayRefused as exc:
        return await _refused(request, call, exc)
    if store.needs_load(episode):
        await store.load(episode)  # a restart or an eviction: its history comes back first
    if store.closed(episode):
        exc = GatewayRefused(f"episode {episode!r} is closed", status=409, error_type="episode_closed")
        return _fail(call, exc, "client")
    headers = state.config.headers
    call.parent_hint = request.headers.get(headers.parent_call)
    retry = request.headers.get(headers.retry_count, "0")
    if retry not in ("", "0") and call.request_hash is not None:
        earlier = store.answered(episode, call.request_hash)
        if earlier is not None and earlier.response is not None:
            return await _replay(request, call, earlier)
    if endpoint == _RESPONSES:
        try:
            upstream_body = chat_body(body)
        except GatewayRefused as exc:
            return _fail(call, exc, "client")
        ureq = UpstreamRequest("chat.completions", upstream_body, episode)
        strip = _Strip(upstream_body, "chat.completions")
    else:
        ureq = UpstreamRequest(endpoint, body, episode)  # type: ignore[arg-type]
        strip = _Strip(body, endpoint)
    if body.get("stream"):
        return await _stream(request, call, ureq, strip)
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
    response = strip(reply.body)
    finish = None
    if endpoint == _RESPONSES:
        finish = ((response.get("choices") or [{}])[0] or {}).get("finish_reason")
        response = response_object(response, body, call.call_id)
    else:
        response["id"] = call.call_id  # the join key: a client's completion names its record
    payload = dumps(response)
    _write(call, status=200, response=response, capture=reply.capture, finish_reason=finish)
    return web.Response(body=payload, content_type="application/json")


async def _stream(request: web.Request, call: _Call, ureq: UpstreamRequest, strip: _Strip) -> web.StreamResponse:
    upstream = call.state.upstream
    assert upstream is not None
    capture, asm = Capture(), Assembler(ureq.endpoint)
    events = ResponseEvents(call.body or {}, call.call_id) if call.endpoint == _RESPONSES else None
    resp = web.StreamResponse(headers=_SSE_HEADERS)
    chunks = upstream.stream(ureq, capture)
    try:
        async for batch in chunks:
            if not resp.prepared:
                await resp.prepare(request)
                if events is not None:
                    await resp.write(events.start())
            out = []
            for chunk in batch:
                chunk["id"] = call.call_id
                asm.add(chunk)
                if events is not None:
                    out.append(events.chunk(chunk))
                elif strip.keep(chunk):
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
        if events is not None:
            await resp.write(events.error(status, type_, str(exc)))
        else:
            await resp.write(b"data: " + error_body(status, type_, str(exc)) + b"\n\n")
        await resp.write_eof()
        return resp
    call.upstream_s = time.perf_counter() - call.t0
    response = asm.response()
    tail = DONE
    finish = None
    if events is not None:
        finish = response["choices"][0].get("finish_reason")
        response = response_object(response, call.body or {}, call.call_id)
        tail = events.finish(response)
    _write(call, status=200, response=response, capture=capture, finish_reason=finish)
    try:
        if not resp.prepared:
            await resp.prepare(request)
        await resp.write_eof(tail)  # one send for the last event and the end of the chunked body
    except ConnectionResetError:
        pass  # recorded already; the client left just before the end
    return resp


async def _replay(request: web.Request, call: _Call, earlier: CallRecord) -> web.StreamResponse:
    """An SDK retry of a call already answered: the same answer, without asking the engine again."""
    call.state.metrics.replays += 1
    response = earlier.response or {}
    _write(call, status=200, response=response, replay_of=earlier, finish_reason=earlier.finish_reason)
    body = call.body or {}
    if not body.get("stream"):
        return web.Response(body=dumps(response), content_type="application/json")
    resp = web.StreamResponse(headers=_SSE_HEADERS)
    await resp.prepare(request)
    if call.endpoint == _RESPONSES:
        await resp.write_eof(replay_events(response, body))
        return resp
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    events = [encode_event(c) for c in synthesize_chunks(response, call.endpoint, include_usage=include_usage)]
    await resp.write_eof(b"".join(events) + DONE)
    return resp


async def _recorded(request: web.Request, endpoint: str) -> web.StreamResponse:
    try:
        return await _proxy(request, endpoint)
    except GatewayStoreError as exc:
        # no answer leaves without its record: a trainer would silently miss the turn
        return error_response(500, "record_store_error", str(exc))


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _recorded(request, "chat.completions")


async def completions(request: web.Request) -> web.StreamResponse:
    return await _recorded(request, "completions")


async def responses(request: web.Request) -> web.StreamResponse:
    return await _recorded(request, _RESPONSES)


def add_proxy_routes(app: web.Application) -> None:
    r = app.router
    for prefix in ("", "/episodes/{episode_id}"):
        r.add_post(prefix + "/v1/chat/completions", chat_completions)
        r.add_post(prefix + "/v1/completions", completions)
        r.add_post(prefix + "/v1/responses", responses)
