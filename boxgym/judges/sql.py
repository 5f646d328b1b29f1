"""SQL execution-match judging (the Spider/BIRD/Pi-SQL setting).

The agent explores a generated SQLite database and submits a query
(``submit(answer="SELECT ...")``). :class:`SqlJudge` runs the gold query and
the agent's against a pristine in-memory copy of the database inside the
sandbox (:mod:`boxgym.judges.sql_runner`), read-only and under a time limit,
and rewards 1 when the result rows match: as multisets, or as lists when the
task says order matters. Column names do not matter; numbers compare to six
decimal places.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import JudgeError
from .base import Check, FinishedEpisode, Verdict
from .trusted import run_trusted, script_source

__all__ = ["SqlOracle", "SqlJudge"]


@dataclass(frozen=True, slots=True)
class SqlOracle:
    """The oracle of a SQL task: how to build the database and the gold query."""

    setup: str  # SQL script that creates and fills the database
    gold: str
    ordered: bool = False  # the question asks for an order
    max_rows: int = 10_000
    seconds: float = 10.0  # per query


@dataclass(frozen=True, slots=True)
class SqlJudge:
    python: str = "python3"

    async def score(self, episode: FinishedEpisode) -> Verdict:
        oracle = episode.task.oracle
        if not isinstance(oracle, SqlOracle):
            raise JudgeError(f"task {episode.task.id} has no SQL oracle")
        if not episode.submission or not episode.submission.strip():
            return Verdict.fail("no query was submitted")
        payload = {
            "setup": oracle.setup,
            "gold": oracle.gold,
            "query": episode.submission,
            "ordered": oracle.ordered,
            "max_rows": oracle.max_rows,
            "seconds": oracle.seconds,
        }
        # The agent's processes cannot touch this verdict (it never reads the
        # sandbox's files), so they need not be killed first.
        run = await run_trusted(
            episode.sandbox,
            script_source("sql_runner.py"),
            payload,
            timeout=3 * oracle.seconds + 30,
            python=self.python,
        )
        if run.timed_out or run.exit_code == 2 or run.result.get("harness_error"):
            raise JudgeError(f"the SQL checker failed: {run.result.get('harness_error') or run.stderr[-500:]}")
        match = bool(run.result.get("match"))
        if match != (run.exit_code == 0):
            raise JudgeError(f"the SQL checker's exit status {run.exit_code} contradicts its result")
        check = Check("execution match", match, str(run.result.get("detail", "")))
        return Verdict(1.0 if match else 0.0, match, (check,))
