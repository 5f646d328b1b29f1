"""A screen env's observation as Gymnasium arrays: Dict(screen=Box, text=FreeText)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import boxgym  # noqa: F401 - registers the ids
from boxgym.envs.screen import ScreenObservation, text_of
from boxgym.envs.spaces import FreeText
from boxgym.envs.suites.desktop import k25_reference
from boxgym.sandboxes import FakeProvider

from ..display import needs_display


@needs_display
def test_the_dict_observation_is_the_screen_and_the_text():
    env = gym.make("boxgym/Desktop-v0", provider=FakeProvider(), observation="dict", kinds=("press",))
    try:
        space = env.observation_space
        assert isinstance(env.unwrapped, boxgym.envs.BoxEnv) and isinstance(space, gym.spaces.Dict)
        assert space["screen"] == gym.spaces.Box(0, 255, (800, 1280, 3), np.uint8) and isinstance(space["text"], FreeText)
        obs, info = env.reset(options={"difficulty": 0})
        assert obs in space and obs["text"].startswith('In the "') and obs["screen"].mean() > 100  # the app, not black
        task = env.unwrapped.tasks.get(info["task_id"])
        replies = list(k25_reference(task))  # press, then terminate
        obs, reward, terminated, truncated, info = env.step(replies[0])
        assert obs in space and obs["text"] == "done" and reward == 0.0 and not terminated
        obs, reward, terminated, truncated, info = env.step(replies[1])
        assert obs["text"] == "terminated: success" and reward == 1.0 and terminated
        garbled = env.reset(options={"task_id": task.id})[0]["screen"]
        obs, *_ = env.step("no code here")
        assert "no code block" in obs["text"] and np.array_equal(obs["screen"], garbled)  # no new screen: the last one
    finally:
        env.close()


@needs_display
@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")  # checking the wrapper is the point
def test_gymnasiums_checker_accepts_the_wrapped_env():
    env = gym.make("boxgym/Desktop-v0", provider=FakeProvider(), observation="dict", kinds=("checks",))
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_the_text_is_every_message_but_the_system_prompt():
    messages = [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": [{"type": "text", "text": "task"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "done"},
    ]
    assert text_of(messages) == "task\n\ndone"
    assert FreeText(max_chars=3).contains("日本語") and not FreeText(max_chars=3).contains("four") and "x" in FreeText()
    wrapper = ScreenObservation(gym.make("boxgym/Code-v0", provider=FakeProvider()), (64, 48))
    assert wrapper.observation_space["screen"].shape == (48, 64, 3)
    wrapper.close()
