"""Checking a task set before training on it: the reference must solve each task, doing nothing must not.

A task is usable when its reference solution scores 1 and its empty solution
(no action but ``submit``) scores 0: a reference that fails means a broken
task or oracle, and an empty solution that passes means an oracle that
rewards nothing. :func:`check_tasks` plays both for every task through the
env itself (:class:`~boxgym.envs.core.BoxEnv`'s async API over the provider it
is given, real Docker sandboxes for ``boxgym tasks check``), at most
``concurrency`` episodes at a time.

A run that ends without a verdict is judged by who broke it
(:func:`~boxgym.errors.fault_of`): the infrastructure (the sandbox, the
engine, the judge's machinery) leaves the task *not checked*, never failed,
unless its other run found a real problem; a malformed task (a
:class:`~boxgym.errors.TaskError`, e.g. hidden tests that break on their own)
fails it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import gymnasium as gym

from ..errors import Fault, fault_of
from ..judges.base import Check, Verdict
from ..sandboxes.base import SandboxProvider
from ..toolsets.calls import ToolCall
from .core import BoxEnv, EpisodeLimits
from .tasks import StaticTaskSet, Task, reference_messages

__all__ = ["CheckStatus", "Solution", "SolutionRun", "TaskCheck", "check_tasks"]

Solution = Literal["reference", "empty"]

# Ends every run whose actions did not end the episode; alone, it is the empty solution.
_SUBMIT = {"role": "assistant", "content": "", "tool_calls": [ToolCall("check_submit", "submit").to_openai()]}


class CheckStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # the reference did not score 1, the empty solution scored above 0, or the task is malformed
    NOT_CHECKED = "not_checked"  # a run reached no verdict because the infrastructure failed


@dataclass(frozen=True, slots=True)
class SolutionRun:
    """One episode of a check: a solution played through the env."""

    solution: Solution
    verdict: Verdict | None = None  # None when the episode reached no verdict
    error: str | None = None  # why it reached none
    fault: Fault | None = None  # whose failure that was: INFRA, or BUG (a malformed task, or boxgym's own)
    end_reason: str | None = None

    @property
    def reward(self) -> float | None:
        return self.verdict.reward if self.verdict is not None else None

    @property
    def wrong(self) -> bool:
        """The run reached a verdict its solution must not get: a reference below 1, an empty one above 0."""
        if self.reward is None:
            return False
        return self.reward != 1.0 if self.solution == "reference" else self.reward > 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "solution": self.solution,
            "reward": self.reward,
            "verdict": self.verdict.to_json() if self.verdict is not None else None,
            "error": self.error,
            "fault": self.fault.value if self.fault is not None else None,
            "end_reason": self.end_reason,
        }


@dataclass(frozen=True, slots=True)
class TaskCheck:
    """A task's two runs and what they say about it."""

    task_id: str
    reference: SolutionRun | None  # None: the task has no reference solution to run
    empty: SolutionRun

    @property
    def runs(self) -> tuple[SolutionRun, ...]:
        return tuple(run for run in (self.reference, self.empty) if run is not None)

    @property
    def problems(self) -> tuple[str, ...]:
        """What is wrong with the task, one line each."""
        problems = ["the task has no reference solution"] if self.reference is None else []
        for run in self.runs:
            if run.wrong:
                want = 1 if run.solution == "reference" else 0
                problems.append(f"the {run.solution} solution scored {run.reward:g} (want {want})")
        errors: dict[str, list[str]] = {}  # the same error in both runs is said once
        for run in self.runs:
            if run.fault is Fault.BUG and run.error is not None:
                errors.setdefault(run.error, []).append(run.solution)
        for error, solutions in errors.items():
            lines = error.strip().splitlines()
            gist = lines[0] + (f" {lines[-1]}" if len(lines) > 1 else "")
            problems.append(f"the {' and '.join(solutions)} run{'s' * (len(solutions) > 1)} failed: {gist}")
        return tuple(problems)

    @property
    def status(self) -> CheckStatus:
        if self.problems:
            return CheckStatus.FAILED
        if any(run.verdict is None for run in self.runs):
            return CheckStatus.NOT_CHECKED
        return CheckStatus.PASSED

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "status": self.status.value,
            "problems": list(self.problems),
            "runs": [run.to_json() for run in self.runs],
        }


async def check_tasks(
    tasks: StaticTaskSet,
    *,
    provider: SandboxProvider,
    env_id: str = "boxgym/Code-v0",
    concurrency: int = 4,
    on_checked: Callable[[TaskCheck], None] | None = None,
) -> list[TaskCheck]:
    """Play every task's reference and empty solution in ``env_id``'s env over ``provider``.

    At most ``concurrency`` episodes run at once; ``on_checked`` hears of each task as
    its check completes. The checks come back in the task set's order. The provider
    stays open: it is the caller's.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    slots = asyncio.Semaphore(concurrency)

    async def play(task: Task, solution: Solution) -> SolutionRun:
        async with slots:
            return await _play(env_id, tasks, provider, task, solution)

    async def check(task: Task) -> TaskCheck:
        solutions: list[Solution] = ["reference", "empty"] if task.reference else ["empty"]
        runs = dict(zip(solutions, await asyncio.gather(*(play(task, solution) for solution in solutions))))
        result = TaskCheck(task.id, runs.get("reference"), runs["empty"])
        if on_checked is not None:
            on_checked(result)
        return result

    async with asyncio.TaskGroup() as group:
        jobs = [group.create_task(check(task)) for task in tasks]
    return [job.result() for job in jobs]


async def _play(env_id: str, tasks: StaticTaskSet, provider: SandboxProvider, task: Task, solution: Solution) -> SolutionRun:
    actions = reference_messages(task) if solution == "reference" else []
    env = _make(env_id, tasks, provider, turns=len(actions) + 1)
    try:
        _, info = await env.areset(options={"task_id": task.id})
        if info["infra_failure"]:
            return SolutionRun(solution, error=info["error"], fault=Fault.INFRA)
        for action in (*actions, _SUBMIT):
            _, _, terminated, truncated, info = await env.astep(action)
            if terminated or truncated:
                break
        if info["infra_failure"]:
            return SolutionRun(solution, error=info["error"], fault=Fault.INFRA, end_reason=info["end_reason"])
        return SolutionRun(solution, verdict=_verdict(info["verdict"]), end_reason=info["end_reason"])
    except Exception as exc:  # noqa: BLE001 - whatever stopped the run is reported as the run's, by its fault
        # A malformed task (TaskError, e.g. hidden tests that break on their own) raises out of
        # the env as the bug it is; fault_of says so.
        return SolutionRun(solution, error=f"{type(exc).__name__}: {exc}", fault=fault_of(exc))
    finally:
        await env.aclose()


def _make(env_id: str, tasks: StaticTaskSet, provider: SandboxProvider, *, turns: int) -> BoxEnv:
    """The env of ``env_id`` over the given tasks and provider, with turns enough for the solution."""
    limits = gym.spec(env_id).kwargs.get("limits") or EpisodeLimits()
    limits = dataclasses.replace(limits, max_turns=max(limits.max_turns, turns))
    env = gym.make(env_id, tasks=tasks, provider=provider, limits=limits, disable_env_checker=True).unwrapped
    if not isinstance(env, BoxEnv):
        raise TypeError(f"{env_id} is not a boxgym environment")
    return env



def _verdict(score: Mapping[str, Any]) -> Verdict:
    checks = tuple(Check(c["name"], c["passed"], c["detail"]) for c in score["checks"])
    return Verdict(score["reward"], score["passed"], checks, tuple(score["messages"]), dict(score["parts"]))
