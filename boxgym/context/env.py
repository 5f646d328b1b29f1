"""Context management as an env wrapper, for your own Gymnasium loop.

    env = ContextWindow(gym.make("boxgym/Code-v0"), DiscardAll(threshold=60_000), tokens=GatewayTokens(gw))
    messages, info = env.reset()
    while True:
        base_url = gw.base_url_for(info["episode_id"])          # the policy's calls go through the gateway
        reply = client.chat.completions.create(model=..., messages=messages, tools=info["tools"]).choices[0].message
        messages, reward, terminated, truncated, info = env.step(reply)
        if terminated or truncated:
            break

The wrapper keeps the episode's whole history; its observation is the context to send next,
as the strategy edits it (:mod:`boxgym.context.strategies`), rather than the new messages only.
Each action's context size is counted in the policy's own tokens: from the action itself when
it is a :class:`~boxgym.rollout.Completion` with token ids, else from ``tokens`` (the gateway's
record of the episode's latest call, :class:`~boxgym.context.GatewayTokens`). The view an
action was produced from goes into that step's ``info["context"]``, and into its trajectory
record when the env is a :class:`~boxgym.envs.BoxEnv` with a writer
(:meth:`~boxgym.envs.BoxEnv.annotate_next_step`). The sync API works over any env; ``areset``
and ``astep`` drive the :class:`~boxgym.envs.BoxEnv` underneath with its async API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from ..toolsets.calls import as_plain_action
from .strategies import ContextState, ContextView, Strategy
from .tokens import NO_COUNT, TokenCount, call_tokens

__all__ = ["ContextWindow"]


class ContextWindow(gym.Wrapper):
    """Observations are the context to send next, edited by ``strategy`` (module docstring)."""

    def __init__(self, env: gym.Env, strategy: Strategy, *, tokens: TokenCount | None = None) -> None:
        super().__init__(env)
        self.strategy = strategy
        self.tokens = tokens
        self._state = ContextState(strategy)
        self._history: list[dict[str, Any]] = []
        self._view: ContextView | None = None  # what the next action is produced from
        self._episode_id: str | None = None
        self._turn = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # type: ignore[override]
        return self._started(*self.env.reset(seed=seed, options=options))

    def step(self, action: Any):  # type: ignore[override]
        message, counted = self._before(action)
        return self._after(message, counted, *self.env.step(message))

    async def areset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        return self._started(*await self.env.unwrapped.areset(seed=seed, options=options))  # type: ignore[attr-defined]

    async def astep(self, action: Any):
        message, counted = self._before(action)
        return self._after(message, counted, *await self.env.unwrapped.astep(message))  # type: ignore[attr-defined]

    def _started(self, observation: list[dict[str, Any]], info: dict[str, Any]):
        self._state = ContextState(self.strategy)
        self._history = [dict(m) for m in observation]
        self._view, self._turn = None, 0
        self._episode_id = info.get("episode_id")
        return [dict(m) for m in observation], info

    def _before(self, action: Any) -> tuple[Any, int]:
        """The message to step the env with and the context size of the call that produced it;
        the view it was produced from is noted for the step's record. Nothing has reached the env
        when this raises."""
        from ..envs.core import BoxEnv
        from ..rollout.types import Completion  # the rollout package imports the envs: here, not at import

        counted = None
        if isinstance(action, Completion):
            counted = call_tokens(action.prompt_token_ids, action.completion_token_ids)
            action = action.message
        if counted is None and self.tokens is not None and self._episode_id is not None:
            counted = self.tokens(self._episode_id, None)
        if counted is None:
            raise ValueError(NO_COUNT)
        if self._view is not None and isinstance(self.env.unwrapped, BoxEnv):
            self.env.unwrapped.annotate_next_step(context=self._view.to_json())
        return as_plain_action(action), counted

    def _after(self, message: Any, counted: int, observation, reward, terminated, truncated, info):
        if self._view is not None:
            info["context"] = self._view.to_json()
        self._state.observe(self._turn, counted)
        self._turn += 1
        said = message if isinstance(message, Mapping) else {"role": "assistant", "content": str(message)}
        self._history += [dict(said), *(dict(m) for m in observation)]
        shown, self._view = self._state.view(self._history)
        return shown, reward, terminated, truncated, info
