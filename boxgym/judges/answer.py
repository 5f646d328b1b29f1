"""Answer judges: compare what the agent submitted with the expected answer.

Three modes, chosen per task by :class:`ExpectedAnswer`:

* ``exact``: byte-for-byte equal after stripping surrounding whitespace;
* ``normalised``: case-folded, whitespace collapsed, surrounding quotes,
  trailing punctuation and a LaTeX ``\\boxed{}`` removed;
* ``numeric``: both parse as numbers (``1,000``, ``3/4``, ``50%``, ``1e3``)
  and agree within a relative or absolute tolerance.

The submission is what the agent passed to ``submit(answer=...)``; an episode
that never submitted scores 0.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from ..errors import JudgeError
from .base import Check, FinishedEpisode, Verdict

__all__ = ["ExpectedAnswer", "AnswerJudge", "normalise", "parse_number", "answers_match"]

AnswerMode = Literal["exact", "normalised", "numeric"]


@dataclass(frozen=True, slots=True)
class ExpectedAnswer:
    """The oracle of a question task."""

    answer: str
    mode: AnswerMode = "normalised"
    rel_tol: float = 1e-6
    abs_tol: float = 1e-9


_BOXED = re.compile(r"\\boxed\{(.*)\}", re.DOTALL)


def normalise(text: str) -> str:
    boxed = _BOXED.search(text)
    if boxed:
        text = boxed.group(1)
    text = " ".join(text.split()).casefold()
    text = text.strip().strip("\"'`").strip()
    return text.rstrip(".!;").strip()


def parse_number(text: str) -> float | None:
    text = normalise(text).replace(",", "").replace("$", "")
    scale = 1.0
    if text.endswith("%"):
        text, scale = text[:-1].strip(), 0.01
    try:
        return float(Fraction(text)) * scale
    except (ValueError, ZeroDivisionError):
        try:
            value = float(text) * scale
        except ValueError:
            return None
        return value if math.isfinite(value) else None


def answers_match(expected: ExpectedAnswer, submitted: str) -> bool:
    if expected.mode == "exact":
        return submitted.strip() == expected.answer.strip()
    if expected.mode == "normalised":
        return normalise(submitted) == normalise(expected.answer)
    want, got = parse_number(expected.answer), parse_number(submitted)
    if want is None:
        raise JudgeError(f"the expected answer {expected.answer!r} is not a number")
    return got is not None and math.isclose(got, want, rel_tol=expected.rel_tol, abs_tol=expected.abs_tol)


@dataclass(frozen=True, slots=True)
class AnswerJudge:
    """Scores ``submit(answer=...)`` against the task's :class:`ExpectedAnswer`."""

    async def score(self, episode: FinishedEpisode) -> Verdict:
        expected = episode.task.oracle
        if not isinstance(expected, ExpectedAnswer):
            raise JudgeError(f"task {episode.task.id} has no expected answer")
        if episode.submission is None:
            return Verdict.fail("no answer was submitted")
        ok = answers_match(expected, episode.submission)
        check = Check(f"answer ({expected.mode})", ok, f"submitted {episode.submission[:200]!r}")
        return Verdict(1.0 if ok else 0.0, ok, (check,))
