"""MiniWoB++ through ``gym.make``: every task the ``miniwob`` wheel ships, judged by the page itself.

The desktop image installs the ``miniwob`` wheel; its task pages are served to the sandbox's
browser by the browser plugin (no network, no file:// URL the agent could point elsewhere).
Ids: ``boxgym/miniwob.<task>-v0`` for each task in :data:`TASKS` (the wheel's
``html/miniwob/*.html``), and ``boxgym/MiniWoB-v0`` over all of them (``miniwob_tasks=[...]``
narrows it), where the seed picks the task as well.

An episode: the page of ``task`` opens, ``Math.seedrandom(seed)`` fixes its random instance, the
page's own ``startEpisodeReal`` draws it, and the page's utterance (``core.getUtterance()``) is
the first user message, followed by the page's accessibility tree. The page's own clock is set
out of reach (the env's deadline governs). When the page's code ends its episode, the episode
ends; the judge (:class:`~boxgym.judges.browser.PageRewardJudge`) reads the page's raw reward,
handed over by the page's ``endEpisode`` as it ran, clipped to [0, 1].

Generic by construction: a new task in the wheel is a new name in :data:`TASKS` and nothing
else; a scripted oracle for it (:mod:`.miniwob_oracles`) is optional.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...judges.browser import PageReward
from ..miniwob_names import TASKS
from ..tasks import ProceduralTaskSet, Task

if TYPE_CHECKING:
    from ...sandboxes.base import Sandbox
    from ..core import BoxEnv

__all__ = ["SYSTEM_PROMPT", "TASKS", "VIEWPORT", "make", "open_task", "task_set"]


SYSTEM_PROMPT = (
    "You operate a web browser through tools. Each observation shows the page's URL, its title and its "
    "accessibility tree, in which every element you can act on has an id in [brackets]: click, type into, "
    "select or hover elements by that id. Do what the task on the page asks; the episode ends when the page "
    "says its task is over."
)
#: The task pages are 160 x 210 pixels in the top left corner; a screenshot needs little more.
VIEWPORT = (400, 320)


def _generator(names: Sequence[str], set_name: str):
    def generate(seed: int, level: int) -> Task:
        name = names[seed % len(names)] if len(names) > 1 else names[0]
        return Task(
            id=f"{set_name}/d{level}/s{seed}",
            prompt="",  # the page's utterance, known once the page has drawn its instance (open_task)
            oracle=PageReward(name, seed),
            difficulty=level,
            metadata={"miniwob_task": name, "seed": seed},
        )

    return generate


def task_set(task: str | None = None, tasks: Sequence[str] | None = None) -> ProceduralTaskSet:
    """One task's instances (``task``), or instances of several tasks (``tasks``, default: all)."""
    if task is not None:
        if task not in TASKS:
            raise ValueError(f"no MiniWoB++ task {task!r}; see boxgym.envs.suites.miniwob.TASKS")
        return ProceduralTaskSet(f"miniwob.{task}", _generator([task], f"miniwob.{task}"), levels=1)
    names = list(tasks or TASKS)
    unknown = sorted(set(names) - set(TASKS))
    if unknown or not names:
        raise ValueError(f"unknown MiniWoB++ task(s) {unknown}" if unknown else "name at least one task")
    return ProceduralTaskSet("miniwob", _generator(names, "miniwob"), levels=1)


async def open_task(sandbox: Sandbox, task: Task) -> str:
    """The toolset's setup: open the task's page at its seeded instance; the utterance is the prompt."""
    oracle = task.oracle
    assert isinstance(oracle, PageReward)
    opened = await sandbox.call("browser.open_miniwob", {"task": oracle.task, "seed": oracle.seed}, timeout=60)
    return f"Task: {opened['utterance']}"


def make(*, task: str | None = None, miniwob_tasks: Sequence[str] | None = None, screenshots: str = "on_request", **kwargs: Any) -> BoxEnv:
    """``boxgym/miniwob.<task>-v0`` (``task``) or ``boxgym/MiniWoB-v0``; other keywords go to the env."""
    from ...judges.browser import PageRewardJudge
    from ...toolsets.browser import BrowserToolset
    from ..make import build

    kwargs.setdefault("tasks", task_set(task, miniwob_tasks))
    kwargs.setdefault("system_prompt", SYSTEM_PROMPT)
    kwargs.setdefault("toolset", BrowserToolset(screenshots=screenshots, setup=open_task, viewport=VIEWPORT))  # type: ignore[arg-type]
    kwargs.setdefault("judge", PageRewardJudge())
    kwargs.setdefault("image", "desktop")
    return build(**kwargs)
