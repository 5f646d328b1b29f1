"""Judging a desktop app by the state it wrote: :class:`AppOracle` and :class:`DesktopJudge`.

An :class:`AppOracle` is a task's app (its description, which the sandbox's ``gui`` plugin turns
into a Tk window) and the :class:`Goal` the app's state must show at the end. The judge opens the
app before the agent's first step (:meth:`DesktopJudge.prepare`) and, once the episode ends, kills
the agent's processes and reads what the app wrote (``gui.app_state``), from a directory only the
display's user may write: the agent can change it by using the app, and no other way.

Goals (``Goal.kind``): ``press`` (the button ``target`` was pressed, and no other button of the
app), ``submit`` (the button ``target`` was pressed last with the form's ``values`` as given),
``menu`` (the item ``item`` of menu ``target`` was chosen, and no other item), ``values`` (the
widgets hold ``values``: a slider, a spinbox, check boxes), ``saved`` (the editor ``target`` was
saved holding ``text``), ``placed`` (the board ``target`` has its items in the boxes of
``values``; an item mapped to None is in none). A ``computer.terminate(status="failure")`` scores
0: every task of the suite can be done. The reward is 1 or 0; the checks say what differed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import JudgeError, SandboxRefused
from ..sandboxes.base import Sandbox
from ..toolsets.gui import Termination
from .base import Check, FinishedEpisode, Verdict

__all__ = ["AppOracle", "DesktopJudge", "Goal"]

GoalKind = Literal["press", "submit", "menu", "values", "saved", "placed"]


@dataclass(frozen=True, slots=True)
class Goal:
    kind: GoalKind
    target: str = ""  # a button, menu, editor or board id
    item: str = ""  # the menu item
    values: Mapping[str, Any] = field(default_factory=dict)  # widget id -> value; board item -> box
    text: str = ""  # the editor's saved text


@dataclass(frozen=True, slots=True)
class AppOracle:
    app: Mapping[str, Any]  # the app's description (sandboxes/toolserver/gui_app.py)
    goal: Goal
    screen: tuple[int, int] = (1280, 800)


@dataclass(frozen=True, slots=True)
class DesktopJudge:
    """Opens the task's app, and scores the state the app wrote (module docstring)."""

    open_within_s: float = 30.0

    async def prepare(self, sandbox: Sandbox, task: Any) -> None:
        oracle = _oracle(task)
        args = {"spec": dict(oracle.app), "screen": list(oracle.screen), "timeout": self.open_within_s}
        await sandbox.call("gui.open_app", args, timeout=self.open_within_s + 30.0)

    async def score(self, episode: FinishedEpisode) -> Verdict:
        goal = _oracle(episode.task).goal
        await episode.sandbox.kill_agent_processes()  # nothing of the agent's acts on the app while it is read
        try:
            answer = await episode.sandbox.call("gui.app_state", {}, timeout=30.0)
        except SandboxRefused as exc:
            raise JudgeError(f"the app's state cannot be read: {exc}") from None
        state = answer.get("state") if isinstance(answer, Mapping) else None
        if not isinstance(state, Mapping):
            raise JudgeError("the app wrote no state (it never started)")
        termination = Termination.of(episode.submission) if episode.submitted else None
        if termination is not None and termination.status == "failure":
            return Verdict.fail("the agent ended with status failure, and the task can be done",
                                checks=(Check("not given up", False, "terminate(status='failure')"),))  # fmt: skip
        checks = _check(goal, state.get("events") or [], state.get("values") or {})
        passed = all(check.passed for check in checks)
        return Verdict(1.0 if passed else 0.0, passed, tuple(checks))


def _oracle(task: Any) -> AppOracle:
    oracle = getattr(task, "oracle", None)
    if not isinstance(oracle, AppOracle):
        raise JudgeError(f"task {getattr(task, 'id', '?')} has no app (its oracle is {type(oracle).__name__})")
    return oracle


def _check(goal: Goal, events: list[Mapping[str, Any]], values: Mapping[str, Any]) -> list[Check]:
    presses = [e.get("id") for e in events if e.get("kind") == "press"]
    if goal.kind == "press":
        others = sorted({p for p in presses if p != goal.target})
        return [
            Check(f"pressed {goal.target}", goal.target in presses, f"presses: {presses}"),
            Check("pressed no other button", not others, f"also pressed: {others}" if others else ""),
        ]
    if goal.kind == "submit":
        submits = [e for e in events if e.get("kind") == "press" and e.get("id") == goal.target]
        last = submits[-1].get("values", {}) if submits else {}
        checks = [Check(f"pressed {goal.target}", bool(submits), f"presses: {presses}")]
        for key, want in goal.values.items():
            got = last.get(key)
            checks.append(Check(f"{key} = {want!r} when submitted", _same(got, want), f"was {got!r}"))
        return checks
    if goal.kind == "menu":
        chosen = [(e.get("menu"), e.get("item")) for e in events if e.get("kind") == "menu"]
        wrong = sorted({f"{m} > {i}" for m, i in chosen if (m, i) != (goal.target, goal.item)})
        return [
            Check(f"chose {goal.target} > {goal.item}", (goal.target, goal.item) in chosen, f"chosen: {chosen}"),
            Check("chose no other item", not wrong, f"also chose: {wrong}" if wrong else ""),
        ]
    if goal.kind == "values":
        return [Check(f"{key} = {want!r}", _same(values.get(key), want), f"is {values.get(key)!r}")
                for key, want in goal.values.items()]  # fmt: skip
    if goal.kind == "saved":
        saves = [e.get("content") for e in events if e.get("kind") == "save" and e.get("id") == goal.target]
        last = saves[-1] if saves else None
        same = isinstance(last, str) and last.rstrip("\n") == goal.text.rstrip("\n")
        return [Check(f"{goal.target} saved with the asked text", same,
                      "never saved" if last is None else f"saved: {last[:300]!r}")]  # fmt: skip
    if goal.kind == "placed":
        where = values.get(goal.target) or {}
        return [Check(f"{item} in {box or 'no box'}", where.get(item) == box, f"is in {where.get(item) or 'no box'}")
                for item, box in goal.values.items()]  # fmt: skip
    raise JudgeError(f"unknown goal kind {goal.kind!r}")


def _same(got: Any, want: Any) -> bool:
    """Values as the widgets hold them: text is compared without surrounding spaces, numbers as numbers."""
    if isinstance(want, bool):
        return got is want
    if isinstance(want, int):
        try:
            return int(str(got).strip()) == want
        except ValueError:
            return False
    return isinstance(got, str) and got.strip() == str(want).strip()
