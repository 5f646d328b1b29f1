"""A policy call's context size, in the policy's own tokens.

The count is the call's prompt token ids plus its completion token ids, as the engine gave them:
from the :class:`~boxgym.rollout.Completion` (a :class:`~boxgym.rollout.ChatPolicy` through the
gateway has them), or from the gateway's record of the call (:class:`GatewayTokens`), which for
an engine that gives no token ids falls back to the engine's own ``usage`` counts. Nothing is
estimated from characters: a call with neither is an error the caller reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..gateway.records import CallRecord

__all__ = ["GatewayTokens", "NO_COUNT", "TokenCount", "call_tokens"]

#: ``count(episode_id, call_id) -> tokens or None``: the context size of a call of an episode.
TokenCount = Callable[[str, "str | None"], "int | None"]

NO_COUNT = (
    "context management counts the policy's own tokens, and this call has none: route the policy "
    "through the boxgym gateway (an engine that returns token ids, or its usage counts) and give "
    "tokens=GatewayTokens(gateway), or return Completions with prompt and completion token ids"
)


def call_tokens(prompt_ids: Sequence[int] | None, completion_ids: Sequence[int] | None) -> int | None:
    """Prompt plus completion tokens, when both are known."""
    if prompt_ids is None or completion_ids is None:
        return None
    return len(prompt_ids) + len(completion_ids)


class RecordSource(Protocol):
    """What holds an episode's call records: an embedded :class:`~boxgym.gateway.Gateway`."""

    def records(self, episode_id: str) -> list[CallRecord]: ...


class GatewayTokens:
    """The context size of a call from the gateway's record of it (module docstring).

    ``call_id`` names the record (a completion's ``call_id``); without one, the episode's latest
    answered call counts (a loop that calls the gateway and steps the env in turn).
    """

    def __init__(self, gateway: RecordSource) -> None:
        self.gateway = gateway

    def __call__(self, episode_id: str, call_id: str | None = None) -> int | None:
        answered = [r for r in self.gateway.records(episode_id) if r.ok]
        record = next((r for r in reversed(answered) if r.call_id == call_id), None) if call_id else None
        if record is None and answered and call_id is None:
            record = answered[-1]
        if record is None:
            return None
        counted = call_tokens(record.prompt_token_ids, record.completion_token_ids)
        if counted is not None:
            return counted
        usage: Any = (record.response or {}).get("usage") or {}
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        return prompt + completion if isinstance(prompt, int) and isinstance(completion, int) else None
