"""Keeping the last N screenshots in a GUI agent's context (OpenCUA and Kimi K2.5 keep 3).

A GUI episode sends a screenshot after every action: a hundred steps are a hundred images, most
of them of no use to the next step. :func:`keep_last_images` keeps the instruction, every thought
and action (the assistant messages) and every result line whole, and only the last ``n`` images;
each older image is replaced by a short text placeholder in its place, so the model still sees
that a screenshot was there. It is a pure function of the history and ``n``: what a call was
shown can always be rebuilt from the full history the trajectory records.

* :class:`LastScreenshots` wraps a policy (a :class:`~boxgym.rollout.ChatPolicy`, or any): the
  rollout manager keeps the whole history, the policy is shown the trimmed one.
* :class:`LastScreenshotsWindow` wraps an env, for your own loop: its observation is the whole
  trimmed history to send next, rather than the step's new messages::

      env = LastScreenshotsWindow(gym.make("boxgym/Desktop-v0"), n=3)
      messages, info = env.reset()
      while True:
          reply = client.chat.completions.create(model=..., messages=messages).choices[0].message
          messages, reward, terminated, truncated, info = env.step(reply)
          if terminated or truncated:
              break

Trimming rewrites the history at every step (the oldest kept image drops out), so an engine's
prefix cache holds only up to the first image that changed; that is the cost of the window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym

from ..rollout.policy import EpisodeAware, EpisodeView, Policy
from ..rollout.types import Completion
from ..toolsets.calls import as_plain_action
from .policy import ShownEpisode

__all__ = ["IMAGE_PLACEHOLDER", "LastScreenshots", "LastScreenshotsWindow", "keep_last_images"]

IMAGE_PLACEHOLDER = "[an earlier screenshot, no longer shown]"


def keep_last_images(
    messages: Sequence[Mapping[str, Any]], n: int = 3, placeholder: str = IMAGE_PLACEHOLDER
) -> list[dict[str, Any]]:
    """``messages`` with every image but the last ``n`` replaced by ``placeholder`` text (new
    message objects where something changed; the caller's are never modified)."""
    if n < 0:
        raise ValueError("n is how many images to keep: 0 or more")
    seen = 0
    shown: list[dict[str, Any]] = []
    for message in reversed(messages):
        content = message.get("content")
        if type(content) is not list:
            shown.append(dict(message))
            continue
        parts = []
        for part in reversed(content):
            if isinstance(part, Mapping) and part.get("type") == "image_url":
                seen += 1
                if seen > n:
                    part = {"type": "text", "text": placeholder}
            parts.append(part)
        shown.append({**message, "content": parts[::-1]})
    return shown[::-1]


class LastScreenshots:
    """``policy`` shown each episode's history with only its last ``n`` screenshots (module docstring)."""

    def __init__(self, policy: Policy, n: int = 3, *, placeholder: str = IMAGE_PLACEHOLDER) -> None:
        if n < 0:
            raise ValueError("n is how many images to keep: 0 or more")
        self.policy, self.n, self.placeholder = policy, n, placeholder

    async def __call__(self, episode: EpisodeView) -> Completion:
        return await self.policy(ShownEpisode(episode, keep_last_images(episode.messages, self.n, self.placeholder)))

    def episode_ended(self, episode: EpisodeView) -> None:
        if isinstance(self.policy, EpisodeAware):
            self.policy.episode_ended(episode)


class LastScreenshotsWindow(gym.Wrapper):
    """Observations are the whole history to send next, with its last ``n`` screenshots (module docstring).

    The sync API works over any env; ``areset``/``astep`` drive a :class:`~boxgym.envs.BoxEnv`
    underneath with its async API.
    """

    def __init__(self, env: gym.Env, n: int = 3, *, placeholder: str = IMAGE_PLACEHOLDER) -> None:
        super().__init__(env)
        if n < 0:
            raise ValueError("n is how many images to keep: 0 or more")
        self.n, self.placeholder = n, placeholder
        self.history: list[dict[str, Any]] = []  # the episode's whole history, images and all

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # type: ignore[override]
        return self._started(*self.env.reset(seed=seed, options=options))

    def step(self, action: Any):  # type: ignore[override]
        action = as_plain_action(action)
        return self._after(action, *self.env.step(action))

    async def areset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        return self._started(*await self.env.unwrapped.areset(seed=seed, options=options))  # type: ignore[attr-defined]

    async def astep(self, action: Any):
        action = as_plain_action(action)
        return self._after(action, *await self.env.unwrapped.astep(action))  # type: ignore[attr-defined]

    def _started(self, observation: list[dict[str, Any]], info: dict[str, Any]):
        self.history = [dict(m) for m in observation]
        return keep_last_images(self.history, self.n, self.placeholder), info

    def _after(self, action: Any, observation, reward, terminated, truncated, info):
        said = action if isinstance(action, Mapping) else {"role": "assistant", "content": str(action)}
        self.history += [dict(said), *(dict(m) for m in observation)]
        return keep_last_images(self.history, self.n, self.placeholder), reward, terminated, truncated, info
