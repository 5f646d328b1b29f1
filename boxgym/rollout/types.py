"""Typed records of the rollout manager: what goes in (tasks), what a policy returns
(completions), what comes out (episode results, groups), and the env contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..trajectories import EndReason, Outcome
from .usage import EpisodeUsage, episode_usage

if TYPE_CHECKING:
    from ..context.strategies import ContextView

__all__ = [
    "AsyncEnv",
    "Completion",
    "EpisodeResult",
    "Group",
    "Outcome",
    "EndReason",
    "TaskRef",
    "ToggleMark",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_SCORED = (Outcome.TERMINATED, Outcome.TRUNCATED)  # looked up once: an enum member lookup is not free

@dataclass(frozen=True, slots=True)
class TaskRef:
    """What to roll out: a task of an env, by id. ``run(refs, group_size=K)`` starts K episodes of each.

    The env runs the task named ``task_id`` (``None``: the env picks one, e.g. with
    ``options={"difficulty": 2}``). The task itself (prompt, files, oracle) is the env's
    :class:`boxgym.envs.Task`; this is only its reference.
    """

    task_id: str | None
    env_id: str = "null"
    seed: int | None = None
    options: Mapping[str, Any] | None = None  # passed to env.areset(options=...), with the two below
    # Shared and read-only by default: a million tasks need no million empty dicts.
    meta: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def reset_options(self, episode_id: str) -> dict[str, Any]:
        """The ``options`` the manager resets the env with: ``task_id`` (the env runs the named
        task), ``episode_id`` (the env records under the manager's id, the one in the gateway's
        and the trainer's files too) and this ref's own ``options``, which win."""
        options: dict[str, Any] = {"episode_id": episode_id}
        if self.task_id is not None:
            options["task_id"] = self.task_id
        if self.options:
            options.update(self.options)
        return options


@dataclass(frozen=True, slots=True)
class Completion:
    """One policy call's answer, with the engine's tokens when the policy has them.

    ``logprobs[i]`` is the behaviour log-probability of ``completion_token_ids[i]``;
    token ids come from the engine (via the gateway), never re-tokenized text.
    """

    message: dict[str, Any]  # an OpenAI assistant message (content and/or tool_calls)
    prompt_token_ids: tuple[int, ...] | None = None
    completion_token_ids: tuple[int, ...] | None = None
    logprobs: tuple[float, ...] | None = None
    weight_version: str | None = None  # None: the manager stamps its current version
    call_id: str | None = None  # the gateway's call record, when there is one
    finish_reason: str | None = None
    # The policy is done: the episode ends with this message and no env step (reason
    # "agent_done", outcome terminated, so the judge scores it). A black-box agent that
    # returned sends one.
    final: bool = False
    # What the call was shown when a context manager edited the history (boxgym.context); the
    # manager records it with the step (info["context"]). None: the whole history.
    context: ContextView | None = None

    @property
    def completion_tokens(self) -> int:
        ids = self.completion_token_ids
        return 0 if ids is None else len(ids)


@dataclass(frozen=True, slots=True)
class ToggleMark:
    """What Toggle (:mod:`boxgym.rollout.toggle`) did to an episode's reward, kept beside it."""

    phase: int  # 0: budget-limited, 1: the reward as it is
    budget: float | None  # budget(x) of the episode's task; None: the task has none
    length: float | None  # |y|, the measure compared with the budget (completion tokens by default)
    raw_reward: float  # r, before Toggle
    group_mean: float  # the mean raw reward of the episode's group

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "budget": self.budget,
            "length": self.length,
            "raw_reward": self.raw_reward,
            "group_mean": self.group_mean,
        }


@dataclass(frozen=True, slots=True)
class EpisodeResult:
    """Everything the manager knows about a finished (or paused) episode."""

    episode_id: str
    task: TaskRef
    group_id: str
    sample_index: int  # 0..K-1 within its group
    outcome: Outcome
    reason: EndReason
    reward: float | None  # None unless a verdict was reached (infra failures, errors, cancellations)
    reward_parts: Mapping[str, float]
    steps: int
    completion_tokens: int
    messages: tuple[dict[str, Any], ...]
    completions: tuple[Completion, ...]
    timings: Mapping[str, float]  # queued, sandbox, policy, env, judge, total (seconds)
    error: str | None = None
    attempts: int = 1
    parent_episode_id: str | None = None
    spawned_at_step: int | None = None  # the parent step whose assign_task started this child
    children: tuple[EpisodeResult, ...] = ()
    frozen: bool = False  # a frozen sub-agent: its tokens are not training data
    subagent_name: str | None = None
    subagents_created: int = 0
    tasks_assigned: int = 0
    tasks_finished: int = 0
    cost: float | None = None  # a cost judge's verdict (env's or manager's); None without one or no verdict
    cost_parts: Mapping[str, float] = field(default_factory=dict)
    env_usage: Mapping[str, Any] = field(default_factory=dict)  # the env's figures (a BoxEnv's info["usage"])
    toggle: ToggleMark | None = None  # set by Toggle: the reward above is then r-tilde

    @property
    def usage(self) -> EpisodeUsage:
        """The episode's runtime figures: tokens in and out, model, tool and sandbox use."""
        return episode_usage(self.completions, self.completion_tokens, self.timings.get("policy", 0.0), self.env_usage)

    @property
    def ok(self) -> bool:
        """Finished with a verdict the trainer may use (terminated or truncated, reward known)."""
        return self.outcome in _SCORED and self.reward is not None

    @property
    def final_message(self) -> dict[str, Any] | None:
        for message in reversed(self.messages):
            if message.get("role") == "assistant":
                return message
        return None

    @property
    def weight_versions(self) -> tuple[str | None, ...]:
        """The distinct weight versions of this episode's completions, in order of first use."""
        return tuple(dict.fromkeys(c.weight_version for c in self.completions))


def _result_constructor() -> Any:
    """``new_result(v0, ..., v26)``: an EpisodeResult from every field in declaration order.

    The frozen dataclass's ``__init__`` stores each of its 27 fields through
    ``object.__setattr__``; storing through the slots' own descriptors is the
    same store without the lookup. The stores are written out, one line per
    field, in a function generated once here (a loop over the descriptors costs
    twice as much), because one result per episode is a visible share of a
    100k-episode run's per-episode cost.
    """
    names = [f.name for f in fields(EpisodeResult)]
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": EpisodeResult}
    lines = [f"def new_result({', '.join(names)}):", "    result = _new(_cls)"]
    for name in names:
        scope[f"_set_{name}"] = EpisodeResult.__dict__[name].__set__
        lines.append(f"    _set_{name}(result, {name})")
    lines.append("    return result")
    exec("\n".join(lines), scope)  # noqa: S102 - generated from the dataclass's own field names
    function = scope["new_result"]
    function.__doc__ = _result_constructor.__doc__
    function.__module__ = __name__
    return function


new_result = _result_constructor()


@dataclass(frozen=True, slots=True)
class Group:
    """The K episodes of one task, delivered together once all K have finished."""

    group_id: str
    task: TaskRef
    results: tuple[EpisodeResult, ...]
    iteration: int = 0  # the manager's iteration (its count of runs, from 0) that completed the group

    @property
    def rewards(self) -> tuple[float | None, ...]:
        return tuple(r.reward for r in self.results)


@runtime_checkable
class AsyncEnv(Protocol):
    """The environment contract the manager drives (Gymnasium's, async).

    ``areset`` returns ``(observation, info)`` where observation is a list of
    OpenAI chat messages (system + user) and ``info["tools"]`` the OpenAI
    function schemas; ``astep(action)`` takes a str or an assistant message and
    returns ``(observation, reward, terminated, truncated, info)`` with tool
    messages as observation. ``info["infra_failure"]`` marks an infrastructure
    failure. ``aclose`` is idempotent.
    """

    async def areset(
        self, *, seed: int | None = None, options: Mapping[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]: ...

    async def astep(
        self, action: str | dict[str, Any]
    ) -> tuple[list[dict[str, Any]], float, bool, bool, dict[str, Any]]: ...

    async def aclose(self) -> None: ...
