"""The one seam between the gateway and an engine.

An :class:`Upstream` turns a client's OpenAI request into whatever the engine needs and gives
back an OpenAI-shaped response (or chunks) plus a :class:`Capture` of the engine's own token ids
and log-probabilities. Adapters may add fields to what the engine returns; the gateway strips the
ones the client did not ask for. Every failure leaves an adapter as an :class:`UpstreamError`
subclass, never as a raw aiohttp or JSON error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiohttp

from ...errors import UpstreamError, UpstreamProtocolError, UpstreamRefused, UpstreamTimeout, UpstreamUnavailable
from .._json import dumps, loads
from ..config import GatewayConfig

log = logging.getLogger("boxgym.gateway")

__all__ = [
    "Endpoint",
    "UpstreamRequest",
    "Capture",
    "UpstreamReply",
    "Upstream",
    "HttpUpstream",
    "engine_shape",
    "check_counts",
]

Endpoint = Literal["chat.completions", "completions"]


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    endpoint: Endpoint
    body: Mapping[str, Any]  # the client's body; adapters copy it, never mutate it
    episode_id: str


@dataclass(slots=True)
class Capture:
    """What the engine said about tokens. ``None`` means the engine did not say (never guessed)."""

    prompt_ids: list[int] | None = None
    completion_ids: list[int] | None = None
    logprobs: list[float] | None = None
    weight_version: str | None = None
    first_chunk_at: float | None = None  # perf_counter() of the first chunk with content

    def add(self, ids: Any, lps: list[float] | None) -> None:
        if ids is not None:
            self.completion_ids = (self.completion_ids or []) + [int(t) for t in ids]
        if lps is not None:
            self.logprobs = (self.logprobs or []) + lps


@dataclass(slots=True)
class UpstreamReply:
    body: dict[str, Any]  # OpenAI-shaped, possibly with the engine's extra fields
    capture: Capture


class Upstream(Protocol):
    """One engine dialect. Implementations: vLLM, SGLang, plain OpenAI-compatible."""

    engine: str

    def mode(self, endpoint: Endpoint, stream: bool) -> str:
        """How this adapter asks for tokens on this endpoint (recorded with each call)."""
        ...

    async def complete(self, request: UpstreamRequest) -> UpstreamReply:
        """A non-streaming call."""
        ...

    def stream(self, request: UpstreamRequest, capture: Capture) -> AsyncIterator[list[dict[str, Any]]]:
        """A streaming call: yields batches of OpenAI chunk objects (those that arrived together)
        and fills ``capture`` as they pass."""
        ...

    async def models(self) -> dict[str, Any]:
        """The engine's ``/v1/models`` list."""
        ...

    async def passthrough(self, path: str, body: bytes, episode_id: str) -> tuple[int, bytes, str]:
        """POST ``body`` to the engine's ``path`` as it is (vLLM's /tokenize, /detokenize);
        returns the status, the body and its content type."""
        ...


class HttpUpstream:
    """Shared HTTP plumbing: one session, deadlines, the affinity header, error translation."""

    engine = "base"

    def __init__(self, config: GatewayConfig, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.session = session
        self.base = config.upstream.url.rstrip("/")
        t = config.timeouts
        # A non-streaming engine sends nothing until it is done, so only the total deadline applies;
        # a stream that goes quiet for read_idle seconds is dead.
        self._timeout = aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect)
        self._stream_timeout = aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect, sock_read=t.read_idle)
        self._headers = {"Content-Type": "application/json"}
        if config.upstream.api_key:
            self._headers["Authorization"] = f"Bearer {config.upstream.api_key}"
        self._affinity = config.headers.affinity
        self._wv_header = config.headers.weight_version

    def headers(self, episode_id: str) -> dict[str, str]:
        return {**self._headers, self._affinity: episode_id}

    def _weight_version(self, resp: aiohttp.ClientResponse) -> str | None:
        return resp.headers.get(self._wv_header)

    async def models(self) -> dict[str, Any]:
        try:
            async with self.session.get(self.base + "/v1/models", headers=self._headers, timeout=self._timeout) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise UpstreamRefused(
                        f"the engine answered {resp.status}",
                        status=resp.status,
                        body=raw[:4096].decode(errors="replace"),
                    )
        except UpstreamError:
            raise
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout("the engine did not list its models in time") from exc
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise UpstreamUnavailable(f"cannot reach the engine at {self.base}: {exc}") from exc
        try:
            data = loads(raw)
        except ValueError as exc:
            raise UpstreamProtocolError("the engine's model list is not JSON") from exc
        if not isinstance(data, dict):
            raise UpstreamProtocolError("the engine's model list is not an object")
        return data

    async def passthrough(self, path: str, body: bytes, episode_id: str) -> tuple[int, bytes, str]:
        try:
            async with self.session.post(
                self.base + path, data=body, headers=self.headers(episode_id), timeout=self._timeout
            ) as resp:
                return resp.status, await resp.read(), resp.content_type
        except Exception as exc:
            mapped = self._translate(exc, f"the engine did not answer {path} in time", "cannot reach")
            if mapped is exc:
                raise
            raise mapped from exc

    def _translate(self, exc: Exception, timeout_message: str, lost: str) -> Exception:
        """The one mapping of transport errors to upstream errors; anything else comes back unchanged."""
        if isinstance(exc, UpstreamError):
            return exc
        if isinstance(exc, (TimeoutError, aiohttp.ServerTimeoutError)):
            return UpstreamTimeout(timeout_message)
        if isinstance(exc, (aiohttp.ClientConnectionError, OSError)):
            return UpstreamUnavailable(f"{lost} the engine at {self.base}: {exc}")
        if isinstance(exc, aiohttp.ClientError):
            return UpstreamProtocolError(f"bad HTTP from the engine: {exc}")
        return exc

    async def post_json(self, path: str, body: Mapping[str, Any], episode_id: str) -> tuple[dict[str, Any], str | None]:
        """POST and parse a JSON object; returns it and the weight-version header."""
        try:
            async with self.session.post(
                self.base + path, data=dumps(body), headers=self.headers(episode_id), timeout=self._timeout
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise UpstreamRefused(
                        f"the engine answered {resp.status}",
                        status=resp.status,
                        body=raw[:4096].decode(errors="replace"),
                    )
                wv = self._weight_version(resp)
        except Exception as exc:
            mapped = self._translate(exc, f"the engine did not answer {path} in time", "cannot reach")
            if mapped is exc:
                raise
            raise mapped from exc
        try:
            data = loads(raw)
        except ValueError as exc:
            raise UpstreamProtocolError(
                "the engine's answer is not JSON", body=raw[:4096].decode(errors="replace")
            ) from exc
        if not isinstance(data, dict):
            raise UpstreamProtocolError(
                "the engine's answer is not a JSON object", body=raw[:4096].decode(errors="replace")
            )
        return data, wv

    async def post_sse(
        self, path: str, body: Mapping[str, Any], episode_id: str, capture: Capture
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """POST and yield the ``data:`` objects of the event stream, in batches of those that
        arrived together (so the gateway writes them to its client in one go), until ``[DONE]``."""
        try:
            async with self.session.post(
                self.base + path, data=dumps(body), headers=self.headers(episode_id), timeout=self._stream_timeout
            ) as resp:
                if resp.status >= 400:
                    raw = await resp.read()
                    raise UpstreamRefused(
                        f"the engine answered {resp.status}",
                        status=resp.status,
                        body=raw[:4096].decode(errors="replace"),
                    )
                if not resp.headers.get("Content-Type", "").startswith("text/event-stream"):
                    raw = await resp.read()
                    raise UpstreamProtocolError(
                        "the engine did not answer with an event stream", body=raw[:4096].decode(errors="replace")
                    )
                capture.weight_version = self._weight_version(resp)
                done = False
                async for lines in _lines(resp.content):
                    batch = []
                    for line in lines:
                        if not line.startswith(b"data:"):
                            continue  # blank separators, comments, event: lines
                        payload = line[5:].strip()
                        if payload == b"[DONE]":
                            done = True
                            break
                        batch.append(_chunk(payload))
                    if batch:
                        if capture.first_chunk_at is None:
                            capture.first_chunk_at = time.perf_counter()
                        yield batch
                    if done:
                        break
                if not done:
                    raise UpstreamProtocolError("the engine's stream ended without [DONE]")
        except Exception as exc:
            mapped = self._translate(exc, f"the engine stopped answering {path}", "lost")
            if mapped is exc:
                raise
            raise mapped from exc


def _chunk(payload: bytes) -> dict[str, Any]:
    try:
        chunk = loads(payload)
    except ValueError as exc:
        raise UpstreamProtocolError(
            "the engine sent a chunk that is not JSON", body=payload[:4096].decode(errors="replace")
        ) from exc
    if not isinstance(chunk, dict):
        raise UpstreamProtocolError("the engine sent a chunk that is not an object")
    if "error" in chunk and "choices" not in chunk:
        raise UpstreamRefused(
            f"the engine failed mid-stream: {chunk['error']}", status=502, body=payload[:4096].decode(errors="replace")
        )
    return chunk


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[list[bytes]]:
    """The complete lines of each network read, of any length (aiohttp's own readline refuses
    lines over 128 KiB, and the first chunk of a long prompt carries all its token ids)."""
    buf = bytearray()
    async for data in content.iter_any():
        buf += data
        start, lines = 0, []
        while (end := buf.find(b"\n", start)) >= 0:
            lines.append(bytes(buf[start:end]))
            start = end + 1
        del buf[:start]
        if lines:
            yield lines
    if buf:
        yield [bytes(buf)]


def check_counts(capture: Capture, usage: Any) -> None:
    """Ids that disagree with the engine's own token counts (``prompt_tokens`` and
    ``completion_tokens`` of vLLM's usage or SGLang's meta_info) are not recorded (a chunk went
    missing, or a proxy in between dropped fields): unavailable beats wrong."""
    if not isinstance(usage, dict):
        return
    n_prompt, n_completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    prompt_bad = capture.prompt_ids is not None and isinstance(n_prompt, int) and len(capture.prompt_ids) != n_prompt
    completion_bad = (
        capture.completion_ids is not None
        and isinstance(n_completion, int)
        and len(capture.completion_ids) != n_completion
    )
    if prompt_bad or completion_bad:
        log.warning("token ids disagree with the engine's usage %s; recording them as unavailable", usage)
        capture.prompt_ids = capture.completion_ids = capture.logprobs = None


@contextmanager
def engine_shape(what: str) -> Iterator[None]:
    """Reading the engine's answer: a field of the wrong type or missing is the engine's fault."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise UpstreamProtocolError(f"the engine's {what} is not in the expected shape: {exc!r}") from exc


def first_choice(body: Mapping[str, Any]) -> dict[str, Any]:
    """The first choice of an OpenAI response, or an UpstreamProtocolError."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamProtocolError("the engine's answer has no choices")
    return choices[0]


def int_list(value: Any) -> list[int] | None:
    """A list of ints, or None if the engine sent none or something else (never coerced from text)."""
    # set(map(type, ...)) runs in C: a 30k-token prompt costs ~0.3 ms here, not 1.5
    if isinstance(value, list) and set(map(type, value)) <= _INT:
        return value
    return None


_INT = {int}
