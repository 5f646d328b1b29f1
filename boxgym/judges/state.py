"""File-system state judging: did the sandbox reach the state the task asked for?

After the episode :class:`FileStateJudge` kills the agent's processes, then
runs :mod:`boxgym.judges.state_runner` as root over the sandbox as it is: each
:class:`PathCheck` (a file's existence, kind, exact content, a substring,
permission bits) and :class:`GitCheck` (branch, HEAD message, commit count,
committed file contents, clean work tree) is one :class:`~boxgym.judges.base.Check`.
The reward is 1 when every check passes; ``partial=True`` gives the fraction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..errors import JudgeError
from .base import Check, FinishedEpisode, Verdict
from .trusted import kill_agent_processes, run_trusted, script_source

__all__ = ["PathCheck", "GitCheck", "FileState", "FileStateJudge"]


@dataclass(frozen=True, slots=True)
class PathCheck:
    path: str  # relative to the work directory
    kind: Literal["file", "dir", "symlink", "absent"] = "file"
    content: str | None = None  # exact content
    contains: str | None = None  # a substring
    mode: int | None = None  # permission bits, e.g. 0o755


@dataclass(frozen=True, slots=True)
class GitCheck:
    repo: str  # relative to the work directory
    branch: str | None = None  # the checked-out branch
    head_message: str | None = None  # subject line of HEAD
    commits: int | None = None  # commits reachable from HEAD
    files: Mapping[str, str] = field(default_factory=dict)  # path -> content at HEAD
    branches: tuple[str, ...] = ()  # branches that must exist
    clean: bool = False  # nothing uncommitted, nothing untracked


@dataclass(frozen=True, slots=True)
class FileState:
    """The oracle of a state task."""

    paths: tuple[PathCheck, ...] = ()
    git: tuple[GitCheck, ...] = ()


@dataclass(frozen=True, slots=True)
class FileStateJudge:
    partial: bool = False
    timeout: float = 120.0
    python: str = "python3"

    async def score(self, episode: FinishedEpisode) -> Verdict:
        state = episode.task.oracle
        if not isinstance(state, FileState):
            raise JudgeError(f"task {episode.task.id} has no file-state oracle")
        await kill_agent_processes(episode.sandbox)
        payload = {
            "paths": [dataclasses.asdict(p) for p in state.paths],
            "git": [{**dataclasses.asdict(g), "files": dict(g.files), "branches": list(g.branches)} for g in state.git],
        }
        run = await run_trusted(
            episode.sandbox, script_source("state_runner.py"), payload, timeout=self.timeout, python=self.python
        )
        if run.timed_out:
            # The checker's own steps are bounded (git calls time out at 10 s each), so
            # running out of time means the agent made the state too big to inspect.
            return Verdict.fail(f"the state could not be inspected within {self.timeout:g}s")
        if run.exit_code == 2 or run.result.get("harness_error"):
            raise JudgeError(f"the state checker failed: {run.result.get('harness_error') or run.stderr[-500:]}")
        checks = tuple(Check(c["name"], c["passed"], c["detail"]) for c in run.result["checks"])
        passed = sum(c.passed for c in checks)
        ok = bool(checks) and passed == len(checks)
        if ok != (run.exit_code == 0):
            raise JudgeError(f"the state checker's exit status {run.exit_code} contradicts its checks")
        reward = 1.0 if ok else (passed / len(checks) if self.partial and checks else 0.0)
        return Verdict(reward, ok, checks, (f"{passed}/{len(checks)} checks passed",))
