"""The live state of one episode: what a policy reads, what a pause keeps, what a result freezes.

A plain ``__slots__`` class rather than a dataclass: the manager touches it on
every step of up to 100k concurrent episodes, and it is mutable by design (it
*is* the paused episode's saved state). Policies see it through
:class:`~boxgym.rollout.policy.EpisodeView` and must treat it as read-only.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..trajectories import Outcome
from .types import Completion, EpisodeResult, Reason, Task, new_result

if TYPE_CHECKING:
    from ..sandboxes import Sandbox
    from .types import AsyncEnv

__all__ = ["Episode"]

INF = float("inf")
_INFRA_FAILURE = Outcome.INFRA_FAILURE
_SCORED = (Outcome.TERMINATED, Outcome.TRUNCATED)
_NO_TOOLS: list[dict[str, Any]] = []


class Episode:
    __slots__ = (
        # identity
        "episode_id",
        "task",
        "group_id",
        "sample_index",
        "parent",
        "depth",
        "spawned_at_step",
        "subagent_name",
        "frozen",
        "max_turns",
        "attempts",
        "retry_of",
        # what the policy reads
        "messages",
        "tools",
        "base_url",
        "turn",
        "_versions",
        # what the episode has produced
        "completions",
        "completion_tokens",
        "reward",
        "reward_parts",
        "children",
        "subagents",
        "tasks_assigned",
        "tasks_finished",
        # resources, kept alive across a pause
        "env",
        "sandbox",
        "owns_sandbox",
        "reset_done",
        # control
        "handle",
        "stop",
        "cancellable",
        "closing",
        "close_expired",
        "deadline_at",
        "stage_until",
        "outcome",
        "reason",
        "error",
        # timings (seconds)
        "created_at",
        "t_queued",
        "t_sandbox",
        "t_policy",
        "t_env",
        "t_judge",
        "t_total",
    )

    def __init__(
        self,
        episode_id: str,
        task: Task,
        *,
        group_id: str,
        sample_index: int = 0,
        versions: Any = None,
        parent: Episode | None = None,
        created_at: float = 0.0,
    ) -> None:
        self.episode_id = episode_id
        self.task = task
        self.group_id = group_id
        self.sample_index = sample_index
        self.parent = parent
        self.depth = 0 if parent is None else parent.depth + 1
        self.spawned_at_step: int | None = None
        self.subagent_name: str | None = None
        self.frozen = False
        self.max_turns: int | None = None
        self.attempts = 1
        self.retry_of: str | None = None
        self.messages: list[dict[str, Any]] = []
        self.tools: list[dict[str, Any]] = _NO_TOOLS  # replaced, never mutated
        self.base_url: str | None = None
        self.turn = 0
        self._versions = versions  # the manager: reading .weight_version asks it for the current one
        self.completions: list[Completion] = []
        self.completion_tokens = 0
        self.reward = 0.0
        # Created on first use: most episodes never have parts, children or sub-agents, and at
        # 100k episodes every container costs memory and garbage-collector time.
        self.reward_parts: dict[str, float] | None = None
        self.children: list[EpisodeResult] | None = None
        self.subagents: dict[str, str] | None = None  # name -> system prompt
        self.tasks_assigned = 0
        self.tasks_finished = 0
        self.env: AsyncEnv | None = None
        self.sandbox: Sandbox | None = None
        self.owns_sandbox = True
        self.reset_done = False
        self.handle: asyncio.Task[Any] | None = None
        self.stop: Reason | None = None  # set by the watchdog or a cancel; the task is then cancelled
        self.cancellable = False  # True only while a stage runs that a cancel may interrupt
        self.closing = False  # releasing env / sandbox: the watchdog enforces Deadlines.close
        self.close_expired = False
        self.deadline_at = INF
        self.stage_until = INF
        self.outcome: Outcome | None = None
        self.reason: Reason | None = None
        self.error: str | None = None
        self.created_at = created_at
        self.t_queued = 0.0
        self.t_sandbox = 0.0
        self.t_policy = 0.0
        self.t_env = 0.0
        self.t_judge = 0.0
        self.t_total = 0.0

    @property
    def weight_version(self) -> str | None:
        """The weight version the manager currently samples with."""
        return None if self._versions is None else self._versions.weight_version

    def finish(self, outcome: Outcome, reason: Reason, error: str | None = None) -> None:
        self.outcome = outcome
        self.reason = reason
        self.error = error

    def restart(self, episode_id: str) -> None:
        """Forget everything but identity, for a retry on a fresh env after an infrastructure failure."""
        self.retry_of = self.episode_id
        self.episode_id = episode_id
        self.attempts += 1
        self.messages = []
        self.tools = _NO_TOOLS
        self.turn = 0
        self.completions = []
        self.completion_tokens = 0
        self.reward = 0.0
        self.reward_parts = None
        self.children = None
        self.subagents = None
        self.tasks_assigned = self.tasks_finished = 0
        self.env = None
        self.sandbox = None
        self.reset_done = False
        self.stop = None
        self.stage_until = INF
        self.outcome = self.reason = self.error = None

    def result(self, *, keep_messages: bool = True) -> EpisodeResult:
        outcome = self.outcome or _INFRA_FAILURE
        scored = outcome in _SCORED
        messages = self.messages if keep_messages else self.messages[-1:]
        # Every field, in EpisodeResult's declaration order (tests/rollout/test_results.py checks it).
        return new_result(
            self.episode_id,
            self.task,
            self.group_id,
            self.sample_index,
            outcome,
            self.reason or "error",
            self.reward if scored else None,  # reward
            dict(self.reward_parts) if scored and self.reward_parts else {},  # reward_parts
            self.turn,  # steps
            self.completion_tokens,
            tuple(messages),
            tuple(self.completions),
            {  # timings
                "queued": self.t_queued,
                "sandbox": self.t_sandbox,
                "policy": self.t_policy,
                "env": self.t_env,
                "judge": self.t_judge,
                "total": self.t_total,
            },
            self.error,
            self.attempts,
            None if self.parent is None else self.parent.episode_id,  # parent_episode_id
            self.spawned_at_step,
            tuple(self.children) if self.children else (),
            self.frozen,
            self.subagent_name,
            len(self.subagents) if self.subagents else 0,  # subagents_created
            self.tasks_assigned,
            self.tasks_finished,
        )
