"""Scripted episodes for every suite: the reference solution, a wrong one, and doing nothing.

Shared by the fake-sandbox tests and the Docker tests, which run the same
scripts through ``gym.make``. Terminal-Bench's rule: the oracle must pass,
doing nothing must score 0, a wrong solution must score 0.
"""

from __future__ import annotations

from typing import Any

from boxgym.envs import Task, reference_messages
from boxgym.toolsets import ToolCall

IDS = ("boxgym/Code-v0", "boxgym/Shell-v0", "boxgym/SQL-v0")
LEVELS = 4


def _message(name: str, **arguments: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": "", "tool_calls": [ToolCall("w", name, arguments).to_openai()]}


def wrong_messages(task: Task) -> list[dict[str, Any]]:
    suite = task.metadata["suite"]
    if suite == "code":
        content = f"def {task.metadata['family']}(*args, **kwargs):\n    return None\n"
        return [_message("write_file", path="solution.py", content=content), _message("submit")]
    if suite == "shell":
        # Everything the reference does, then one file spoiled.
        spoil = _message("bash", command="for f in notes/*.txt; do echo extra >> $f; done")
        return [*reference_messages(task)[:-1], spoil, _message("submit")]
    return [_message("submit", answer="SELECT 1")]


def nothing_messages(task: Task) -> list[dict[str, Any]]:
    return [_message("submit")]


SCRIPTS = {"reference": (reference_messages, 1.0), "wrong": (wrong_messages, 0.0), "nothing": (nothing_messages, 0.0)}


def play(env, level: int, script: str, seed: int = 0) -> tuple[float, dict[str, Any]]:
    """One episode through the sync API of a ``gym.make`` env; returns the final reward and info."""
    make_messages, _ = SCRIPTS[script]
    _, info = env.reset(seed=seed, options={"difficulty": level})
    assert not info["infra_failure"], info["error"]
    task = env.unwrapped.tasks.get(info["task_id"])
    messages = make_messages(task)
    for index, message in enumerate(messages):
        _, reward, terminated, truncated, info = env.step(message)
        assert not info["infra_failure"], info["error"]
        assert terminated is (index == len(messages) - 1) and not truncated
    return reward, info
