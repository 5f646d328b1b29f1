"""The gateway's call record (schema version 2): one per call, append-only.

A record says what the client asked, what it got back, and what the engine saw and sampled,
token by token. Token ids always come from the engine's own fields (vLLM's ``prompt_token_ids``
and ``token_ids``, SGLang's ``input_ids`` / ``output_token_logprobs``), never from a
``logprobs.token`` string or its bytes. When the engine cannot give them (a plain
OpenAI-compatible upstream) the record says ``token_source="unavailable"`` and the token fields
are ``None``: nothing is invented.

``logprobs[i]`` is the behaviour log-probability of ``completion_token_ids[i]``; the two have the
same length whenever both are present.

Bump :data:`SCHEMA_VERSION` when a field changes meaning; :func:`record_from_json` refuses
records of a newer schema rather than misreading them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..trajectories.tokens import Prefix

__all__ = [
    "SCHEMA_VERSION",
    "Prefix",
    "PrefixCheck",
    "Timings",
    "CallError",
    "CallRecord",
    "record_to_json",
    "record_from_json",
]

SCHEMA_VERSION = 2  # 2: the store's lines may hold a prompt and request as a delta (gateway.lines)

TokenSource = Literal["engine", "unavailable"]


@dataclass(frozen=True, slots=True)
class PrefixCheck:
    """The verdict of the prefix check. ``position`` is the first index where the prompt and the
    parent's prompt + completion differ (``None`` for ROOT, UNCHECKED and a CLEAN extension)."""

    kind: Prefix
    parent_call_id: str | None = None
    position: int | None = None


@dataclass(frozen=True, slots=True)
class Timings:
    """Wall-clock start (UNIX seconds) and durations in milliseconds."""

    started_at: float
    upstream_ms: float | None = None  # until the engine's response (non-streaming) or last chunk
    first_token_ms: float | None = None  # streaming: until the first chunk with content
    total_ms: float | None = None  # until the record was written (just before the response is released)


@dataclass(frozen=True, slots=True)
class CallError:
    """What went wrong, as the client was told it, plus who broke it."""

    status: int
    type: str  # OpenAI error type: invalid_request_error, upstream_error, timeout, ...
    message: str
    origin: Literal["client", "upstream", "gateway"]


@dataclass(frozen=True, slots=True)
class CallRecord:
    episode_id: str
    call_id: str
    endpoint: str  # "chat.completions", "completions", or the path of a refused request
    timings: Timings
    status: int  # the HTTP status the client got (for a stream that failed after it began: the error's)
    parent_call_id: str | None = None
    model: str | None = None
    stream: bool = False
    request: dict[str, Any] | None = None  # the client's body as sent (None if it was not JSON)
    response: dict[str, Any] | None = None  # what the client got (if streamed: assembled, with the usage)
    prompt_token_ids: tuple[int, ...] | None = None
    completion_token_ids: tuple[int, ...] | None = None
    logprobs: tuple[float, ...] | None = None
    token_source: TokenSource = "unavailable"
    finish_reason: str | None = None
    engine: str = ""
    mode: str = ""  # how the adapter asked: "chat+return_token_ids", "generate", "text-only", ...
    weight_version: str | None = None
    prefix: PrefixCheck = PrefixCheck(Prefix.UNCHECKED)
    delivered: bool = True  # False: the client went away before it got the whole response
    replay_of: str | None = None  # an SDK retry answered from this earlier record
    request_hash: str | None = None
    error: CallError | None = None
    schema: int = SCHEMA_VERSION

    @property
    def ok(self) -> bool:
        return self.error is None and self.status < 400


def _tuple(value: Any) -> tuple | None:
    return None if value is None else tuple(value)


def record_to_json(r: CallRecord) -> dict[str, Any]:
    """A JSON-native dict (hand-written: ``dataclasses.asdict`` deep-copies and is slow)."""
    t, p, e = r.timings, r.prefix, r.error
    return {
        "schema": r.schema,
        "episode_id": r.episode_id,
        "call_id": r.call_id,
        "parent_call_id": r.parent_call_id,
        "endpoint": r.endpoint,
        "status": r.status,
        "model": r.model,
        "stream": r.stream,
        "request": r.request,
        "response": r.response,
        "prompt_token_ids": r.prompt_token_ids,
        "completion_token_ids": r.completion_token_ids,
        "logprobs": r.logprobs,
        "token_source": r.token_source,
        "finish_reason": r.finish_reason,
        "engine": r.engine,
        "mode": r.mode,
        "weight_version": r.weight_version,
        "prefix": {"kind": p.kind.value, "parent_call_id": p.parent_call_id, "position": p.position},
        "delivered": r.delivered,
        "replay_of": r.replay_of,
        "request_hash": r.request_hash,
        "timings": {
            "started_at": t.started_at,
            "upstream_ms": t.upstream_ms,
            "first_token_ms": t.first_token_ms,
            "total_ms": t.total_ms,
        },
        "error": None if e is None else {"status": e.status, "type": e.type, "message": e.message, "origin": e.origin},
    }


def record_from_json(d: dict[str, Any]) -> CallRecord:
    schema = d.get("schema")
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise ValueError(f"gateway record schema {schema!r} is newer than this reader ({SCHEMA_VERSION})")
    p, e = d["prefix"], d.get("error")
    return CallRecord(
        schema=schema,
        episode_id=d["episode_id"],
        call_id=d["call_id"],
        parent_call_id=d.get("parent_call_id"),
        endpoint=d["endpoint"],
        status=d["status"],
        model=d.get("model"),
        stream=d.get("stream", False),
        request=d.get("request"),
        response=d.get("response"),
        prompt_token_ids=_tuple(d.get("prompt_token_ids")),
        completion_token_ids=_tuple(d.get("completion_token_ids")),
        logprobs=_tuple(d.get("logprobs")),
        token_source=d.get("token_source", "unavailable"),
        finish_reason=d.get("finish_reason"),
        engine=d.get("engine", ""),
        mode=d.get("mode", ""),
        weight_version=d.get("weight_version"),
        prefix=PrefixCheck(Prefix(p["kind"]), p.get("parent_call_id"), p.get("position")),
        delivered=d.get("delivered", True),
        replay_of=d.get("replay_of"),
        request_hash=d.get("request_hash"),
        timings=Timings(**d["timings"]),
        error=None if e is None else CallError(**e),
    )
