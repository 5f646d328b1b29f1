"""The judge contract: a finished episode in, a typed score out; and ways to combine judges.

A judge reads the :class:`FinishedEpisode` (the task, the final sandbox, the
trajectory and what the agent submitted) and returns a :class:`Verdict`. A judge
that cannot reach a verdict (the sandbox died, the task has no oracle it
understands) raises :class:`~boxgym.errors.JudgeError`: that is an
infrastructure failure, never a reward of 0. The agent's own failures (wrong
answer, crashing code, timeouts, attempts to cheat) are scores of 0.

Combinators: :class:`WeightedSum` (a weighted mean of parts) and :class:`Gate`
(a pass/fail prerequisite before another judge counts).

A cost judge (``BoxEnv(cost=...)``, docs/rewards.md) is a judge too: its verdict's
``reward`` is read as the episode's cost (0: none; higher is worse). A judge that must
see the sandbox before the agent does (to plant bait, or take a baseline) also has
:meth:`PreparesSandbox.prepare`, which the env calls once the task's files are placed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..sandboxes.base import Sandbox
from ..trajectories import StepRecord

if TYPE_CHECKING:
    from ..envs.tasks import Task

__all__ = [
    "Check",
    "EpisodeWorld",
    "Evidence",
    "Verdict",
    "FinishedEpisode",
    "Judge",
    "Malformed",
    "PreparesSandbox",
    "WeightedSum",
    "Gate",
]


@dataclass(frozen=True, slots=True)
class Check:
    """One pass/fail fact behind a score (a unit test, a file's content, a query result)."""

    name: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judge's answer: the reward, whether the task is solved, and the evidence.

    ``reward`` is in [0, 1] for the judges that ship; ``passed`` means the task is solved
    (left out, it is ``reward >= 1``); ``checks`` and ``messages`` are the evidence a person
    reads; ``parts`` the named sub-rewards of composite judges. The env's judges and the
    rollout manager's judges (:data:`boxgym.rollout.RolloutJudge`) both answer with it.
    """

    reward: float
    passed: bool = None  # type: ignore[assignment]  # None: derived from the reward
    checks: tuple[Check, ...] = ()
    messages: tuple[str, ...] = ()
    parts: Mapping[str, float] = field(default_factory=dict)  # named sub-rewards of composite judges

    def __post_init__(self) -> None:
        if self.passed is None:
            object.__setattr__(self, "passed", self.reward >= 1.0)

    @classmethod
    def fail(cls, *messages: str, checks: Sequence[Check] = ()) -> Verdict:
        return cls(reward=0.0, passed=False, checks=tuple(checks), messages=messages)

    def to_json(self) -> dict[str, Any]:
        return {
            "reward": self.reward,
            "passed": self.passed,
            "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks],
            "messages": list(self.messages),
            "parts": dict(self.parts),
        }


@dataclass(frozen=True, slots=True)
class Evidence:
    """A section a judge model is shown besides the transcript (a simulated world's final state, a
    simulated user's hidden goal). ``trusted=False``: written or shaped by the agent, so it is
    quoted as untrusted."""

    title: str
    text: str
    trusted: bool = False


@runtime_checkable
class EpisodeWorld(Protocol):
    """What an episode's own tools kept for the judge (:class:`boxgym.toolsets.EpisodeTools`):
    a simulated world (:class:`boxgym.simulated.WorldOutcome`). Judges of such envs read its
    own fields; a model judge (:class:`~boxgym.judges.LLMJudge`) is shown its ``evidence()``."""

    def evidence(self) -> tuple[Evidence, ...]: ...


@dataclass(frozen=True, slots=True)
class FinishedEpisode:
    """What a judge sees: the task, the sandbox as the agent left it, and the trajectory."""

    task: Task
    sandbox: Sandbox
    steps: tuple[StepRecord, ...] = ()  # the steps before the last one, in order
    submitted: bool = False
    submission: str | None = None  # the ``answer`` passed to submit, if any
    # The id under which the episode's model calls were recorded, when the env knows it: a
    # judge that calls a model through the gateway records its own calls under an id derived
    # from it (:func:`~boxgym.judges.judge_episode_id`).
    episode_id: str | None = None
    # What the episode's own tools kept (a simulated world and user), for judges that read it;
    # None in envs whose state is all in the sandbox.
    world: EpisodeWorld | None = None


@dataclass(frozen=True, slots=True)
class Malformed:
    """An answer that could not be read, and why. The agent's answer scores 0 with the reason;
    a model boxgym asks itself (a judge, a world model, a simulated user) is asked again
    (:func:`boxgym.modelcalls.converse`)."""

    reason: str


@runtime_checkable
class Judge(Protocol):
    async def score(self, episode: FinishedEpisode) -> Verdict: ...


@runtime_checkable
class PreparesSandbox(Protocol):
    """A judge that sets the sandbox up before the agent's first step (a baseline, bait).

    Called by the env after the task's files are placed; a failure there is the
    infrastructure's (the episode ends as an infrastructure failure), like a failed reset.
    """

    async def prepare(self, sandbox: Sandbox, task: Task) -> None: ...


@dataclass(frozen=True, slots=True)
class WeightedSum:
    """A weighted mean of judges' rewards; passes when every part passes."""

    parts: tuple[tuple[str, Judge, float], ...]  # (name, judge, weight)

    async def score(self, episode: FinishedEpisode) -> Verdict:
        # Sequential on purpose: judges share one sandbox and may kill its processes.
        scores = [(name, await judge.score(episode), weight) for name, judge, weight in self.parts]
        total = sum(weight for _, _, weight in scores) or 1.0
        return Verdict(
            reward=sum(score.reward * weight for _, score, weight in scores) / total,
            passed=all(score.passed for _, score, _ in scores),
            checks=tuple(check for _, score, _ in scores for check in score.checks),
            messages=tuple(msg for _, score, _ in scores for msg in score.messages),
            parts={name: score.reward for name, score, _ in scores},
        )


@dataclass(frozen=True, slots=True)
class Gate:
    """``then`` counts only if ``gate`` passes; otherwise the reward is 0 and ``then`` is not run."""

    gate: Judge
    then: Judge

    async def score(self, episode: FinishedEpisode) -> Verdict:
        first = await self.gate.score(episode)
        if not first.passed:
            return Verdict(0.0, False, first.checks, ("gate failed", *first.messages), {"gate": first.reward})
        second = await self.then.score(episode)
        return Verdict(
            second.reward,
            second.passed,
            first.checks + second.checks,
            first.messages + second.messages,
            {"gate": first.reward, "then": second.reward},
        )
