"""The README's loop, with an OpenAI-shaped client that replays the reference solution."""

from __future__ import annotations

import types

import gymnasium as gym
from openai.types.chat import ChatCompletionMessage

import boxgym.envs  # noqa: F401 - registers the ids
from boxgym.envs import reference_messages
from boxgym.sandboxes import FakeProvider


class ReplayClient:
    """``client.chat.completions.create(...)`` answering with the task's reference solution, in order."""

    def __init__(self, messages):
        self.replies = [ChatCompletionMessage.model_validate(m) for m in messages]
        self.seen = []
        self.chat = types.SimpleNamespace(completions=types.SimpleNamespace(create=self.create))

    def create(self, *, model, messages, tools):
        self.seen.append((list(messages), tools))
        choice = types.SimpleNamespace(message=self.replies.pop(0))
        return types.SimpleNamespace(choices=[choice])


def test_the_readme_loop():
    env = gym.make("boxgym/Shell-v0", provider=FakeProvider())
    messages, info = env.reset(seed=0)
    client = ReplayClient(reference_messages(env.unwrapped.tasks.get(info["task_id"])))
    terminated = truncated = False
    while not (terminated or truncated):
        reply = client.chat.completions.create(model="m", messages=messages, tools=info["tools"]).choices[0].message
        obs, reward, terminated, truncated, info = env.step(reply)
        messages += [reply.model_dump(exclude_none=True), *obs]
    env.close()
    assert reward == 1.0 and info["verdict"]["passed"]
    history, tools = client.seen[-1]
    assert [m["role"] for m in history[:2]] == ["system", "user"]
    assert history[-1]["role"] == "tool" and history[-1]["tool_call_id"] == history[-2]["tool_calls"][0]["id"]
    assert [t["function"]["name"] for t in tools][-1] == "submit"
