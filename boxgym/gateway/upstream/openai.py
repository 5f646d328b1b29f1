"""A plain OpenAI-compatible upstream: the request goes as the client sent it.

Such an engine gives no token ids, so the record keeps the text and marks the token fields
unavailable. It does not derive ids from ``logprobs`` strings or bytes, which are not ids.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from .base import Capture, Endpoint, HttpUpstream, UpstreamReply, UpstreamRequest, first_choice

__all__ = ["OpenAIUpstream"]

_PATHS = {"chat.completions": "/v1/chat/completions", "completions": "/v1/completions"}


class OpenAIUpstream(HttpUpstream):
    engine = "openai"

    def mode(self, endpoint: Endpoint, stream: bool) -> str:
        return "text-only" + ("/stream" if stream else "")

    async def complete(self, request: UpstreamRequest) -> UpstreamReply:
        data, wv = await self.post_json(_PATHS[request.endpoint], request.body, request.episode_id)
        first_choice(data)
        return UpstreamReply(data, Capture(weight_version=wv))

    async def stream(self, request: UpstreamRequest, capture: Capture) -> AsyncIterator[list[dict[str, Any]]]:
        async for batch in self.post_sse(_PATHS[request.endpoint], request.body, request.episode_id, capture):
            yield batch
