"""Keeping the last N screenshots: every thought and the instruction stay, older images become a
placeholder; from a policy wrapper (over ChatPolicy) and from an env wrapper."""

from __future__ import annotations

import gymnasium as gym
import pytest
from aiohttp import web

import boxgym  # noqa: F401 - registers the ids
from boxgym.context import LastScreenshots, LastScreenshotsWindow, keep_last_images
from boxgym.context.screenshots import IMAGE_PLACEHOLDER
from boxgym.rollout import ChatPolicy, TaskRef
from boxgym.sandboxes import FakeProvider
from boxgym.toolsets.gui_format import k25_reply

from ..display import needs_display


def image(n: int) -> dict:
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{n}"}}


def history(steps: int) -> list[dict]:
    messages = [{"role": "system", "content": "rules"}, {"role": "user", "content": [{"type": "text", "text": "the task"}, image(0)]}]
    for step in range(1, steps + 1):
        messages += [{"role": "assistant", "content": f"thought {step}"}, {"role": "user", "content": [{"type": "text", "text": "done"}, image(step)]}]
    return messages


def images_of(messages: list[dict]) -> list[str]:
    return [p["image_url"]["url"][-1] for m in messages if isinstance(m["content"], list) for p in m["content"] if p["type"] == "image_url"]


def test_only_the_last_n_images_stay_and_all_the_text_does():
    full = history(5)
    shown = keep_last_images(full, 3)
    assert images_of(shown) == ["3", "4", "5"] and images_of(full) == ["0", "1", "2", "3", "4", "5"]  # the input untouched
    assert shown[1]["content"] == [{"type": "text", "text": "the task"}, {"type": "text", "text": IMAGE_PLACEHOLDER}]
    assert [m["content"] for m in shown if m["role"] == "assistant"] == [f"thought {i}" for i in range(1, 6)]
    assert len(shown) == len(full) and shown[-1] == full[-1]
    assert images_of(keep_last_images(full, 0)) == [] and keep_last_images(history(1), 3) == history(1)
    with pytest.raises(ValueError):
        keep_last_images(full, -1)


class _Episode:
    def __init__(self, messages):
        self.episode_id, self.task, self.messages, self.tools = "e1", TaskRef(None), messages, []
        self.base_url, self.turn, self.weight_version = None, len(messages), None


async def test_a_chat_policy_is_sent_the_last_three_screenshots(aiohttp_server):
    seen = []

    async def completions(request: web.Request) -> web.Response:
        seen.append((await request.json())["messages"])
        return web.json_response({"choices": [{"message": {"role": "assistant", "content": "ok"}}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    server = await aiohttp_server(app)
    async with ChatPolicy(base_url=str(server.make_url("/v1")), model="m") as chat:
        episode = _Episode(history(6))
        completion = await LastScreenshots(chat)(episode)
    assert completion.message["content"] == "ok"
    assert images_of(seen[0]) == ["4", "5", "6"] and len(seen[0]) == len(episode.messages)
    assert images_of(episode.messages) == [str(i) for i in range(7)]  # the manager's history keeps them all


@needs_display
def test_in_an_env_the_observation_is_the_whole_history_with_its_last_screenshots():
    env = LastScreenshotsWindow(gym.make("boxgym/Desktop-v0", provider=FakeProvider(), kinds=("press",)), n=2)
    try:
        messages, info = env.reset(options={"difficulty": 0})
        assert len(images_of(messages)) == 1
        for step in range(3):
            messages, *_ = env.step(k25_reply(f"thought {step}", "look", "pyautogui.moveTo(5, 5)"))
        assert len(messages) == 2 + 2 * 3 and len(images_of(messages)) == 2
        assert [m["content"] for m in messages if m["role"] == "assistant"][0].startswith("thought 0")
        assert messages[1]["content"][1] == {"type": "text", "text": IMAGE_PLACEHOLDER}
        assert len(images_of(env.history)) == 4
    finally:
        env.close()
