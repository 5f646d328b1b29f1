"""Judges: a finished episode in, a typed :class:`Verdict` out; built so that the agent cannot game them.

Visual rewards (:mod:`~boxgym.judges.visual`, :mod:`~boxgym.judges.visual_judges`) need SciPy
for their matching (the ``vision`` extra), imported when first used. The LLM judge
(:mod:`~boxgym.judges.llm_judge`) imports aiohttp when it first calls its model.
"""

from .answer import AnswerJudge, ExpectedAnswer, answers_match, normalise, parse_number
from .browser import PageReward, PageRewardJudge, SiteState, SiteStateJudge
from .base import (
    Check,
    EpisodeWorld,
    Evidence,
    FinishedEpisode,
    Gate,
    Judge,
    Malformed,
    PreparesSandbox,
    Verdict,
    WeightedSum,
)
from .harmfulness import HARM_PREAMBLE, harmfulness_judge
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
from .rubrics import BUILTIN_COST_CRITERIA, BUILTIN_CRITERIA, Rubric, builtin_rubrics, load_rubrics
from .sql import SqlJudge, SqlOracle
from .state import FileState, FileStateJudge, GitCheck, PathCheck
from .trusted import kill_agent_processes, run_trusted
from .unittests import HiddenTests, UnitTestJudge
from .unsafe import DEFAULT_BAIT, UNSAFE_KINDS, BaitFile, UnsafeActionJudge
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
    "BUILTIN_COST_CRITERIA",
    "BUILTIN_CRITERIA",
    "DEFAULT_BAIT",
    "HARM_PREAMBLE",
    "UNSAFE_KINDS",
    "AnswerJudge",
    "BaitFile",
    "Check",
    "CountingJudge",
    "EpisodeWorld",
    "Evidence",
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
    "PageReward",
    "PageRewardJudge",
    "PathCheck",
    "PointingJudge",
    "PreparesSandbox",
    "Rubric",
    "RubricPanel",
    "SegmentationJudge",
    "SiteState",
    "SiteStateJudge",
    "SqlJudge",
    "SqlOracle",
    "UnitTestJudge",
    "UnsafeActionJudge",
    "Verdict",
    "WeightedSum",
    "answers_match",
    "builtin_rubrics",
    "harmfulness_judge",
    "judge_episode_id",
    "kill_agent_processes",
    "load_rubrics",
    "normalise",
    "parse_number",
    "parse_score",
    "rubric_context",
    "run_trusted",
]
