"""Black-box environments: an external simulator run in a sandbox and exposed unchanged.

    import gymnasium as gym
    import boxgym

    env = gym.make("boxgym/ScienceWorld-v0")          # ScienceWorld, in its own image
    obs, info = env.reset(seed=0, options={"task": "boil", "split": "dev"})
    obs, reward, terminated, truncated, info = env.step("open door to kitchen")

The simulator runs in the sandbox as a program speaking JSON lines (:mod:`.program`, served by
the tool server's ``blackbox`` plugin); :class:`BlackBoxEnv` drives it through a
:class:`BlackBox` adapter (:class:`ScienceWorld` is one). docs/blackbox.md shows how to wrap
another simulator the same way. Importing this package imports no simulator.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BlackBox",
    "BlackBoxEnv",
    "BlackBoxReset",
    "BlackBoxStep",
    "Opened",
    "Program",
    "ProgramSpec",
    "ScienceWorld",
    "ScienceWorldTask",
    "make_scienceworld",
]

_LAZY = {
    "BlackBox": "boxgym.blackbox.env",
    "BlackBoxEnv": "boxgym.blackbox.env",
    "BlackBoxReset": "boxgym.blackbox.env",
    "BlackBoxStep": "boxgym.blackbox.env",
    "Opened": "boxgym.blackbox.program",
    "Program": "boxgym.blackbox.program",
    "ProgramSpec": "boxgym.blackbox.program",
    "ScienceWorld": "boxgym.blackbox.scienceworld",
    "ScienceWorldTask": "boxgym.blackbox.scienceworld",
    "make_scienceworld": "boxgym.blackbox.scienceworld",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
