"""A screen env's observation as Gymnasium arrays: the screenshot as a ``Box``, and the text.

:class:`ScreenObservation` wraps an env whose observations carry screenshots (``boxgym/Desktop-v0``;
``gym.make("boxgym/Desktop-v0", observation="dict")`` applies it) and observes::

    Dict({"screen": Box(0, 255, (height, width, 3), uint8), "text": FreeText()})

``screen`` is the latest screenshot the env showed, as RGB pixels (the last one again when a step
showed none, e.g. a reply that could not be parsed; black before the first); ``text`` is what the
step said besides: the task at reset, then each action's result line and any feedback. Actions
are unchanged (the model's reply). The chat messages stay the env's own observation, for the
rollout manager and for policies that read them; this view is for pixel-based learners and your
own loops. Decoding PNGs needs Pillow (``pip install boxgym[gui]``).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .spaces import FreeText

__all__ = ["ScreenObservation", "screen_of", "text_of"]


class ScreenObservation(gym.ObservationWrapper):
    """Observations as ``{"screen": pixels, "text": str}`` (module docstring)."""

    def __init__(self, env: gym.Env, screen: tuple[int, int] = (1280, 800), *, max_chars: int = 1_000_000) -> None:
        super().__init__(env)
        self.screen_size = (int(screen[0]), int(screen[1]))
        width, height = self.screen_size
        self.observation_space = spaces.Dict(
            {"screen": spaces.Box(0, 255, (height, width, 3), np.uint8), "text": FreeText(max_chars=max_chars)}
        )
        self._last = np.zeros((height, width, 3), np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # type: ignore[override]
        width, height = self.screen_size
        self._last = np.zeros((height, width, 3), np.uint8)
        return super().reset(seed=seed, options=options)

    def observation(self, observation: list[dict[str, Any]]) -> dict[str, Any]:
        pixels = screen_of(observation, self.screen_size)
        if pixels is not None:
            self._last = pixels
        return {"screen": self._last.copy(), "text": text_of(observation)}


def _images(messages: list[Mapping[str, Any]]) -> list[str]:
    urls = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping) and part.get("type") == "image_url":
                    url = (part.get("image_url") or {}).get("url")
                    if isinstance(url, str) and url.startswith("data:image/"):
                        urls.append(url)
    return urls


def screen_of(messages: list[Mapping[str, Any]], size: tuple[int, int]) -> np.ndarray | None:
    """The last screenshot in ``messages`` as an RGB array of ``size`` (width, height), or None."""
    urls = _images(messages)
    if not urls:
        return None
    from PIL import Image  # the gui extra: loaded when a screenshot is first decoded

    data = base64.b64decode(urls[-1].split(",", 1)[1])
    with Image.open(io.BytesIO(data)) as image:
        pixels = np.asarray(image.convert("RGB"))
    if pixels.shape[:2] != (size[1], size[0]):
        raise ValueError(f"a screenshot of {pixels.shape[1]}x{pixels.shape[0]} in a {size[0]}x{size[1]} observation")
    return pixels


def text_of(messages: list[Mapping[str, Any]]) -> str:
    """The text of the messages but the system prompt, one message a paragraph."""
    texts = []
    for message in messages:
        if message.get("role") == "system":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(p["text"] for p in content if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str))
    return "\n\n".join(t for t in texts if t)
