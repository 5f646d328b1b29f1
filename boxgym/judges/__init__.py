"""Judges: a finished episode in, a typed :class:`Verdict` out; built so that the agent cannot game them."""

from .answer import AnswerJudge, ExpectedAnswer, answers_match, normalise, parse_number
from .base import Check, FinishedEpisode, Gate, Judge, Verdict, WeightedSum
from .oracle import OracleJudge
from .sql import SqlJudge, SqlOracle
from .state import FileState, FileStateJudge, GitCheck, PathCheck
from .trusted import kill_agent_processes, run_trusted
from .unittests import HiddenTests, UnitTestJudge

__all__ = [
    "AnswerJudge",
    "Check",
    "FinishedEpisode",
    "ExpectedAnswer",
    "FileState",
    "FileStateJudge",
    "Gate",
    "GitCheck",
    "HiddenTests",
    "Judge",
    "OracleJudge",
    "PathCheck",
    "Verdict",
    "SqlJudge",
    "SqlOracle",
    "UnitTestJudge",
    "WeightedSum",
    "answers_match",
    "kill_agent_processes",
    "normalise",
    "parse_number",
    "run_trusted",
]
