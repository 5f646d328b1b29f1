"""Judges: a finished episode in, a typed :class:`Verdict` out; built so that the agent cannot game them.

Visual rewards (:mod:`~boxgym.judges.visual`, :mod:`~boxgym.judges.visual_judges`) need SciPy
for their matching (the ``vision`` extra), imported when first used.
"""

from .answer import AnswerJudge, ExpectedAnswer, answers_match, normalise, parse_number
from .base import Check, FinishedEpisode, Gate, Judge, Malformed, Verdict, WeightedSum
from .oracle import OracleJudge
from .sql import SqlJudge, SqlOracle
from .state import FileState, FileStateJudge, GitCheck, PathCheck
from .trusted import is_isolated, kill_agent_processes, run_trusted
from .unittests import HiddenTests, UnitTestJudge
from .visual_judges import (
    CountingJudge,
    ExpectedBoxes,
    ExpectedCount,
    ExpectedPoints,
    ExpectedPolygon,
    ExpectedText,
    GroundingJudge,
    OcrJudge,
    PointingJudge,
    SegmentationJudge,
)

__all__ = [
    "AnswerJudge",
    "Check",
    "CountingJudge",
    "ExpectedAnswer",
    "ExpectedBoxes",
    "ExpectedCount",
    "ExpectedPoints",
    "ExpectedPolygon",
    "ExpectedText",
    "FileState",
    "FileStateJudge",
    "FinishedEpisode",
    "Gate",
    "GitCheck",
    "GroundingJudge",
    "HiddenTests",
    "Judge",
    "Malformed",
    "OcrJudge",
    "OracleJudge",
    "PathCheck",
    "PointingJudge",
    "SegmentationJudge",
    "SqlJudge",
    "SqlOracle",
    "UnitTestJudge",
    "Verdict",
    "WeightedSum",
    "answers_match",
    "is_isolated",
    "kill_agent_processes",
    "normalise",
    "parse_number",
    "run_trusted",
]
