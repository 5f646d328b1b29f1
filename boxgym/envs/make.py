"""Entry points of the registered ids: a :class:`BoxEnv` with each suite's defaults.

Every keyword of :class:`~boxgym.envs.core.BoxEnv` can be passed through
``gym.make``, e.g. ``gym.make("boxgym/Code-v0", provider=my_pool,
writer=TrajectoryWriter("runs/1"))``. ``tasks`` also takes the path of a JSONL
file. Without a ``provider``, the env uses the process's shared warm pool of
the ``image`` (``slim`` by default, ``pool_size`` warm sandboxes).
"""

from __future__ import annotations

import os
from typing import Any

from ..judges.oracle import OracleJudge
from ..toolsets.shell import ShellToolset
from .core import BoxEnv, EpisodeLimits
from .defaults import SharedPool
from .tasks import StaticTaskSet, TaskSet

__all__ = ["make_code", "make_data_analysis", "make_desktop", "make_shell", "make_simulated", "make_sql", "make_vision", "build"]


def build(
    *,
    tasks: TaskSet | str | os.PathLike[str],
    system_prompt: str,
    provider: Any = None,
    image: str = "slim",
    pool_size: int = 2,
    warm: tuple[str, ...] = (),
    limits: EpisodeLimits | None = None,
    **kwargs: Any,
) -> BoxEnv:
    if isinstance(tasks, (str, os.PathLike)):
        tasks = StaticTaskSet.from_jsonl(tasks)
    owns = provider is None
    return BoxEnv(
        provider=provider if provider is not None else SharedPool(image, pool_size, tuple(warm)),
        tasks=tasks,
        judge=kwargs.pop("judge", None) or OracleJudge(),
        toolset=kwargs.pop("toolset", None) or ShellToolset(),
        system_prompt=system_prompt,
        limits=limits or EpisodeLimits(),
        owns_provider=kwargs.pop("owns_provider", owns),
        **kwargs,
    )


def make_code(**kwargs: Any) -> BoxEnv:
    from .suites import code

    kwargs.setdefault("tasks", code.task_set())
    kwargs.setdefault("system_prompt", code.SYSTEM_PROMPT)
    return build(**kwargs)


def make_shell(**kwargs: Any) -> BoxEnv:
    from .suites import shell

    kwargs.setdefault("tasks", shell.task_set())
    kwargs.setdefault("system_prompt", shell.SYSTEM_PROMPT)
    return build(**kwargs)


def make_sql(**kwargs: Any) -> BoxEnv:
    from .suites import sql

    kwargs.setdefault("tasks", sql.task_set())
    kwargs.setdefault("system_prompt", sql.SYSTEM_PROMPT)
    return build(**kwargs)


def make_data_analysis(**kwargs: Any) -> BoxEnv:
    """``boxgym/DataAnalysis-v0``: questions about generated data files, with the ``python`` tool (an
    IPython kernel, warm in every pooled sandbox of the ``jupyter`` image) and ``submit``."""
    from ..toolsets import IPythonToolset, SubmitToolset, compose
    from .suites import data_analysis

    kwargs.setdefault("tasks", data_analysis.task_set())
    kwargs.setdefault("system_prompt", data_analysis.SYSTEM_PROMPT)
    kwargs.setdefault("toolset", compose(IPythonToolset(), SubmitToolset()))
    kwargs.setdefault("judge", data_analysis.AnalysisJudge())
    kwargs.setdefault("image", "jupyter")
    kwargs.setdefault("warm", ("ipython.ready",))
    return build(**kwargs)


def make_vision(**kwargs: Any) -> BoxEnv:
    """``boxgym/Vision-v0``: questions about generated images, shown to the policy and in the sandbox as
    ``image.png``, with the ``python`` tool (warm in the ``jupyter`` image), ``submit`` and the visual judges."""
    from ..toolsets import IPythonToolset, SubmitToolset, compose
    from .suites import vision

    kwargs.setdefault("tasks", vision.task_set())
    kwargs.setdefault("system_prompt", vision.SYSTEM_PROMPT)
    kwargs.setdefault("toolset", compose(IPythonToolset(), SubmitToolset()))
    kwargs.setdefault("judge", vision.judge())
    kwargs.setdefault("image", "jupyter")
    kwargs.setdefault("warm", ("ipython.ready",))
    return build(**kwargs)


def make_simulated(
    *,
    world: Any = None,
    user: Any = None,
    grader: Any = None,
    specs: str | os.PathLike[str] | list[str | os.PathLike[str]] | None = None,
    **kwargs: Any,
) -> BoxEnv:
    """``boxgym/Simulated-v0``: tools answered by a world model (:mod:`boxgym.simulated`).

    ``world``, ``user`` and ``grader`` are :class:`~boxgym.modelcalls.ModelEndpoint`: the world
    model, the simulated user (default: the world model's) and the rubric judge; ``specs`` are
    spec files (default: the shipped examples). ``toolset``, ``judge``, ``tasks`` and every
    other keyword replace the defaults as in the other envs.
    """
    from ..simulated import SimulatedJudge, SimulatedToolset, world_tasks
    from ..simulated.spec import SYSTEM_PROMPT

    if "tasks" not in kwargs:
        paths = [specs] if isinstance(specs, (str, os.PathLike)) else list(specs or [])
        kwargs["tasks"] = world_tasks(*paths)
    kwargs.setdefault("system_prompt", SYSTEM_PROMPT)
    kwargs.setdefault("toolset", SimulatedToolset(world, user=user))
    kwargs.setdefault("judge", SimulatedJudge(grader))
    return build(**kwargs)


def make_desktop(
    *,
    screen: tuple[int, int] = (1280, 800),
    password: str = "password",
    action_format: str = "k25",
    wait_s: float = 20.0,
    kinds: tuple[str, ...] | None = None,
    observation: str = "messages",
    max_steps_per_episode: int = 100,
    **kwargs: Any,
) -> BoxEnv | Any:
    """``boxgym/Desktop-v0``: small Tk apps used with the mouse and keyboard (:mod:`boxgym.envs.suites.desktop`).

    ``action_format="k25"`` (the default) reads replies in the K2.5 format (pyautogui code,
    ``computer.wait()``, ``computer.terminate(...)``; :mod:`boxgym.toolsets.gui_format`) under the
    K2.5 system prompt with ``password``; ``"tools"`` offers the structured tools (``click``,
    ``type``, ...) to a function-calling policy. ``screen`` is the display's size, ``wait_s`` what a
    bare wait waits, ``kinds`` the task kinds to draw from. Episodes have ``max_steps_per_episode``
    steps (100; or give ``limits=EpisodeLimits(...)`` whole); the sandbox image is ``desktop``.
    ``observation="dict"`` observes ``{"screen": pixels, "text": str}`` instead of chat messages
    (:class:`~boxgym.envs.screen.ScreenObservation`; for your own loops, not the rollout manager).
    """
    from ..judges.desktop import DesktopJudge
    from ..toolsets.gui import GuiToolset
    from ..toolsets.gui_format import K25Parser, system_prompt
    from .suites import desktop

    if action_format not in ("k25", "tools"):
        raise ValueError(f"action_format must be 'k25' or 'tools', not {action_format!r}")
    if observation not in ("messages", "dict"):
        raise ValueError(f"observation must be 'messages' or 'dict', not {observation!r}")
    screen = (int(screen[0]), int(screen[1]))
    k25 = action_format == "k25"
    kwargs.setdefault("tasks", desktop.task_set(screen, tuple(kinds or desktop.KINDS)))
    kwargs.setdefault("system_prompt", system_prompt(password, screen) if k25 else desktop.TOOLS_PROMPT.format(password=password))
    kwargs.setdefault("toolset", GuiToolset(screen=screen, wait_s=wait_s, structured=not k25))
    kwargs.setdefault("judge", DesktopJudge())
    if k25:
        kwargs.setdefault("parser", K25Parser())
    kwargs.setdefault("limits", EpisodeLimits(max_turns=max_steps_per_episode))
    kwargs.setdefault("image", "desktop")
    env = build(**kwargs)
    if observation == "dict":
        from .screen import ScreenObservation

        return ScreenObservation(env, screen)
    return env
