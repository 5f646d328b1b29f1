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
from ..trajectories import EndReason
from .types import Completion, EpisodeResult, TaskRef, new_result

if TYPE_CHECKING:
    from ..sandboxes import Sandbox
    from .types import AsyncEnv

__all__ = ["Episode"]

INF = float("inf")
_INFRA_FAILURE = Outcome.INFRA_FAILURE
_SCORED = (Outcome.TERMINATED, Outcome.TRUNCATED)
_NO_TOOLS: list[dict[str, Any]] = []


# Episode.phase: what the watchdog may do to the episode now.
IDLE = 0  # between stages (setup bookkeeping, results): nothing to interrupt
CANCELLABLE = 1  # a stage runs that a cancel or a deadline may interrupt
CLOSING = 2  # releasing env / sandbox: the watchdog enforces StageDeadlines.close
CLOSE_EXPIRED = 3  # the close passed its deadline and was cancelled


#: The fields most episodes never set, with their defaults; kept in a :class:`_Rare` made on first write.
_RARE_DEFAULTS: dict[str, Any] = {
    "attempts": 1,
    "base_url": None,
    "children": None,  # list[EpisodeResult]: finished children (sub-agents, judge agents)
    "children_pending": 0,  # children made by Driver.child and not finished yet
    "cost": None,  # a cost judge's verdict (the env's info["cost"], or the manager's cost judge)
    "cost_parts": None,
    "env_usage": None,  # the env's runtime figures (a BoxEnv's info["usage"]), the latest
    "env_factory": None,  # None: the manager's
    "error": None,
    "frozen": False,  # a frozen child's tokens are not training data
    "max_turns": None,  # None: EpisodeBudget.max_turns
    "owns_sandbox": True,
    "policy": None,  # None: the manager's
    "retry_of": None,
    "reward_parts": None,
    "sample_index": 0,
    "spawned_at_step": None,
    "subagent_name": None,
    "subagent_tools": True,  # offered create_subagent / assign_task when the manager has them (and depth allows)
    "subagents": None,  # name -> system prompt
    "t_judge": 0.0,  # seconds judging (episodes of a manager with a judge)
    "t_sandbox": 0.0,  # seconds acquiring a sandbox (episodes of a manager with a provider)
    "tasks_assigned": 0,
    "tasks_finished": 0,
}


class _Rare:
    """The fields most episodes never set, in one object made on the first write of one.

    At 100k live episodes every slot of :class:`Episode` is memory, a store in
    its constructor and a reference the garbage collector visits on each full
    pass (measured: 25 more slots cost 5% of a null-env run's time).
    """

    __slots__ = tuple(_RARE_DEFAULTS)

    def __init__(self) -> None:
        for name, default in _RARE_DEFAULTS.items():
            setattr(self, name, default)


def _rare_field(name: str) -> property:
    default = _RARE_DEFAULTS[name]

    def get(self: Episode) -> Any:
        rare = self._rare
        return default if rare is None else getattr(rare, name)

    def set_(self: Episode, value: Any) -> None:
        rare = self._rare
        if rare is None:
            rare = self._rare = _Rare()
        setattr(rare, name, value)

    return property(get, set_, doc=f"Rarely set (default {default!r}); kept in the episode's _Rare.")


class Episode:
    # Ordered by use: what every step reads or writes comes first, so that it shares the object
    # header's cache line (at 100k episodes each resumed episode's state is a cache miss).
    __slots__ = (
        # every step
        "stop",
        "turn",
        "completions",
        "completion_tokens",
        "stage_until",
        "t_policy",
        "t_env",
        "reward",
        # identity
        "episode_id",
        "task",
        "group_id",
        "parent",
        # what the policy reads
        "messages",
        "tools",
        "_versions",
        # resources, kept alive across a pause
        "env",
        "sandbox",
        "reset_done",
        # control
        "handle",
        "phase",
        "deadline_at",
        "outcome",
        "reason",
        # seconds (sandbox and judge time are rare fields)
        "created_at",
        "t_queued",
        "t_total",
        # everything else (None until a rare field is set)
        "_rare",
    )

    def __init__(
        self,
        episode_id: str,
        task: TaskRef,
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
        self.parent = parent
        self.messages: list[dict[str, Any]] = []
        self.tools: list[dict[str, Any]] = _NO_TOOLS  # replaced, never mutated
        self.turn = 0
        self._versions = versions  # the manager: reading .weight_version asks it for the current one
        self.completions: list[Completion] = []
        self.completion_tokens = 0
        self.reward = 0.0
        self.env: AsyncEnv | None = None
        self.sandbox: Sandbox | None = None
        self.reset_done = False
        self.handle: asyncio.Task[Any] | None = None
        self.stop: EndReason | None = None  # set by the watchdog or a cancel; the task is then cancelled
        self.phase = IDLE
        self.deadline_at = INF
        self.stage_until = INF
        self.outcome: Outcome | None = None
        self.reason: EndReason | None = None
        self.created_at = created_at
        self.t_queued = self.t_policy = self.t_env = self.t_total = 0.0
        self._rare: _Rare | None = None
        if sample_index:
            self.sample_index = sample_index

    attempts = _rare_field("attempts")
    base_url = _rare_field("base_url")  # the episode's own OpenAI base URL (an embedded gateway's)
    owns_sandbox = _rare_field("owns_sandbox")  # False: a child on its parent's sandbox
    sample_index = _rare_field("sample_index")  # 0..K-1 within its group
    children = _rare_field("children")
    children_pending = _rare_field("children_pending")
    cost = _rare_field("cost")
    cost_parts = _rare_field("cost_parts")
    env_usage = _rare_field("env_usage")
    env_factory = _rare_field("env_factory")
    error = _rare_field("error")
    frozen = _rare_field("frozen")
    max_turns = _rare_field("max_turns")
    policy = _rare_field("policy")
    retry_of = _rare_field("retry_of")
    reward_parts = _rare_field("reward_parts")
    spawned_at_step = _rare_field("spawned_at_step")
    subagent_name = _rare_field("subagent_name")
    subagent_tools = _rare_field("subagent_tools")
    subagents = _rare_field("subagents")
    tasks_assigned = _rare_field("tasks_assigned")
    tasks_finished = _rare_field("tasks_finished")

    t_judge = _rare_field("t_judge")
    t_sandbox = _rare_field("t_sandbox")

    @property
    def depth(self) -> int:
        """0 for a root episode, 1 for its children, and so on."""
        depth, parent = 0, self.parent
        while parent is not None:
            depth, parent = depth + 1, parent.parent
        return depth

    @property
    def weight_version(self) -> str | None:
        """The weight version the manager currently samples with."""
        return None if self._versions is None else self._versions.weight_version

    def finish(self, reason: EndReason, error: str | None = None) -> None:
        self.outcome = reason.outcome
        self.reason = reason
        if error is not None or self._rare is not None:
            self.error = error

    def restart(self, episode_id: str) -> None:
        """Forget everything but identity, for a retry on a fresh env after an infrastructure failure."""
        rare = self._rare
        kept = {} if rare is None else {name: getattr(rare, name) for name in _KEPT_ON_RESTART}
        self._rare = None
        for name, value in kept.items():
            setattr(self, name, value)
        self.retry_of = self.episode_id
        self.attempts = kept.get("attempts", 1) + 1
        self.episode_id = episode_id
        self.messages = []
        self.tools = _NO_TOOLS
        self.turn = 0
        self.completions = []
        self.completion_tokens = 0
        self.reward = 0.0
        self.env = None
        self.sandbox = None
        self.reset_done = False
        self.stop = None
        self.phase = IDLE
        self.stage_until = INF
        self.outcome = self.reason = None
        self.t_queued = self.t_policy = self.t_env = self.t_total = 0.0

    def result(self, *, keep_messages: bool = True) -> EpisodeResult:
        outcome = self.outcome or _INFRA_FAILURE
        scored = outcome in _SCORED
        messages = self.messages if keep_messages else self.messages[-1:]
        rare = self._rare
        if rare is None:
            rare = _NO_RARE
        # Every field, in EpisodeResult's declaration order (tests/rollout/test_results.py checks it).
        return new_result(
            self.episode_id,
            self.task,
            self.group_id,
            rare.sample_index,
            outcome,
            self.reason or EndReason.ERROR,
            self.reward if scored else None,  # reward
            dict(rare.reward_parts) if scored and rare.reward_parts else {},  # reward_parts
            self.turn,  # steps
            self.completion_tokens,
            tuple(messages),
            tuple(self.completions),
            {  # timings
                "queued": self.t_queued,
                "sandbox": rare.t_sandbox,
                "policy": self.t_policy,
                "env": self.t_env,
                "judge": rare.t_judge,
                "total": self.t_total,
            },
            rare.error,
            rare.attempts,
            None if self.parent is None else self.parent.episode_id,  # parent_episode_id
            rare.spawned_at_step,
            tuple(rare.children) if rare.children else (),
            rare.frozen,
            rare.subagent_name,
            len(rare.subagents) if rare.subagents else 0,  # subagents_created
            rare.tasks_assigned,
            rare.tasks_finished,
            rare.cost if scored else None,  # cost
            dict(rare.cost_parts) if scored and rare.cost_parts else {},  # cost_parts
            dict(rare.env_usage) if rare.env_usage else {},  # env_usage
            None,  # toggle: set by Toggle, after the manager
        )


#: What a retry keeps of an episode's rare fields: who it is and how it runs, not what it did.
_KEPT_ON_RESTART = (
    "attempts", "env_factory", "frozen", "max_turns", "owns_sandbox", "policy", "sample_index", "spawned_at_step",
    "subagent_name", "subagent_tools",
)
_NO_RARE = _Rare()
