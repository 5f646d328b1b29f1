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

from .miniwob_names import TASKS as MINIWOB_TASKS

__all__ = ["EnvInfo", "ENVS", "register_envs"]


@dataclass(frozen=True, slots=True)
class EnvInfo:
    id: str
    entry_point: str
    summary: str
    # Defaults the spec carries (gym.spec(id).kwargs): the image whose pool the env uses, read by
    # EnvFactory and replay, which build envs of many ids; a MiniWoB++ id's task.
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
    EnvInfo(
        "boxgym/ScienceWorld-v0",
        "boxgym.blackbox.scienceworld:make_scienceworld",
        "ScienceWorld's 30 science tasks, its JVM in the sandbox; text commands, score change as reward",
        {"image": "scienceworld"},
    ),
    EnvInfo(
        "boxgym/WebTasks-v0",
        "boxgym.envs.suites.webtasks:make",
        "generated small sites in a real browser: forms, tables, navigation, search, a cart; site state judged (4 levels)",
        {"image": "desktop"},
    ),
    EnvInfo(
        "boxgym/MiniWoB-v0",
        "boxgym.envs.suites.miniwob:make",
        f"every MiniWoB++ task ({len(MINIWOB_TASKS)}) in a real browser, the seed picks task and instance; the page's reward",
        {"image": "desktop"},
    ),
    EnvInfo(
        "boxgym/Shop-v0",
        "boxgym.envs.suites.shop:make",
        "a personalised WebShop: search a generated catalogue, choose options, buy; WebShop's reward, UA2's cost (3 levels)",
        {"image": "desktop"},
    ),
    EnvInfo(
        "boxgym/Desktop-v0",
        "boxgym.envs.make:make_desktop",
        "small Tk apps on a real X display, used with pyautogui (K2.5 format) or GUI tools; app state judged (4 levels)",
        {"image": "desktop"},
    ),
    *(
        EnvInfo(
            f"boxgym/miniwob.{task}-v0",
            "boxgym.envs.suites.miniwob:make",
            f"MiniWoB++ {task}: the seed picks the instance; the page's reward",
            {"image": "desktop", "task": task},
        )
        for task in MINIWOB_TASKS
    ),
)


def register_envs() -> None:
    """Register every boxgym id (idempotent)."""
    for env in ENVS:
        if env.id not in gym.registry:
            gym.register(env.id, entry_point=env.entry_point, nondeterministic=True, kwargs=dict(env.kwargs))
