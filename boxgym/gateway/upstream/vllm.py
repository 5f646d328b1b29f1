"""vLLM: ask for ``return_token_ids`` and log-probabilities; read the engine's own token ids.

Fields (vLLM >= 0.10.2, OpenAI-compatible server):

* chat: request ``return_token_ids: true`` and ``logprobs: true``; the response carries
  ``prompt_token_ids`` (top level), ``choices[i].token_ids`` and ``choices[i].logprobs.content``.
  Streaming: ``prompt_token_ids`` arrives in the first chunk; each chunk's choice carries the
  ``token_ids`` and ``logprobs.content`` of its delta.
* completions: ``return_token_ids: true`` and ``logprobs: 0`` (the sampled token only);
  ``choices[i].prompt_token_ids``, ``choices[i].token_ids``, ``choices[i].logprobs.token_logprobs``.

An engine that ignores ``return_token_ids`` (older vLLM) leaves the ids unset: the record then
says the tokens are unavailable. Token identity never comes from ``logprobs...token`` text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from .base import (
    Capture,
    Endpoint,
    HttpUpstream,
    UpstreamReply,
    UpstreamRequest,
    check_counts,
    engine_shape,
    first_choice,
    int_list,
)

__all__ = ["VllmUpstream"]

_PATHS = {"chat.completions": "/v1/chat/completions", "completions": "/v1/completions"}


def _chat_logprobs(choice: dict[str, Any]) -> list[float] | None:
    lp = choice.get("logprobs")
    content = lp.get("content") if isinstance(lp, dict) else None
    if not isinstance(content, list):
        return None
    return [float(e["logprob"]) for e in content]


def _legacy_logprobs(choice: dict[str, Any]) -> list[float] | None:
    lp = choice.get("logprobs")
    values = lp.get("token_logprobs") if isinstance(lp, dict) else None
    return [float(v) for v in values] if isinstance(values, list) else None


class VllmUpstream(HttpUpstream):
    engine = "vllm"

    def mode(self, endpoint: Endpoint, stream: bool) -> str:
        return "return_token_ids+logprobs" + ("/stream" if stream else "")

    def _body(self, request: UpstreamRequest) -> dict[str, Any]:
        body = dict(request.body)
        body["return_token_ids"] = True
        if request.endpoint == "chat.completions":
            if not body.get("logprobs"):
                body["logprobs"] = True
        elif body.get("logprobs") is None:
            body["logprobs"] = 0
        if body.get("stream"):
            # the usage chunk lets the ids be counted against the engine's own token count
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return body

    async def complete(self, request: UpstreamRequest) -> UpstreamReply:
        data, wv = await self.post_json(_PATHS[request.endpoint], self._body(request), request.episode_id)
        choice = first_choice(data)
        with engine_shape("answer"):
            if request.endpoint == "chat.completions":
                prompt, lps = int_list(data.get("prompt_token_ids")), _chat_logprobs(choice)
            else:
                prompt = int_list(choice.get("prompt_token_ids")) or int_list(data.get("prompt_token_ids"))
                lps = _legacy_logprobs(choice)
            ids = int_list(choice.get("token_ids"))
        capture = Capture(prompt, ids, lps if ids is not None else None, wv)
        check_counts(capture, data.get("usage"))
        return UpstreamReply(data, capture)

    async def stream(self, request: UpstreamRequest, capture: Capture) -> AsyncIterator[list[dict[str, Any]]]:
        body = self._body(request)
        chat = request.endpoint == "chat.completions"
        capture.completion_ids, capture.logprobs = [], []
        seen_ids = False
        usage = None
        async for batch in self.post_sse(_PATHS[request.endpoint], body, request.episode_id, capture):
            with engine_shape("stream chunk"):
                seen_ids = self._read_batch(batch, chat, capture) or seen_ids
            usage = next((c["usage"] for c in batch if c.get("usage")), usage)
            yield batch
        if not seen_ids:
            capture.completion_ids = capture.logprobs = None
        check_counts(capture, usage)

    @staticmethod
    def _read_batch(batch: list[dict[str, Any]], chat: bool, capture: Capture) -> bool:
        """Add the batch's token ids and logprobs to ``capture``; True if the engine sent ids."""
        assert capture.completion_ids is not None and capture.logprobs is not None
        seen = False
        for chunk in batch:
            prompt = chunk.get("prompt_token_ids")
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                prompt = prompt if prompt is not None else choice.get("prompt_token_ids")
                ids = int_list(choice.get("token_ids"))
                if ids is not None:
                    seen = True
                    capture.completion_ids.extend(ids)
                lps = _chat_logprobs(choice) if chat else _legacy_logprobs(choice)
                if lps:
                    capture.logprobs.extend(lps)
            if prompt is not None and capture.prompt_ids is None:
                capture.prompt_ids = int_list(prompt)
        return seen
