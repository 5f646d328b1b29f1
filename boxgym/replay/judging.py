"""What a judge needs to score a recorded episode again, and scoring it with no re-execution.

Each judge reads one of three things (:class:`Needs`), in increasing cost:

``RECORD``       the task and what the steps recorded (the submitted answer): scored offline,
                 with no sandbox at all (:class:`~boxgym.judges.AnswerJudge`).
``CHECKER``      the recorded submission, checked by trusted code that runs in a sandbox but
                 reads none of the agent's files (:class:`~boxgym.judges.SqlJudge` runs the
                 submitted query against a pristine copy of the database). Scored in a clean
                 sandbox that no agent ever touched, shared by many such episodes: nothing is
                 re-executed.
``FINAL_STATE``  the sandbox as the agent left it (hidden unit tests importing its files, the
                 file-system state). The recorded actions are re-executed in a fresh sandbox
                 first; any judge this module does not know is treated this way, which is
                 always right, only slower.

A judge that turns out to touch a sandbox it was not given (:class:`SealedSandbox`) raises
:class:`NeedsSandbox`, and the episode is re-executed instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import Any

from ..errors import ReplayError
from ..judges.answer import AnswerJudge
from ..judges.base import FinishedEpisode, Gate, Judge, WeightedSum
from ..judges.oracle import OracleJudge
from ..judges.sql import SqlJudge
from ..trajectories import StepRecord

__all__ = ["Needs", "NeedsSandbox", "SealedSandbox", "needs_of", "submission_of", "finished_episode"]


class Needs(IntEnum):
    """What a judge reads to score an episode (ordered: a larger value needs more)."""

    RECORD = 0
    CHECKER = 1
    FINAL_STATE = 2


_KNOWN: dict[type, Needs] = {AnswerJudge: Needs.RECORD, SqlJudge: Needs.CHECKER}


def needs_of(judge: Judge, task: Any) -> Needs:
    """What ``judge`` needs to score an episode of ``task`` (see the module docstring)."""
    if isinstance(judge, OracleJudge):
        inner = judge.judges.get(type(task.oracle))
        return Needs.FINAL_STATE if inner is None else needs_of(inner, task)
    if isinstance(judge, WeightedSum):
        return max((needs_of(part, task) for _, part, _ in judge.parts), default=Needs.RECORD)
    if isinstance(judge, Gate):
        return max(needs_of(judge.gate, task), needs_of(judge.then, task))
    return _KNOWN.get(type(judge), Needs.FINAL_STATE)


class NeedsSandbox(ReplayError):
    """A judge scored offline touched the sandbox: the episode must be re-executed."""


class SealedSandbox:
    """The sandbox an offline judge gets: every operation raises :class:`NeedsSandbox`."""

    id = "sealed"
    workdir = "/workspace"
    closed = False
    isolated = True

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise NeedsSandbox("the judge reads the sandbox: the recorded actions must be re-executed")

    async def exec(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse()

    async def read_file(self, *args: Any, **kwargs: Any) -> bytes:
        self._refuse()

    async def write_file(self, *args: Any, **kwargs: Any) -> None:
        self._refuse()

    async def list_dir(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse()

    async def stat(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse()

    async def health(self) -> Any:
        self._refuse()

    async def call(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse()

    async def usage(self) -> Any:
        self._refuse()

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> SealedSandbox:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def _arguments(call: Mapping[str, Any]) -> dict[str, Any]:
    raw = (call.get("function") or {}).get("arguments")
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        parsed = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def submission_of(steps: Sequence[StepRecord]) -> tuple[bool, str | None]:
    """``(submitted, submission)`` as the env saw them: the first ``submit`` call that ran
    (its event says ``ok``), with the ``answer`` argument it carried."""
    for step in steps:
        calls = {call.get("id"): call for call in step.tool_calls if isinstance(call, Mapping)}
        for event in step.events:
            if event.get("tool") == "submit" and event.get("ok"):
                answer = _arguments(calls.get(event.get("call_id")) or {}).get("answer")
                return True, answer if isinstance(answer, str) else None
    return False, None


def finished_episode(task: Any, sandbox: Any, steps: Sequence[StepRecord]) -> FinishedEpisode:
    """The judge's view of a recorded episode, as the env built it at the end (the steps before
    the last one, the submission)."""
    submitted, submission = submission_of(steps)
    return FinishedEpisode(task, sandbox, tuple(steps[:-1]), submitted, submission)
