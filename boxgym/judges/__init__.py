"""Judges: a finished episode in, a typed :class:`Verdict` out; built so that the agent cannot game them.

Visual rewards (:mod:`~boxgym.judges.visual`, :mod:`~boxgym.judges.visual_judges`) need SciPy
for their matching (the ``vision`` extra), imported when first used. The LLM judge
(:mod:`~boxgym.judges.llm_judge`) imports aiohttp when it first calls its model.
"""

from .answer import AnswerJudge, ExpectedAnswer, answers_match, normalise, parse_number
from .base import Check, FinishedEpisode, Gate, Judge, Malformed, Verdict, WeightedSum
from .llm_judge import (
    JudgeEndpoint,
    JudgeScore,
    LLMJudge,
    LLMJudgePrompt,
    RubricPanel,
    judge_episode_id,
    parse_score,
    rubric_context,
)
from .oracle import OracleJudge
from .rubrics import BUILTIN_CRITERIA, Rubric, builtin_rubrics, load_rubrics
from .sql import SqlJudge, SqlOracle
from .state import FileState, FileStateJudge, GitCheck, PathCheck
from .trusted import kill_agent_processes, run_trusted
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
    "BUILTIN_CRITERIA",
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
    "JudgeEndpoint",
    "JudgeScore",
    "LLMJudge",
    "LLMJudgePrompt",
    "Malformed",
    "OcrJudge",
    "OracleJudge",
    "PathCheck",
    "PointingJudge",
    "Rubric",
    "RubricPanel",
    "SegmentationJudge",
    "SqlJudge",
    "SqlOracle",
    "UnitTestJudge",
    "Verdict",
    "WeightedSum",
    "answers_match",
    "builtin_rubrics",
    "judge_episode_id",
    "kill_agent_processes",
    "load_rubrics",
    "normalise",
    "parse_number",
    "parse_score",
    "rubric_context",
    "run_trusted",
]
