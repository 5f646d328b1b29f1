"""Calls boxgym makes to models of its own: a judge (GRM), a world model, a simulated user.

The policy's calls are training data; these are not. Each goes to an OpenAI-compatible chat API
(:class:`ModelEndpoint`), directly or through a boxgym gateway. Through a gateway, a call made
for episode ``E`` in the role ``R`` goes to ``/episodes/E.R/v1`` (:func:`role_episode_id`):
``E.grm`` for the judge, ``E.world`` for the world model, ``E.user`` for the simulated user. So
these calls are recorded beside the episode's own, under an id that names both, and never mixed
into the episode's records, whose token ids a trainer reads. The same id goes in the request's
``user`` field, which engines log and the scripted engine scripts by.

:func:`converse` is the loop the three share: ask, read the answer, and when it does not read
(``read`` returns :class:`~boxgym.judges.base.Malformed`) tell the model what was wrong in the
same conversation and ask again; a call that fails on the way (connection, timeout, 5xx, not a
chat completion) is repeated after a short backoff, within the same budget of attempts. A 4xx
is :class:`ModelRefused` at once; a spent budget is :class:`NoAnswer`. Callers translate both
into their own error (the judge's :class:`~boxgym.errors.JudgeError`, the simulators'
:class:`~boxgym.errors.SimulatorError`): no exception of this module leaves boxgym.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import quote

if TYPE_CHECKING:
    import aiohttp

    from .judges.base import Malformed

__all__ = [
    "EpisodeURLs",
    "ModelAnswer",
    "ModelClient",
    "ModelEndpoint",
    "ModelRefused",
    "NoAnswer",
    "Usage",
    "converse",
    "role_episode_id",
]

T = TypeVar("T")


def role_episode_id(episode_id: str, role: str) -> str:
    """The episode id of the calls made in ``role`` for episode ``episode_id``: ``f"{episode_id}.{role}"``."""
    return f"{episode_id}.{role}"


class EpisodeURLs(Protocol):
    """What routes calls per episode: a :class:`~boxgym.gateway.Gateway` is one."""

    def base_url_for(self, episode_id: str) -> str: ...


@dataclass(frozen=True, slots=True)
class ModelEndpoint:
    """Where a model answers: an OpenAI-compatible ``base_url`` or a boxgym ``gateway``.

    ``gateway`` is anything with ``base_url_for(episode_id)`` (an embedded
    :class:`~boxgym.gateway.Gateway`), or the URL of a running one (``http://host:9000``).
    ``timeout`` bounds each call, in seconds. A gateway forwards to one engine: to use another
    model than the one trained, run a second gateway in front of that model's engine.
    """

    model: str
    base_url: str | None = None
    gateway: EpisodeURLs | str | None = None
    api_key: str | None = None
    temperature: float = 0.0
    max_tokens: int = 1024
    timeout: float = 120.0

    def __post_init__(self) -> None:
        if (self.base_url is None) == (self.gateway is None):
            raise ValueError("give the model's endpoint as exactly one of base_url and gateway")
        if self.timeout <= 0 or self.max_tokens < 1:
            raise ValueError("timeout and max_tokens must be positive")

    def chat_url(self, episode_id: str) -> str:
        if self.gateway is None:
            base = self.base_url
        elif isinstance(self.gateway, str):
            base = f"{self.gateway.rstrip('/')}/episodes/{quote(episode_id, safe='')}/v1"
        else:
            base = self.gateway.base_url_for(episode_id)
        return f"{str(base).rstrip('/')}/chat/completions"


@dataclass(frozen=True, slots=True)
class ModelAnswer:
    """One chat completion's text, its id (a gateway's call id) and the engine's token counts."""

    text: str
    call_id: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(slots=True)
class Usage:
    """What a helper model cost an episode: answers received and the engine's token counts."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, answers: list[ModelAnswer]) -> None:
        self.calls += len(answers)
        self.prompt_tokens += sum(a.prompt_tokens or 0 for a in answers)
        self.completion_tokens += sum(a.completion_tokens or 0 for a in answers)

    def to_json(self) -> dict[str, int]:
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


class ModelRefused(Exception):
    """The endpoint refused the request (4xx): asking again will not help."""


class CallFailed(Exception):
    """The call failed on the way (connection, timeout, 5xx, not a chat completion): ask again."""


class NoAnswer(Exception):
    """Every attempt failed or did not read; ``problems`` says what happened to each, ``answers``
    holds the answers that came back (their token counts are a cost all the same)."""

    def __init__(self, problems: list[str], answers: list[ModelAnswer]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)
        self.answers = list(answers)


class ModelClient:
    """Chat completions at one :class:`ModelEndpoint`, over one aiohttp session made on first use.

    Close it with :meth:`aclose` or ``async with`` (idempotent).
    """

    def __init__(self, endpoint: ModelEndpoint) -> None:
        self.endpoint = endpoint
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    async def ask(self, episode_id: str, messages: list[dict[str, Any]]) -> ModelAnswer:
        """One call. Raises :class:`ModelRefused` (4xx) or :class:`CallFailed`."""
        import aiohttp  # here, not at import: the judges and the simulators stay free of aiohttp until they call

        if self._closed:
            raise CallFailed("the model client is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.endpoint.timeout))
        ep = self.endpoint
        body = {
            "model": ep.model,
            "messages": messages,
            "temperature": ep.temperature,
            "max_tokens": ep.max_tokens,
            "user": episode_id,
        }
        headers = {"Authorization": f"Bearer {ep.api_key}"} if ep.api_key else {}
        try:
            async with self._session.post(ep.chat_url(episode_id), json=body, headers=headers) as response:
                status, text = response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CallFailed(f"{type(exc).__name__}: {exc}") from None
        if 400 <= status < 500:
            raise ModelRefused(f"{status}: {text[:500]}")
        if status >= 300:
            raise CallFailed(f"status {status}: {text[:500]}")
        try:
            data = json.loads(text)
            content = data["choices"][0]["message"]["content"]
        except (ValueError, LookupError, TypeError):
            raise CallFailed(f"not a chat completion: {text[:200]!r}") from None
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        return ModelAnswer(
            content if isinstance(content, str) else "",
            data.get("id") if isinstance(data.get("id"), str) else None,
            _count(usage.get("prompt_tokens")),
            _count(usage.get("completion_tokens")),
        )

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> ModelClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def converse(
    client: ModelClient,
    episode_id: str,
    messages: list[dict[str, Any]],
    read: Callable[[str], T | Malformed],
    *,
    attempts: int,
    reasks: int,
    retries: int,
    again: Callable[[Malformed], str],
) -> tuple[T, list[ModelAnswer]]:
    """Ask until ``read`` accepts an answer: the value read and every answer received.

    At most ``attempts`` calls, of which at most ``reasks`` follow an answer that did not read
    and at most ``retries`` repeat a call that failed; after an answer that did not read the
    model sees it and ``again(malformed)`` as the next user message.
    ``messages`` is extended in place with what was said, the accepted answer last, so a caller
    that keeps a conversation going (the world model, the simulated user) keeps it whole.
    """
    from .judges.base import Malformed  # here: boxgym.judges imports this module

    answers: list[ModelAnswer] = []
    problems: list[str] = []
    unread = failed = 0
    for attempt in range(attempts):
        try:
            answer = await client.ask(episode_id, messages)
        except CallFailed as exc:
            problems.append(f"call failed: {exc}")
            failed += 1
            if failed > retries:
                break
            if attempt + 1 < attempts:
                await asyncio.sleep(min(0.25 * 2**attempt, 4.0))
            continue
        answers.append(answer)
        messages.append({"role": "assistant", "content": answer.text})
        value = read(answer.text)
        if not isinstance(value, Malformed):
            return value, answers
        problems.append(value.reason)
        unread += 1
        if unread > reasks:
            break
        messages.append({"role": "user", "content": again(value)})
    raise NoAnswer(problems, answers)
