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

__all__ = ["make_code", "make_shell", "make_sql", "build"]


def build(
    *,
    tasks: TaskSet | str | os.PathLike[str],
    system_prompt: str,
    provider: Any = None,
    image: str = "slim",
    pool_size: int = 2,
    limits: EpisodeLimits | None = None,
    **kwargs: Any,
) -> BoxEnv:
    if isinstance(tasks, (str, os.PathLike)):
        tasks = StaticTaskSet.from_jsonl(tasks)
    owns = provider is None
    return BoxEnv(
        provider=provider if provider is not None else SharedPool(image, pool_size),
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
