"""Playing simulated tasks with the scripted engine as world model, user and grader."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from boxgym.envs import BoxEnv, Task
from boxgym.envs.make import make_simulated
from boxgym.gateway import MockEngine, Reply
from boxgym.modelcalls import ModelEndpoint
from boxgym.sandboxes import FakeProvider
from boxgym.simulated import reference_replies, world_tasks

TASKS = world_tasks()


def endpoint(engine: MockEngine, name: str = "world") -> ModelEndpoint:
    return ModelEndpoint(model=name, base_url=f"{engine.url}/v1")


def simulated_env(engine: MockEngine | None, **kwargs: Any) -> BoxEnv:
    if engine is not None:
        kwargs.setdefault("world", endpoint(engine))
        kwargs.setdefault("grader", endpoint(engine, "grader"))
    kwargs.setdefault("provider", FakeProvider())
    return make_simulated(**kwargs)


def script_reference(engine: MockEngine, task: Task, episode_id: str, *, grade: str = "SCORE: 10") -> None:
    """The world model and the user answer the reference as the spec says; the grader gives ``grade``."""
    replies = reference_replies(task)
    engine.script(f"{episode_id}.world", [Reply.say(text) for text in replies["world"]])
    engine.script(f"{episode_id}.user", [Reply.say(text) for text in replies["user"]])
    engine.script(f"{episode_id}.grm", [Reply.say(grade)])


def as_message(name: str, **arguments: Any) -> dict[str, Any]:
    import json

    call = {"id": f"c_{name}", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
    return {"role": "assistant", "content": "", "tool_calls": [call]}


async def play(env: BoxEnv, task_id: str, actions: Sequence[dict[str, Any]], episode_id: str = "ep") -> list[tuple]:
    """Reset to ``task_id`` and step ``actions`` until the episode ends; every step's 5-tuple."""
    _, info = await env.areset(options={"task_id": task_id, "episode_id": episode_id})
    assert not info["infra_failure"], info["error"]
    steps = []
    for action in actions:
        step = await env.astep(action)
        steps.append(step)
        if step[2] or step[3]:
            break
    return steps


async def run(engine: MockEngine | None, task_id: str, actions: Sequence[dict[str, Any]], **kwargs: Any) -> list[tuple]:
    """:func:`play` on a fresh env, closed afterwards."""
    env = simulated_env(engine, **kwargs)
    try:
        return await play(env, task_id, actions)
    finally:
        await env.aclose()
