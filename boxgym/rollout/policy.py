"""Policies: what picks the next action. Two kinds, one protocol.

* :class:`CallablePolicy` wraps a plain Python function (sync or async).
* :class:`ChatPolicy` speaks the OpenAI chat-completions protocol to any
  ``base_url``: the embedded gateway, a standalone gateway, or an engine.
  When the manager gives each episode its own base URL (the embedded
  gateway's ``/episodes/{id}/v1``) the policy uses it, so every call is
  attributed to its episode without the policy knowing about episodes.

A policy is called with the live episode (read-only to it: ``episode_id``,
``messages``, ``tools``, ``base_url``, ``turn``, ``weight_version``) and
returns a :class:`~boxgym.rollout.types.Completion`. Engine or gateway
failures raise :class:`~boxgym.errors.UpstreamError` (retried by the manager)
or :class:`~boxgym.errors.GatewayError` (reported as an infrastructure
failure); anything else a policy raises is recorded as an error of that
episode only.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import GatewayError, UpstreamError
from .types import Completion, TaskRef

__all__ = ["CallablePolicy", "ChatPolicy", "ChatPolicyConfig", "EpisodeAware", "EpisodeView", "Policy", "as_completion"]


@runtime_checkable
class EpisodeView(Protocol):
    """What a policy may read about the episode it acts in."""

    episode_id: str
    task: TaskRef
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    base_url: str | None
    turn: int
    weight_version: str | None


@runtime_checkable
class Policy(Protocol):
    async def __call__(self, episode: EpisodeView) -> Completion: ...


@runtime_checkable
class EpisodeAware(Protocol):
    """A policy that keeps state per episode: the manager tells it when an episode is over.

    ``episode_ended(episode)`` is called once per episode attempt, after its last policy call
    (not for a pause); it must be quick and must not raise (what it raises is logged).
    """

    def episode_ended(self, episode: EpisodeView) -> None: ...


def as_completion(answer: str | Mapping[str, Any] | Completion) -> Completion:
    """A text answer or an assistant message as a completion without tokens."""
    if isinstance(answer, Completion):
        return answer
    if isinstance(answer, str):
        return Completion({"role": "assistant", "content": answer})
    if isinstance(answer, Mapping):
        return Completion({"role": "assistant", **answer})
    raise TypeError(f"a policy must return str, an assistant message or a Completion, not {type(answer).__name__}")


PolicyFn = Callable[[Sequence[dict[str, Any]], Sequence[dict[str, Any]]], Any]


class CallablePolicy:
    """A plain function ``fn(messages, tools) -> str | message | Completion`` as a policy.

    An ``async`` function is awaited; a sync one runs on the loop (it must be
    quick) unless ``blocking=True`` sends it to a thread.
    """

    def __init__(self, fn: PolicyFn, *, blocking: bool = False) -> None:
        self._fn = fn
        self._blocking = blocking

    async def __call__(self, episode: EpisodeView) -> Completion:
        if self._blocking:
            answer = await asyncio.to_thread(self._fn, list(episode.messages), episode.tools)
        else:
            answer = self._fn(episode.messages, episode.tools)
            if inspect.isawaitable(answer):
                answer = await answer
        return as_completion(answer)


@dataclass(frozen=True, slots=True)
class ChatPolicyConfig:
    """Where to send chat completions and how to sample."""

    base_url: str | None = None  # ends in /v1; None: only per-episode base URLs (embedded gateway)
    model: str = "default"
    api_key: str | None = None
    sampling: Mapping[str, Any] = field(default_factory=dict)  # temperature, max_tokens, top_p, ...
    # Ask for behaviour logprobs and (vLLM's extension) the engine's token ids. The gateway adds
    # these itself; asking directly is for a bare engine.
    logprobs: bool = True
    return_token_ids: bool = True
    timeout: float = 600.0  # per HTTP call (the manager's StageDeadlines.policy_call bounds it too)
    max_connections: int = 0  # 0 = unbounded; Concurrency.policy_calls already bounds calls
    weight_version_header: str = "X-Weight-Version"


class ChatPolicy:
    """An OpenAI-compatible chat-completions client on aiohttp, one connection pool per policy.

    aiohttp rather than httpx: httpx's pool degraded badly at ~16k concurrent
    requests (see shared LESSONS). Close with :meth:`aclose` or ``async with``.
    """

    def __init__(self, config: ChatPolicyConfig | None = None, **overrides: Any) -> None:
        self.config = config if config is not None else ChatPolicyConfig(**overrides)
        self._session: Any = None

    async def _get_session(self) -> Any:
        if self._session is None:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=self.config.max_connections, limit_per_host=0)
            timeout = aiohttp.ClientTimeout(total=self.config.timeout)
            headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers)
        return self._session

    def request_body(self, episode: EpisodeView) -> dict[str, Any]:
        cfg = self.config
        body: dict[str, Any] = {"model": cfg.model, "messages": episode.messages, **cfg.sampling}
        if episode.tools:
            body["tools"] = episode.tools
        if cfg.logprobs:
            body["logprobs"] = True
        if cfg.return_token_ids:
            body["return_token_ids"] = True
        return body

    async def __call__(self, episode: EpisodeView) -> Completion:
        import aiohttp

        base_url = episode.base_url or self.config.base_url
        if base_url is None:
            raise GatewayError("ChatPolicy has no base_url and the episode has none")
        session = await self._get_session()
        url = base_url.rstrip("/") + "/chat/completions"
        try:
            async with session.post(url, json=self.request_body(episode)) as response:
                if response.status >= 500 or response.status == 429:
                    raise UpstreamError(f"{url} answered {response.status}: {(await response.text())[:500]}")
                if response.status >= 400:
                    raise GatewayError(f"{url} refused the call ({response.status}): {(await response.text())[:500]}")
                data = await response.json(content_type=None)
                header_version = response.headers.get(self.config.weight_version_header)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"{url}: {type(exc).__name__}: {exc}") from exc
        return parse_chat_response(data, header_version)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> ChatPolicy:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def parse_chat_response(data: Mapping[str, Any], weight_version: str | None = None) -> Completion:
    """An OpenAI chat response as a :class:`Completion`, with engine token fields when present.

    Reads vLLM's ``prompt_token_ids`` (top level) and ``choices[0].token_ids``;
    logprobs from ``choices[0].logprobs.content[*].logprob``. Nothing is re-tokenized.
    """
    try:
        choice = data["choices"][0]
        raw = choice["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise UpstreamError(f"malformed chat response: {str(data)[:300]}") from exc
    message: dict[str, Any] = {"role": "assistant", "content": raw.get("content")}
    if raw.get("tool_calls"):
        message["tool_calls"] = raw["tool_calls"]
    prompt_ids = data.get("prompt_token_ids") or choice.get("prompt_token_ids")
    completion_ids = choice.get("token_ids")
    logprobs = None
    content = (choice.get("logprobs") or {}).get("content")
    if content:
        logprobs = tuple(float(entry["logprob"]) for entry in content)
    version = weight_version or data.get("weight_version")
    return Completion(
        message=message,
        prompt_token_ids=None if prompt_ids is None else tuple(prompt_ids),
        completion_token_ids=None if completion_ids is None else tuple(completion_ids),
        logprobs=logprobs,
        weight_version=None if version is None else str(version),
        call_id=data.get("id"),
        finish_reason=choice.get("finish_reason"),
    )

