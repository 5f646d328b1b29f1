"""Context management as a policy wrapper, for the rollout manager.

    policy = ContextManagedPolicy(ChatPolicy(), HideToolResults(threshold=100_000))
    async with RolloutManager(EnvFactory(), policy, gateway=gw, run_dir="runs/r1") as manager: ...

The manager keeps each episode's whole history; the wrapper shows the policy it wraps the
history as the strategy edits it (:mod:`boxgym.context.strategies`) and counts each call's
context from the completion's token ids (a :class:`~boxgym.rollout.ChatPolicy` through the
gateway has them) or, when given, the gateway's record (``tokens=GatewayTokens(gateway)``).
A completion made from an edited history carries its :class:`ContextView` (``Completion.context``),
which the manager writes into the step's record (``info["context"]``): the trajectory says what
each call was shown, and :func:`~boxgym.context.shown_messages` rebuilds it. The tokens a trainer
reads are the engine's, of the prompt as sent, so training sees exactly what the model saw (a
rewritten history starts a new token sequence, a branch, at the step where it was rewritten).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..rollout.policy import EpisodeAware, EpisodeView, Policy
from ..rollout.types import Completion, TaskRef
from .strategies import ContextState, Strategy
from .tokens import NO_COUNT, TokenCount, call_tokens

__all__ = ["ContextManagedPolicy", "ShownEpisode"]


class ShownEpisode:
    """The episode as a wrapped policy sees it: the same view with other messages (the edited
    history, or one with fewer screenshots)."""

    __slots__ = ("episode_id", "task", "messages", "tools", "base_url", "turn", "weight_version")

    def __init__(self, episode: EpisodeView, messages: list[dict[str, Any]]) -> None:
        self.episode_id: str = episode.episode_id
        self.task: TaskRef = episode.task
        self.messages = messages
        self.tools = episode.tools
        self.base_url = episode.base_url
        self.turn = episode.turn
        self.weight_version = episode.weight_version


class ContextManagedPolicy:
    """``policy`` shown each episode's history as ``strategy`` edits it (module docstring).

    Closing the wrapped policy stays its owner's job. Raises ``ValueError`` (a configuration
    bug, not retried) for a call whose tokens cannot be counted.
    """

    def __init__(self, policy: Policy, strategy: Strategy, *, tokens: TokenCount | None = None) -> None:
        self.policy = policy
        self.strategy = strategy
        self.tokens = tokens
        self._states: dict[str, ContextState] = {}

    async def __call__(self, episode: EpisodeView) -> Completion:
        state = self._states.get(episode.episode_id)
        if state is None:
            state = self._states[episode.episode_id] = ContextState(self.strategy)
        messages, view = state.view(episode.messages)
        completion = await self.policy(episode if view is None else ShownEpisode(episode, messages))
        count = call_tokens(completion.prompt_token_ids, completion.completion_token_ids)
        if count is None and self.tokens is not None:
            count = self.tokens(episode.episode_id, completion.call_id)
        if count is None:
            raise ValueError(NO_COUNT)
        state.observe(episode.turn, count)
        return completion if view is None else replace(completion, context=view)

    def episode_ended(self, episode: EpisodeView) -> None:
        self._states.pop(episode.episode_id, None)
        if isinstance(self.policy, EpisodeAware):
            self.policy.episode_ended(episode)
