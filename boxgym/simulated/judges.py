"""Judging simulated episodes: rules over the final world state, a rubric, or both.

:class:`WorldStateJudge` runs the task's checks (:mod:`boxgym.simulated.checks`) over the final
world state: each is one :class:`~boxgym.judges.Check`; the reward is 1 when all pass
(``partial=True``: the fraction).

:class:`SimulatedJudge`, the default judge of ``boxgym/Simulated-v0``, judges each task by what
its spec gives, as the hybrid rubric-and-rule rewards of Qwen-AgentWorld:

* checks only: the state judge;
* a rubric only: an :class:`~boxgym.judges.LLMJudge` grading the task's rubric (its calls under
  ``<episode>.grm``); it is shown the transcript, the final answer and the world's evidence
  (:meth:`WorldOutcome.evidence`): the user's hidden goal (trusted), the conversation and how the
  user ended it, the initial and the final state (the final state quoted as untrusted: the agent
  shaped it);
* both: the rubric counts only when the state checks pass (the GRM on top of a verifiable reward,
  as :class:`~boxgym.judges.Gate`); ``parts`` holds ``state`` and ``rubric``.

Its last message says what the simulators cost the episode (calls and the engine's token counts
of the world model and the user model, :meth:`WorldOutcome.costs`).

A rubric task with no ``grader`` endpoint is a :class:`~boxgym.errors.TaskError` (a configuration
bug, reported, not retried).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import JudgeError, TaskError
from ..judges.base import FinishedEpisode, Verdict
from ..judges.llm_judge import LLMJudge, LLMJudgePrompt
from ..judges.rubrics import Rubric
from ..modelcalls import ModelEndpoint
from .spec import WorldTask
from .tools import WorldOutcome

__all__ = ["SimulatedJudge", "WorldStateJudge"]


def _outcome(episode: FinishedEpisode) -> WorldOutcome:
    if not isinstance(episode.world, WorldOutcome):
        raise JudgeError(f"task {episode.task.id}: the episode has no simulated world to judge")
    return episode.world


@dataclass(frozen=True, slots=True)
class WorldStateJudge:
    """The task's checks over the final world state."""

    partial: bool = False

    async def score(self, episode: FinishedEpisode) -> Verdict:
        outcome = _outcome(episode)
        checks = tuple(check.run(outcome.state) for check in outcome.task.checks)
        if not checks:
            raise JudgeError(f"task {episode.task.id} has no checks over the world state")
        passed = sum(check.passed for check in checks)
        reward = passed / len(checks) if self.partial else float(passed == len(checks))
        return Verdict(reward, passed == len(checks), checks, (f"{passed}/{len(checks)} state checks passed",))


@dataclass(frozen=True, slots=True)
class SimulatedJudge:
    """Checks, a rubric, or the rubric gated by the checks, per task (module docstring)."""

    grader: ModelEndpoint | None = None
    partial: bool = False
    prompt: LLMJudgePrompt = LLMJudgePrompt()
    retries: int = 2

    async def score(self, episode: FinishedEpisode) -> Verdict:
        task = episode.task.oracle
        if not isinstance(task, WorldTask):
            raise JudgeError(f"task {episode.task.id} is not a simulated task")
        verdict = await self._score(episode, task)
        costs = _outcome(episode).costs()
        return replace(verdict, messages=(*verdict.messages, costs))

    async def _score(self, episode: FinishedEpisode, task: WorldTask) -> Verdict:
        state = await WorldStateJudge(self.partial).score(episode) if task.checks else None
        if task.rubric is None:
            assert state is not None  # a spec task has checks, a rubric or both
            return state
        if state is not None and not state.passed:
            messages = ("the world state does not meet the task; the rubric was not asked", *state.messages)
            return Verdict(0.0, False, state.checks, messages, {"state": state.reward})
        if self.grader is None:
            raise TaskError(
                f"task {episode.task.id} is graded by a rubric: give Simulated-v0 a judge model, "
                "gym.make(..., grader=ModelEndpoint(...))"
            )
        rubric = Rubric("task", "goal", task.rubric)
        graded = await LLMJudge(self.grader, [rubric], prompt=self.prompt, retries=self.retries).score(episode)
        if state is None:
            return graded
        return Verdict(
            graded.reward,
            graded.passed,
            state.checks + graded.checks,
            state.messages + graded.messages,
            {"state": state.reward, "rubric": graded.reward},
        )
