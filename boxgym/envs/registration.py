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

from dataclasses import dataclass

import gymnasium as gym

__all__ = ["EnvInfo", "ENVS", "register_envs"]


@dataclass(frozen=True, slots=True)
class EnvInfo:
    id: str
    entry_point: str
    summary: str
    image: str = "slim"  # the sandbox image its shared pool runs (a registered kwarg when not slim)


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
        "boxgym/Simulated-v0",
        "boxgym.envs.make:make_simulated",
        "tools answered by a world model from a spec file, a simulated user; state rules and/or a rubric",
    ),
    EnvInfo(
        "boxgym/Desktop-v0",
        "boxgym.envs.make:make_desktop",
        "small Tk apps on a real X display, used with pyautogui (K2.5 format) or GUI tools; app state judged (4 levels)",
        image="desktop",
    ),
)


def register_envs() -> None:
    """Register every boxgym id (idempotent)."""
    for env in ENVS:
        if env.id not in gym.registry:
            # The image goes into the spec's kwargs, where EnvFactory finds which pool an id needs.
            kwargs = {} if env.image == "slim" else {"image": env.image}
            gym.register(env.id, entry_point=env.entry_point, nondeterministic=True, kwargs=kwargs)
