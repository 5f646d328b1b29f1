"""Replay: an upstream that answers with an episode's recorded responses, in order, instead of an engine.

``boxgym gateway serve --replay runs/r1 --store runs/r1-rerun/gateway.jsonl`` puts it behind the
gateway: a black-box agent re-run against its own recorded responses gets, for its episode's
``n``-th call, the ``n``-th answer the engine gave that episode (a cursor per episode, as ROCK's
recorded-response cursor does), with the engine's token ids, logprobs and weight version as
they were recorded. Nothing is re-tokenized and no engine runs.

* The recorded store is ``config.upstream.url``: a run directory or a ``gateway.jsonl`` file
  (or the parts of one, written by a gateway of several workers). It is read through the
  gateway's own reader, one episode at a time, when that episode first calls.
* Calls are matched by episode id. A call naming no episode (the default one) gets the
  recorded episode when the store holds exactly one.
* Only answers a client received are served back: failed calls, SDK retries answered from the
  record and calls the client never got are skipped, as they were never the agent's input.
* The prompt token ids are served only when the request's messages (or prompt) are the ones
  recorded; otherwise the agent has diverged from the record and the new record says the
  prompt's tokens are unknown (the completion's are still the recorded ones).
* Past the last recorded call, or on another endpoint than the one recorded, the gateway
  answers 409 with what was recorded: the replay cannot go on.
"""

from __future__ import annotations

import asyncio
import copy
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ...errors import UpstreamRefused
from ..config import DEFAULT_EPISODE, GatewayConfig
from ..parts import store_files
from ..records import CallRecord
from ..sse import synthesize_chunks
from .base import Capture, Endpoint, UpstreamReply, UpstreamRequest

from ..store import read_calls as _read_calls

__all__ = ["ReplayUpstream", "store_path"]


def store_path(source: str | os.PathLike[str]) -> Path:
    """The recorded store named by ``source``: a ``gateway.jsonl``, or a run directory holding
    one; either may be the parts a gateway of several workers wrote (:mod:`boxgym.gateway.parts`)."""
    path = Path(source)
    if path.is_dir():
        path = path / "gateway.jsonl"
    if not any(f.is_file() for f in store_files(path)):
        raise ValueError(f"nothing to replay: {path} is not a gateway record file")
    return path


def _served(record: CallRecord) -> bool:
    return record.ok and record.delivered and record.replay_of is None and record.response is not None


class ReplayUpstream:
    """Serves recorded responses; see the module docstring. ``session`` is not used."""

    engine = "replay"

    def __init__(self, config: GatewayConfig, session: Any = None) -> None:
        self.path = store_path(config.upstream.url)
        self._calls: dict[str, list[CallRecord]] = {}
        self._loading: dict[str, asyncio.Future[list[CallRecord]]] = {}
        self._cursor: dict[str, int] = {}

    def mode(self, endpoint: Endpoint, stream: bool) -> str:
        return "replay" + ("/stream" if stream else "")

    async def _episode(self, episode_id: str) -> list[CallRecord]:
        held = self._calls.get(episode_id)
        if held is not None:
            return held
        loading = self._loading.get(episode_id)
        if loading is None:  # one read per episode, however many calls wait for it
            loading = self._loading[episode_id] = asyncio.ensure_future(asyncio.to_thread(self._read, episode_id))
        try:
            calls = await asyncio.shield(loading)
        finally:
            self._loading.pop(episode_id, None)
        self._calls[episode_id] = calls
        return calls

    def _read(self, episode_id: str) -> list[CallRecord]:
        calls = [r for r in _read_calls(self.path, episode_id) if _served(r)]
        if calls or episode_id != DEFAULT_EPISODE:
            return calls
        by_episode: dict[str, list[CallRecord]] = {}
        for r in _read_calls(self.path):
            if _served(r):
                by_episode.setdefault(r.episode_id, []).append(r)
        return next(iter(by_episode.values())) if len(by_episode) == 1 else []

    async def _next(self, request: UpstreamRequest) -> CallRecord:
        episode = request.episode_id
        calls = await self._episode(episode)
        n = self._cursor.get(episode, 0)
        if n >= len(calls):
            what = f"recorded {len(calls)} answered calls" if calls else f"has no recorded calls in {self.path}"
            raise UpstreamRefused(f"nothing left to replay: episode {episode!r} {what}; this is call {n + 1}", status=409)
        record = calls[n]
        if record.endpoint != request.endpoint:
            raise UpstreamRefused(
                f"episode {episode!r} call {n + 1} was recorded on {record.endpoint}, not {request.endpoint}", status=409
            )
        self._cursor[episode] = n + 1
        return record

    @staticmethod
    def _reply(record: CallRecord, request: UpstreamRequest) -> tuple[dict[str, Any], Capture]:
        asked, recorded = request.body, record.request or {}
        key = "messages" if request.endpoint == "chat.completions" else "prompt"
        same_prompt = asked.get(key) == recorded.get(key)
        prompt = list(record.prompt_token_ids) if same_prompt and record.prompt_token_ids is not None else None
        completion = None if record.completion_token_ids is None else list(record.completion_token_ids)
        lps = None if record.logprobs is None or completion is None else list(record.logprobs)
        body = copy.deepcopy(record.response or {})
        choice = (body.get("choices") or [{}])[0]
        # Put back the engine fields the original client may not have asked for (and so were
        # stripped from the record's response): the gateway strips them again unless asked.
        if prompt is not None:
            body["prompt_token_ids"] = prompt
        if completion is not None and isinstance(choice, dict):
            choice["token_ids"] = completion
            if lps is not None and not (choice.get("logprobs") or {}).get("content") and key == "messages":
                entries = [{"token": "", "logprob": lp, "bytes": None, "top_logprobs": []} for lp in lps]
                choice["logprobs"] = {"content": entries}
        return body, Capture(prompt, completion, lps, record.weight_version)

    async def complete(self, request: UpstreamRequest) -> UpstreamReply:
        record = await self._next(request)
        body, capture = self._reply(record, request)
        return UpstreamReply(body, capture)

    async def stream(self, request: UpstreamRequest, capture: Capture) -> AsyncIterator[list[dict[str, Any]]]:
        record = await self._next(request)
        body, served = self._reply(record, request)
        capture.prompt_ids, capture.completion_ids = served.prompt_ids, served.completion_ids
        capture.logprobs, capture.weight_version = served.logprobs, served.weight_version
        capture.first_chunk_at = time.perf_counter()
        yield synthesize_chunks(body, request.endpoint, include_usage=True)

    async def models(self) -> dict[str, Any]:
        names = await asyncio.to_thread(lambda: sorted({r.model for r in _read_calls(self.path) if r.model}))
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "replay"} for name in names]}

    async def passthrough(self, path: str, body: bytes, episode_id: str) -> tuple[int, bytes, str]:
        raise UpstreamRefused(f"a replay has no engine to pass {path} to", status=404)
