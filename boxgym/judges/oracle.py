"""The default judge: pick the judge that understands the task's oracle.

A task carries one oracle record (:class:`HiddenTests`, :class:`ExpectedAnswer`,
:class:`FileState` or :class:`SqlOracle`); :class:`OracleJudge` sends the
episode to the matching judge, so one environment class serves every suite and
a JSONL task set may mix kinds. Replace any entry to change how a kind is judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import JudgeError
from .answer import AnswerJudge, ExpectedAnswer
from .base import FinishedEpisode, Judge, Verdict
from .sql import SqlJudge, SqlOracle
from .state import FileState, FileStateJudge
from .unittests import HiddenTests, UnitTestJudge

__all__ = ["OracleJudge"]


def _defaults() -> dict[type, Judge]:
    return {
        HiddenTests: UnitTestJudge(),
        ExpectedAnswer: AnswerJudge(),
        FileState: FileStateJudge(),
        SqlOracle: SqlJudge(),
    }


@dataclass(frozen=True, slots=True)
class OracleJudge:
    judges: Mapping[type, Judge] = field(default_factory=_defaults)

    async def score(self, episode: FinishedEpisode) -> Verdict:
        judge = self.judges.get(type(episode.task.oracle))
        if judge is None:
            raise JudgeError(f"no judge for the oracle {type(episode.task.oracle).__name__} of task {episode.task.id}")
        return await judge.score(episode)
