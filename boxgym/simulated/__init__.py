"""Simulated environments: tools answered by a world model, and a simulated user (``boxgym/Simulated-v0``).

    import gymnasium as gym
    from boxgym.modelcalls import ModelEndpoint

    world = ModelEndpoint(model="Qwen/Qwen3-32B", base_url="http://world-host:8000/v1")
    env = gym.make("boxgym/Simulated-v0", world=world, grader=world)   # the shipped example specs
    env = gym.make("boxgym/Simulated-v0", specs=["my_world.toml"], world=world)

* :mod:`~boxgym.simulated.spec`: the spec file (an environment: tools with argument and output
  schemas, the initial state, rules; its tasks) and the task set built from spec files;
* :mod:`~boxgym.simulated.world`: the world model, its prompt, and how its answers are read;
* :mod:`~boxgym.simulated.user`: the simulated user with a hidden goal;
* :mod:`~boxgym.simulated.tools`: the per-episode toolset (simulated, real and user tools);
* :mod:`~boxgym.simulated.checks`: rules over the final state; :mod:`~boxgym.simulated.judges`:
  the state judge and the default hybrid judge.

:func:`reference_replies` gives what a faithful world model and user say to a task's reference
solution, so that the scripted engine can play them (the tests do, for every shipped spec).

``docs/simulated.md`` is the user's guide. Importing this package loads no aiohttp and no
jsonschema (the ``simulated`` extra); they load when a spec is read or a model is called.
"""

from __future__ import annotations

from .checks import StateCheck, matches, merge_patch
from .judges import SimulatedJudge, WorldStateJudge
from .spec import (
    EXAMPLES,
    MESSAGE_USER,
    SimulatedUser,
    ToolSpec,
    WorldSpec,
    WorldTask,
    example_specs,
    load_world,
    reference_replies,
    world_tasks,
)
from .tools import USER_ROLE, WORLD_ROLE, SimulatedTools, SimulatedToolset, WorldOutcome
from .user import UserReply, UserSimulator, read_reply
from .world import WorldAnswer, WorldModel, WorldModelConfig, read_answer

__all__ = [
    "EXAMPLES",
    "MESSAGE_USER",
    "USER_ROLE",
    "WORLD_ROLE",
    "SimulatedJudge",
    "SimulatedTools",
    "SimulatedToolset",
    "SimulatedUser",
    "StateCheck",
    "ToolSpec",
    "UserReply",
    "UserSimulator",
    "WorldAnswer",
    "WorldModel",
    "WorldModelConfig",
    "WorldOutcome",
    "WorldSpec",
    "WorldStateJudge",
    "WorldTask",
    "example_specs",
    "load_world",
    "matches",
    "merge_patch",
    "read_answer",
    "read_reply",
    "reference_replies",
    "world_tasks",
]
