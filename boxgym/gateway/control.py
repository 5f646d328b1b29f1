"""The gateway's own routes: control by a trainer, reads of the records, and what engines serve
besides completions.

Control and reads (``Authorization: Bearer <admin token>`` when ``GatewayConfig.admin_token`` is
set; 401 otherwise)::

    GET  /episodes/{id}/records      the episode's call records, in call order (404: unknown episode)
    GET  /episodes/{id}/training     its token view: sequences of token ids, loss mask, logprobs
                                     (?loss_rule=once|per_branch; once by default)
    POST /episodes/{id}/close        the episode is complete: marked so in the store, fsynced,
                                     dropped from memory; later calls in it are refused (409)
    GET  /weight_version             {"weight_version": ...}: what records are tagged with
    PUT  /weight_version             {"weight_version": "step-42"}: set it after a weight sync
                                     (in every worker, before the answer)
    GET  /workers                    {"workers": [{index, pid, records_written, episodes_in_memory}]}

With several workers (``serve --workers N``) a route that names an episode reaches the worker
that owns it (:mod:`boxgym.gateway.workers`); ``/metrics`` sums every worker's counts.

Open to all: ``/metrics`` (Prometheus text), ``/health``, ``/v1/models`` (the engine's), and
vLLM's ``/tokenize`` and ``/detokenize``, passed through to the engine (an engine without them
answers 404) and not recorded. Any other route is an OpenAI-style 404 or 405, recorded like any
refused call.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import asdict

from aiohttp import web

from ..errors import GatewayRefused, UpstreamError
from ..trajectories.tokens import LossRule
from ._json import dumps, loads
from .export import training_view, view_to_json
from .metrics import Metrics
from .records import record_to_json
from .routes import episode_in_path, episode_of, error_response, record_refusal
from .state import STATE, GatewayState

__all__ = ["add_control_routes"]


def _unauthorized(request: web.Request, state: GatewayState) -> web.Response | None:
    token = state.config.admin_token
    if token is None:
        return None
    auth = request.headers.get("Authorization", "")
    given = auth[7:].strip() if auth.startswith("Bearer ") else ""
    if hmac.compare_digest(given.encode(), token.encode()):
        return None
    return error_response(401, "unauthorized", "this route needs the gateway's admin token as the bearer")


def _unknown(episode: str) -> web.Response:
    return error_response(404, "not_found", f"no episode {episode!r} in this gateway's store")


async def episode_records(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if (refusal := _unauthorized(request, state)) is not None:
        return refusal
    assert state.store is not None
    episode = request.match_info["episode_id"]
    if not state.store.known(episode):
        return _unknown(episode)
    records = await state.store.load_episode(episode)
    body = {
        "episode_id": episode,
        "closed": state.store.closed(episode),
        "records": [record_to_json(r) for r in records],
    }
    return web.Response(body=dumps(body), content_type="application/json")


async def episode_training(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if (refusal := _unauthorized(request, state)) is not None:
        return refusal
    assert state.store is not None
    episode = request.match_info["episode_id"]
    try:
        rule = LossRule(request.query.get("loss_rule", LossRule.ONCE.value))
    except ValueError:
        values = ", ".join(r.value for r in LossRule)
        return error_response(400, "invalid_request_error", f"loss_rule must be one of {values}", "loss_rule")
    if not state.store.known(episode):
        return _unknown(episode)
    records = await state.store.load_episode(episode)
    view = training_view(records, episode, loss_rule=rule, tail=state.config.realign_tail_tokens)
    return web.Response(body=dumps(view_to_json(view)), content_type="application/json")


async def close_episode(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if (refusal := _unauthorized(request, state)) is not None:
        return refusal
    assert state.store is not None
    episode = request.match_info["episode_id"]
    await state.store.close_episode(episode)
    return web.Response(body=dumps({"episode_id": episode, "closed": True}), content_type="application/json")


async def get_weight_version(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if (refusal := _unauthorized(request, state)) is not None:
        return refusal
    return web.Response(body=dumps({"weight_version": state.weight_version}), content_type="application/json")


async def put_weight_version(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if (refusal := _unauthorized(request, state)) is not None:
        return refusal
    try:
        body = loads(await request.read())
    except ValueError:
        body = None
    version = body.get("weight_version", 0) if isinstance(body, dict) else 0
    if version is not None and not isinstance(version, str):
        return error_response(
            400, "invalid_request_error", 'the body must be {"weight_version": "<version>" or null}', "weight_version"
        )
    if state.cluster is not None:
        await state.cluster.set_weight_version(version)  # every worker has it before the answer
    else:
        state.weight_version = version
    return web.Response(body=dumps({"weight_version": version}), content_type="application/json")


async def workers(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if (refusal := _unauthorized(request, state)) is not None:
        return refusal
    infos = await state.cluster.workers() if state.cluster is not None else [state.info()]
    body = {"workers": [asdict(i) for i in infos]}
    return web.Response(body=dumps(body), content_type="application/json")


async def models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    assert state.upstream is not None
    try:
        data = await state.upstream.models()
    except UpstreamError as exc:
        status = getattr(exc, "status", 502)
        return error_response(status, exc.error_type, str(exc))
    return web.Response(body=dumps(data), content_type="application/json")


async def passthrough(request: web.Request) -> web.Response:
    """vLLM's /tokenize and /detokenize: to the engine and back, recorded as nothing."""
    state = request.app[STATE]
    assert state.upstream is not None
    episode, _ = episode_of(request, state)
    path = "/" + request.path.rsplit("/", 1)[-1]
    try:
        status, payload, content_type = await state.upstream.passthrough(path, await request.read(), episode)
    except UpstreamError as exc:
        return error_response(getattr(exc, "status", 502), exc.error_type, str(exc))
    if status >= 400:
        detail = payload[:1000].decode(errors="replace")
        return error_response(status, "upstream_refused", f"the engine answered {status} on {path}: {detail}")
    return web.Response(status=status, body=payload, content_type=content_type)


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    counted = state.metrics if state.cluster is None else Metrics.merged(await state.cluster.metrics())
    return web.Response(text=counted.render(), content_type="text/plain", charset="utf-8")


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


# paths the gateway serves (with some method): any other method on them is a 405
_KNOWN = re.compile(
    r"^(/episodes/[^/]+)?/v1/(chat/completions|completions|responses|models)$"
    r"|^(/episodes/[^/]+)?/(tokenize|detokenize)$"
    r"|^/episodes/[^/]+/(records|training|close)$"
    r"|^/(weight_version|workers|metrics|health)$"
)


async def not_found(request: web.Request) -> web.Response:
    """Unknown routes and wrong methods: an OpenAI-style error, recorded like any refused call."""
    state = request.app[STATE]
    path = request.path
    known = _KNOWN.match(path) is not None
    status, message = (
        (405, f"{request.method} is not allowed on {path}") if known else (404, f"no route {request.method} {path}")
    )
    episode = episode_in_path(request.rel_url.path_safe)
    if episode is None:
        episode, _ = episode_of(request, state)
    error_type = "not_found" if status == 404 else "method_not_allowed"
    return record_refusal(state, episode, path, GatewayRefused(message, status=status, error_type=error_type))


def add_control_routes(app: web.Application) -> None:
    """The routes above, and last the catch-all for everything else."""
    r = app.router
    for prefix in ("", "/episodes/{episode_id}"):
        r.add_get(prefix + "/v1/models", models)
        r.add_post(prefix + "/tokenize", passthrough)
        r.add_post(prefix + "/detokenize", passthrough)
    r.add_get("/episodes/{episode_id}/records", episode_records)
    r.add_get("/episodes/{episode_id}/training", episode_training)
    r.add_post("/episodes/{episode_id}/close", close_episode)
    r.add_get("/weight_version", get_weight_version)
    r.add_put("/weight_version", put_weight_version)
    r.add_get("/workers", workers)
    r.add_get("/metrics", metrics)
    r.add_get("/health", health)
    r.add_route("*", "/{tail:.*}", not_found)
