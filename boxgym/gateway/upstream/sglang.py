"""SGLang: its chat fields where they exist, the native ``/generate`` otherwise.

* chat (SGLang >= 0.5.13): request ``logprobs: true``, ``return_prompt_token_ids: true`` and
  ``return_meta_info: true``; read ``choices[0].prompt_token_ids`` and
  ``choices[0].meta_info.output_token_logprobs`` (``[logprob, token_id, text]`` triples; the id is
  the second element). SGLang refuses ``return_prompt_token_ids`` when streaming, so a streaming
  client is served by one non-streaming call whose answer the gateway streams back itself
  (content in one delta, each tool call in one delta).
* completions: native ``/generate`` with ``text`` (or ``input_ids`` for a token prompt),
  ``return_logprob: true`` and ``logprob_start_len: 0``; the prompt ids come from
  ``meta_info.input_token_logprobs``, the completion from ``meta_info.output_token_logprobs``.
  Streaming is native; SGLang's chunks are cumulative by default and are turned into deltas
  here (incremental chunks work too: ``completion_tokens`` tells which).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from ...errors import UpstreamProtocolError
from ..sse import synthesize_chunks
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

__all__ = ["SglangUpstream"]

# OpenAI sampling fields -> /generate sampling_params
_SAMPLING = {
    "max_tokens": "max_new_tokens",
    "max_completion_tokens": "max_new_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "stop": "stop",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "seed": "sampling_seed",
}


def _triples(value: Any) -> tuple[list[int], list[float]] | None:
    if not isinstance(value, list):
        return None
    ids, lps = [], []
    for item in value:
        if not isinstance(item, list) or len(item) < 2 or type(item[1]) is not int:
            raise UpstreamProtocolError("SGLang logprob entries must be [logprob, token_id, ...]")
        ids.append(item[1])
        with engine_shape("logprob entry"):
            lps.append(float(item[0]) if item[0] is not None else float("nan"))
    return ids, lps


def _finish(meta: dict[str, Any]) -> str | None:
    fr = meta.get("finish_reason")
    if isinstance(fr, dict):
        return fr.get("type")
    return fr


class SglangUpstream(HttpUpstream):
    engine = "sglang"

    def mode(self, endpoint: Endpoint, stream: bool) -> str:
        if endpoint == "chat.completions":
            return "chat+meta_info" + ("/synthesized-stream" if stream else "")
        return "generate" + ("/stream" if stream else "")

    # -- chat ------------------------------------------------------------------

    def _chat_body(self, request: UpstreamRequest) -> dict[str, Any]:
        body = dict(request.body)
        body.pop("stream_options", None)
        body.update(stream=False, logprobs=True, return_prompt_token_ids=True, return_meta_info=True)
        return body

    async def _chat(self, request: UpstreamRequest) -> UpstreamReply:
        data, wv = await self.post_json("/v1/chat/completions", self._chat_body(request), request.episode_id)
        choice = first_choice(data)
        with engine_shape("chat answer"):
            meta = choice.get("meta_info") if isinstance(choice.get("meta_info"), dict) else {}
            out = _triples(meta.get("output_token_logprobs"))
            ids, lps = out if out else (None, None)
            capture = Capture(int_list(choice.get("prompt_token_ids")), ids, lps, wv)
        check_counts(capture, meta)
        return UpstreamReply(data, capture)

    # -- /generate -------------------------------------------------------------

    def _generate_body(self, request: UpstreamRequest, stream: bool) -> tuple[dict[str, Any], list[int] | None]:
        b = request.body
        prompt = b.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        given_ids = int_list(prompt)
        body: dict[str, Any] = {"input_ids": given_ids} if given_ids is not None else {"text": prompt}
        body["sampling_params"] = {dst: b[src] for src, dst in _SAMPLING.items() if b.get(src) is not None}
        body.update(return_logprob=True, logprob_start_len=0 if given_ids is None else -1, stream=stream)
        return body, given_ids

    def _completion(
        self, head: dict[str, Any], text: str, finish: str | None, lps: list[float] | None, want_lp: bool
    ) -> dict[str, Any]:
        choice = {
            "index": 0,
            "text": text,
            "logprobs": {"token_logprobs": lps} if (want_lp and lps is not None) else None,
            "finish_reason": finish,
        }
        return {**head, "object": "text_completion", "choices": [choice]}

    def _head(self, request: UpstreamRequest) -> dict[str, Any]:
        return {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": request.body.get("model")}

    async def _generate(self, request: UpstreamRequest) -> UpstreamReply:
        body, given = self._generate_body(request, stream=False)
        data, wv = await self.post_json("/generate", body, request.episode_id)
        meta = data.get("meta_info")
        if not isinstance(meta, dict) or not isinstance(data.get("text"), str):
            raise UpstreamProtocolError("SGLang's /generate answer has no text or meta_info")
        with engine_shape("/generate answer"):
            out = _triples(meta.get("output_token_logprobs"))
            ids, lps = out if out else (int_list(data.get("output_ids")), None)
            prompt = given if given is not None else (_triples(meta.get("input_token_logprobs")) or (None, None))[0]
        resp = self._completion(
            self._head(request), data["text"], _finish(meta), lps, request.body.get("logprobs") is not None
        )
        resp["usage"] = {
            "prompt_tokens": meta.get("prompt_tokens"),
            "completion_tokens": meta.get("completion_tokens"),
            "total_tokens": (meta.get("prompt_tokens") or 0) + (meta.get("completion_tokens") or 0),
        }
        capture = Capture(prompt, ids, lps, wv)
        check_counts(capture, meta)
        return UpstreamReply(resp, capture)

    async def _generate_stream(self, request: UpstreamRequest, capture: Capture) -> AsyncIterator[list[dict[str, Any]]]:
        body, given = self._generate_body(request, stream=True)
        head, want_lp = self._head(request), request.body.get("logprobs") is not None
        capture.prompt_ids, capture.completion_ids, capture.logprobs = given, [], []
        text_sent, last_meta = 0, None
        async for batch in self.post_sse("/generate", body, request.episode_id, capture):
            out_batch = []
            for chunk in batch:
                meta = chunk.get("meta_info")
                if not isinstance(meta, dict) or not isinstance(chunk.get("text"), str):
                    raise UpstreamProtocolError("SGLang's /generate chunk has no text or meta_info")
                if capture.prompt_ids is None:
                    inp = _triples(meta.get("input_token_logprobs"))
                    capture.prompt_ids = inp[0] if inp else None
                out = _triples(meta.get("output_token_logprobs")) or ([], [])
                total = meta.get("completion_tokens")
                have = len(capture.completion_ids)
                cumulative = isinstance(total, int) and total > have and len(out[0]) == total
                new_ids, new_lps = (out[0][have:], out[1][have:]) if cumulative else out
                capture.completion_ids.extend(new_ids)
                capture.logprobs.extend(new_lps)
                text = chunk["text"]
                delta = text[text_sent:] if cumulative else text
                text_sent = len(text) if cumulative else text_sent + len(text)
                out_batch.append(self._completion(head, delta, _finish(meta), new_lps, want_lp))
                last_meta = meta
            yield out_batch
        check_counts(capture, last_meta)

    # -- the seam --------------------------------------------------------------

    async def complete(self, request: UpstreamRequest) -> UpstreamReply:
        if request.endpoint == "chat.completions":
            return await self._chat(request)
        return await self._generate(request)

    async def stream(self, request: UpstreamRequest, capture: Capture) -> AsyncIterator[list[dict[str, Any]]]:
        if request.endpoint == "completions":
            async for batch in self._generate_stream(request, capture):
                yield batch
            return
        reply = await self._chat(request)
        capture.prompt_ids, capture.completion_ids, capture.logprobs = (
            reply.capture.prompt_ids,
            reply.capture.completion_ids,
            reply.capture.logprobs,
        )
        capture.weight_version = reply.capture.weight_version
        capture.first_chunk_at = time.perf_counter()
        include_usage = bool((request.body.get("stream_options") or {}).get("include_usage"))
        yield synthesize_chunks(reply.body, "chat.completions", include_usage=include_usage)
