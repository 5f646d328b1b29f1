"""Gymnasium environments over sandboxes: ``import boxgym.envs`` registers the ``boxgym/`` ids.

    import gymnasium as gym
    import boxgym  # registers boxgym/Code-v0, boxgym/Shell-v0, boxgym/SQL-v0
    from openai import OpenAI

    client, env = OpenAI(base_url="http://localhost:8000/v1", api_key="-"), gym.make("boxgym/Code-v0")
    messages, info = env.reset(seed=0)
    terminated = truncated = False
    while not (terminated or truncated):
        reply = client.chat.completions.create(model="m", messages=messages, tools=info["tools"]).choices[0].message
        obs, reward, terminated, truncated, info = env.step(reply)
        messages += [reply.model_dump(exclude_none=True), *obs]
    print(reward, info["verdict"])
    env.close()

The env is :class:`BoxEnv` (:mod:`boxgym.envs.core` documents the contract);
the suites are in :mod:`boxgym.envs.suites`; :class:`EnvFactory` builds one env
per episode for the rollout manager. Importing this package imports Gymnasium
but no Docker, suite or judge code; those load when an env is made.
"""

from __future__ import annotations

from typing import Any

from .registration import ENVS, EnvInfo, register_envs

__all__ = [
    "ENVS",
    "AdaptiveDifficulty",
    "AssistantAction",
    "BoxEnv",
    "EpisodeLimits",
    "ChatMessages",
    "DifficultyState",

    "EnvFactory",
    "EnvInfo",
    "GivenSandbox",
    "FixedDifficulty",
    "FreeText",
    "ProceduralTaskSet",
    "SharedPool",
    "StaticTaskSet",
    "Task",
    "TaskSet",
    "ScreenObservation",
    "reference_messages",
    "register_envs",
    "task_from_json",
]

_LAZY = {
    "AdaptiveDifficulty": "boxgym.envs.difficulty",
    "DifficultyState": "boxgym.envs.difficulty",
    "FixedDifficulty": "boxgym.envs.difficulty",
    "AssistantAction": "boxgym.envs.spaces",
    "ChatMessages": "boxgym.envs.spaces",
    "FreeText": "boxgym.envs.spaces",
    "ScreenObservation": "boxgym.envs.screen",
    "BoxEnv": "boxgym.envs.core",
    "EpisodeLimits": "boxgym.envs.core",
    
    "SharedPool": "boxgym.envs.defaults",
    "EnvFactory": "boxgym.envs.factory",
    "GivenSandbox": "boxgym.envs.factory",
    "ProceduralTaskSet": "boxgym.envs.tasks",
    "StaticTaskSet": "boxgym.envs.tasks",
    "Task": "boxgym.envs.tasks",
    "TaskSet": "boxgym.envs.tasks",
    "reference_messages": "boxgym.envs.tasks",
    "task_from_json": "boxgym.envs.tasks",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


register_envs()
