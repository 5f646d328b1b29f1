"""The ``boxgym/`` ids in Gymnasium's registry.

Registration is by ``"module:function"`` strings, so registering imports no
suite, judge or Docker code. ``import boxgym`` registers the ids (at once when
Gymnasium is loaded, else as soon as it is: :mod:`boxgym._registering`), and so
does ``import boxgym.envs``; in a spawned worker any of these makes them exist:

* ``import boxgym`` (or ``import boxgym.envs``) before ``gym.make("boxgym/Code-v0")``, or
* ``gym.make("boxgym.envs:boxgym/Code-v0")``, which has Gymnasium import it, or
* ``gym.make_vec(...)``/pickled specs, which carry the entry-point string itself.

Gymnasium 1.x has no plugin entry-point group (it was removed in 1.0), so
installing boxgym without importing it registers nothing. Sandbox envs are registered
``nondeterministic=True``: timings and sandbox events differ run to run
(the task and first observation for a seed do not).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

__all__ = ["EnvInfo", "ENVS", "register_envs"]


@dataclass(frozen=True, slots=True)
class EnvInfo:
    id: str
    entry_point: str
    summary: str
    # Defaults the spec carries (gym.spec(id).kwargs), e.g. the image whose pool the env uses:
    # read by EnvFactory and replay, which build envs of many ids.
    kwargs: Mapping[str, Any] = field(default_factory=dict)


ENVS: tuple[EnvInfo, ...] = (
    EnvInfo(
        "boxgym/Code-v0",
        "boxgym.envs.make:make_code",
        "write a Python function to a spec; hidden unit tests (4 levels, or your JSONL)",
    ),
    EnvInfo(
        "boxgym/Shell-v0",
        "boxgym.envs.make:make_shell",
        "bring files, permissions and a git repo to a described state; state inspected (4 levels)",
    ),
    EnvInfo(
        "boxgym/SQL-v0",
        "boxgym.envs.make:make_sql",
        "answer a question about a generated SQLite database with a query; execution match (4 levels)",
    ),
    EnvInfo(
        "boxgym/DataAnalysis-v0",
        "boxgym.envs.make:make_data_analysis",
        "answer a question about generated CSV/JSON/SQLite data in an IPython kernel; numeric answers (4 levels)",
        {"image": "jupyter", "warm": ("ipython.ready",)},
    ),
    EnvInfo(
        "boxgym/Vision-v0",
        "boxgym.envs.make:make_vision",
        "count, box, point at, outline, read text and chart values in generated images; visual rewards (4 levels)",
        {"image": "jupyter", "warm": ("ipython.ready",)},
    ),
    EnvInfo(
        "boxgym/Simulated-v0",
        "boxgym.envs.make:make_simulated",
        "tools answered by a world model from a spec file, a simulated user; state rules and/or a rubric",
    ),
)


def register_envs() -> None:
    """Register every boxgym id (idempotent)."""
    for env in ENVS:
        if env.id not in gym.registry:
            gym.register(env.id, entry_point=env.entry_point, nondeterministic=True, kwargs=dict(env.kwargs))
