"""ScienceWorld (Wang et al., EMNLP 2022) as ``boxgym/ScienceWorld-v0``: the text environment of
the CogRouter and PANDA papers, run by the ``scienceworld`` package in a sandbox and exposed
unchanged.

The package (its jar, and py4j) and a Java runtime are in the ``scienceworld`` image; the
program :mod:`boxgym.blackbox.scienceworld_program` runs there as the simulator's own user,
with one JVM per sandbox, started with the sandbox's first episode and reused by every later
reset (``info["timings"]["simulator_start_s"]`` says how long the start took, when it
happened). The observation is ScienceWorld's text (the task description and the first look
around at reset, the answer to each command after); the action is a ScienceWorld command, as
text or through the ``act`` tool, and ``valid_actions`` lists what ScienceWorld accepts now.

Reward and termination: each command's reward is ScienceWorld's score change for it, as the
package's own ``step`` computes it, in units of the full score (``points * reward_scale``, 0.01
by default): an episode's rewards add up to the score it gained, over 100 (the few points some
tasks score at reset are no command's, as in the package; ``info["metadata"]["score"]``). The
episode is *terminated* when ScienceWorld reports it completed (won, or failed with a negative
score) and *truncated* when it ends it only because the moves passed its step limit
(``step_limit``, ScienceWorld's ``envStepLimit``, 100 by default as in the package).
``info["simulator"]`` has ScienceWorld's ``score`` (0 to 100), ``moves``, ``points`` and ``completed``.

Tasks: ``reset(options=...)`` takes ``task`` (a name such as ``"boil"``, or ScienceWorld's id
``"1-1"``), ``variation``, ``split`` (``train``/``dev``/``test``: ScienceWorld's own split of
each task's variations), ``simplifications`` (e.g. ``"easy"``) or ``task_id``
(``"boil/3"``, ``"boil/3/easy"``: exactly that task again); without them, the seed draws a task
(from ``task_names``, default all 30) and a variation of the split, reproducibly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..envs.core import EpisodeLimits
from ..errors import TaskError, ToolServerError
from .env import BlackBoxEnv, BlackBoxReset, BlackBoxStep
from .program import Program, ProgramSpec

__all__ = ["SPLITS", "SYSTEM_PROMPT", "ScienceWorld", "ScienceWorldTask", "make_scienceworld"]

SPLITS = ("train", "dev", "test")
_OPTIONS = frozenset({"task", "variation", "split", "simplifications", "task_id"})
PROGRAM = ProgramSpec.python_file(
    "scienceworld", Path(__file__).with_name("scienceworld_program.py"), start_timeout=180.0, request_timeout=180.0
)

SYSTEM_PROMPT = """\
You are an agent in ScienceWorld, a text-based simulation of elementary-school science experiments \
in a house with a kitchen, a greenhouse, a workshop and more. The user gives you the task and what \
you observe. Each turn, reply with exactly one ScienceWorld command, such as `look around`, \
`open door to kitchen`, `go to kitchen`, `pick up thermometer`, `focus on substance in cup` or \
`wait`, or call the tool `act` with it; the tool `valid_actions` lists the commands ScienceWorld \
accepts right now. Your score rises as you make progress; the task ends when it is done, or fails \
when you focus on the wrong thing."""

COMMAND_HELP = "Run one ScienceWorld command (e.g. 'open door to kitchen', 'focus on water') and read what happens."

#: What ScienceWorld says of itself that never changes for one version of the package: its
#: tasks, and each task's split of variations. Asked once per process (a task's split costs a
#: load of that task), shared by every env of it.
_CATALOG: dict[str, Any] = {}
_SPLITS: dict[str, Mapping[str, tuple[int, ...]]] = {}


@dataclass(frozen=True, slots=True)
class ScienceWorldTask:
    """One task of ScienceWorld: name, variation and simplifications; its id is ``name/variation[/simplifications]``."""

    name: str
    variation: int
    simplifications: str = ""

    @property
    def id(self) -> str:
        return f"{self.name}/{self.variation}" + (f"/{self.simplifications}" if self.simplifications else "")

    @classmethod
    def parse(cls, task_id: str) -> "ScienceWorldTask":
        parts = task_id.split("/") if isinstance(task_id, str) else []
        if len(parts) not in (2, 3) or not parts[1].isdigit():
            raise TaskError(f"a ScienceWorld task id is 'name/variation[/simplifications]', not {task_id!r}")
        return cls(parts[0], int(parts[1]), parts[2] if len(parts) == 3 else "")


class ScienceWorld:
    """The :class:`~boxgym.blackbox.env.BlackBox` of ScienceWorld (see the module docstring)."""

    program = PROGRAM
    system_prompt = SYSTEM_PROMPT
    command_help = COMMAND_HELP

    def __init__(
        self,
        *,
        split: str = "train",
        task_names: Sequence[str] | None = None,
        simplifications: str = "",
        step_limit: int = 100,
        reward_scale: float = 0.01,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        if not isinstance(step_limit, int) or step_limit < 1:
            raise ValueError("step_limit must be a positive integer")
        self.split = split
        self.task_names = None if task_names is None else tuple(task_names)
        self.simplifications = simplifications
        self.step_limit = step_limit
        self.reward_scale = reward_scale

    async def reset(self, program: Program, rng: np.random.Generator, options: Mapping[str, Any]) -> BlackBoxReset:
        unknown = set(options) - _OPTIONS
        if unknown:
            raise TaskError(f"unknown reset options {sorted(unknown)}; use {', '.join(sorted(_OPTIONS))} or episode_id")
        task = await self._choose(program, rng, options)
        splits = await self._splits(program, task.name)
        reply = await self._load(program, task)
        return BlackBoxReset(
            task.id,
            f"{reply['task_description']}\n\n{reply['observation']}",
            {"task": task.name, "variation": task.variation, "simplifications": task.simplifications,
             "split": next((s for s in SPLITS if task.variation in splits[s]), None), "step_limit": self.step_limit,
             "score": reply["score"]},
        )

    async def step(self, program: Program, command: str) -> BlackBoxStep:
        reply = await program.request({"op": "step", "action": command})
        if isinstance(reply, dict) and reply.get("kind") == "simulator":
            # ScienceWorld raised on this command: the agent reads that, and plays on.
            return BlackBoxStep(f"error: ScienceWorld failed on this command: {reply['error']}")
        _check(reply)
        # ScienceWorld says "completed" both when the task ends and when the moves ran out; the
        # second is a time limit, which Gymnasium calls truncation.
        out_of_moves = (
            reply["done"] and not reply["completed"] and reply["score"] >= 0 and reply["moves"] > self.step_limit
        )
        return BlackBoxStep(
            reply["observation"],
            reward=reply["points"] * self.reward_scale,
            terminated=reply["done"] and not out_of_moves,
            truncated=out_of_moves,
            metadata={k: reply[k] for k in ("score", "moves", "points", "completed")},
        )

    async def valid_actions(self, program: Program) -> list[str] | None:
        return list(_check(await program.request({"op": "valid_actions"}))["valid"])

    async def reference(self, program: Program, task_id: str) -> list[str] | None:
        """ScienceWorld's gold action sequence for ``task_id``; the task is loaded again after."""
        task = ScienceWorldTask.parse(task_id)
        gold = _check(await program.request({"op": "gold", "task": task.name, "variation": task.variation,
                                             "simplifications": task.simplifications}))
        await self._load(program, task)
        return list(gold["actions"])

    async def tasks(self, program: Program) -> list[str]:
        """ScienceWorld's task names, as the simulator lists them."""
        return await self._names(program)

    # -- helpers ------------------------------------------------------------------------

    async def _choose(self, program: Program, rng: np.random.Generator, options: Mapping[str, Any]) -> ScienceWorldTask:
        if options.get("task_id") is not None:
            return ScienceWorldTask.parse(options["task_id"])
        names = await self._names(program)
        if options.get("task") is not None:
            name = self._canonical(options["task"])
        else:
            pool = self.task_names or tuple(names)
            name = self._canonical(pool[int(rng.integers(len(pool)))])
        simplifications = options.get("simplifications", self.simplifications)
        if options.get("variation") is not None:
            return ScienceWorldTask(name, _integer(options["variation"]), simplifications)
        split = options.get("split", self.split)
        if split not in SPLITS:
            raise TaskError(f"split must be one of {SPLITS}, not {split!r}")
        variations = (await self._splits(program, name))[split]
        return ScienceWorldTask(name, int(variations[int(rng.integers(len(variations)))]), simplifications)

    async def _names(self, program: Program) -> list[str]:
        if "tasks" not in _CATALOG:
            catalog = _check(await program.request({"op": "catalog"}))
            _CATALOG["ids"] = {t["id"]: t["name"] for t in catalog["tasks"] if t["id"]}
            _CATALOG["tasks"] = [t["name"] for t in catalog["tasks"]]
        return list(_CATALOG["tasks"])

    def _canonical(self, name: Any) -> str:
        name = _CATALOG["ids"].get(name, name)
        if name not in _CATALOG["tasks"]:
            raise TaskError(f"unknown ScienceWorld task {name!r}; the tasks are: {', '.join(_CATALOG['tasks'])}")
        return name

    async def _splits(self, program: Program, name: str) -> Mapping[str, tuple[int, ...]]:
        if name not in _SPLITS:
            reply = _check(await program.request({"op": "variations", "task": name}))
            _SPLITS[name] = {split: tuple(reply[split]) for split in SPLITS}
        return _SPLITS[name]

    async def _load(self, program: Program, task: ScienceWorldTask) -> dict[str, Any]:
        return _check(await program.request({
            "op": "load", "task": task.name, "variation": task.variation,
            "simplifications": task.simplifications, "step_limit": self.step_limit,
        }))


def _check(reply: Any) -> dict[str, Any]:
    """A reply that is not an error; a request it refused names a bad option (the caller's)."""
    if not isinstance(reply, dict):
        raise ToolServerError(f"ScienceWorld's program answered {reply!r}")
    if "error" in reply:
        if reply.get("kind") == "bad_request":
            raise TaskError(reply["error"])
        raise ToolServerError(f"ScienceWorld failed: {reply['error']}")
    return reply


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TaskError(f"a variation is an integer, not {value!r}")
    return int(value)


def make_scienceworld(
    *,
    provider: Any = None,
    image: str = "scienceworld",
    pool_size: int = 2,
    limits: EpisodeLimits | None = None,
    split: str = "train",
    task_names: Sequence[str] | None = None,
    simplifications: str = "",
    step_limit: int = 100,
    reward_scale: float = 0.01,
    **kwargs: Any,
) -> BlackBoxEnv:
    """``boxgym/ScienceWorld-v0``. Without a ``provider``, the process's shared warm pool of the
    ``scienceworld`` image. ``tools=ShellToolset()`` offers a shell too (each episode then gets
    a fresh sandbox); the other keywords go to :class:`~boxgym.blackbox.env.BlackBoxEnv`."""
    from ..envs.defaults import SharedPool

    blackbox = ScienceWorld(
        split=split, task_names=task_names, simplifications=simplifications, step_limit=step_limit,
        reward_scale=reward_scale,
    )
    owns = provider is None
    return BlackBoxEnv(
        provider=provider if provider is not None else SharedPool(image, pool_size),
        blackbox=blackbox,
        # Turns are not moves (listing the valid actions is a turn, not a move): room for both.
        limits=limits or EpisodeLimits(max_turns=3 * step_limit, episode_seconds=3600.0),
        owns_provider=kwargs.pop("owns_provider", owns),
        **kwargs,
    )
