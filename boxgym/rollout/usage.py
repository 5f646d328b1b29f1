"""Runtime cost statistics of an episode (UA2's), and a cost made of them.

:class:`EpisodeUsage` is what one episode used:

======================== ==============================================================
``prompt_tokens``        tokens in: every model call's prompt, summed over the calls (what
                         the engine processed; None when no call reported its token ids)
``completion_tokens``    tokens out: every sampled token
``model_s``              seconds in policy calls (the manager's policy stage)
``tool_s``               seconds running the agent's tool calls in the env
``sandbox_cpu_s``        CPU-seconds of every process in the sandbox, and
``sandbox_peak_memory_mb`` the peak of its memory (MiB), both read from the container's
                         cgroup on the host (:mod:`boxgym.sandboxes.cgroups`), as the agent
                         left it, before judging
======================== ==============================================================

The env measures its part after every step (a BoxEnv's ``info["usage"]``); the manager
adds tokens and model time. ``EpisodeResult.usage`` and the training view carry it, and the
end record of every episode has it under ``usage``. A figure the env cannot measure (the
in-process fake, an env without a sandbox) is None.

As a cost: :class:`UsageCost`, a manager cost judge, ``cost = Σ weight_k · figure_k``. As a
budget: ``EpisodeBudget(max_sandbox_cpu_s=...)`` truncates an episode once its sandbox
has used that much CPU, and Toggle's ``measure`` (:mod:`boxgym.rollout.toggle`) can be any
of these figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ..judges.base import Verdict

if TYPE_CHECKING:
    from .state import Episode
    from .types import Completion

__all__ = ["USAGE_FIELDS", "EpisodeUsage", "UsageCost", "episode_usage"]


@dataclass(frozen=True, slots=True)
class EpisodeUsage:
    """What one episode used (module docstring)."""

    prompt_tokens: int | None
    completion_tokens: int
    model_s: float
    tool_s: float | None = None
    sandbox_cpu_s: float | None = None
    sandbox_peak_memory_mb: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in USAGE_FIELDS}

    def get(self, name: str) -> float | None:
        """One figure by name (a field of this record); unknown names raise ValueError."""
        if name not in USAGE_FIELDS:
            raise ValueError(f"no usage figure {name!r}; there are {', '.join(USAGE_FIELDS)}")
        value = getattr(self, name)
        return None if value is None else float(value)


USAGE_FIELDS = tuple(f.name for f in fields(EpisodeUsage))


def _float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def episode_usage(
    completions: Sequence[Completion], completion_tokens: int, model_s: float, env_usage: Mapping[str, Any] | None
) -> EpisodeUsage:
    """The figures from an episode's completions, its policy time and its env's ``usage``."""
    prompt: int | None = None
    for completion in completions:
        ids = completion.prompt_token_ids
        if ids is not None:
            prompt = (prompt or 0) + len(ids)
    env = env_usage or {}
    return EpisodeUsage(
        prompt,
        completion_tokens,
        model_s,
        _float_or_none(env.get("tool_s")),
        _float_or_none(env.get("sandbox_cpu_s")),
        _float_or_none(env.get("sandbox_peak_memory_mb")),
    )


@dataclass(frozen=True, slots=True)
class UsageCost:
    """A manager cost judge (``RolloutManager(cost=UsageCost({...}))``): ``Σ weight_k · figure_k``.

    ``weights`` maps :class:`EpisodeUsage` field names to a weight, e.g.
    ``{"sandbox_cpu_s": 0.01, "completion_tokens": 1e-4}``. A figure that was not measured
    counts 0 and the verdict's messages say so. ``parts`` has each figure's weighted term.
    """

    weights: Mapping[str, float] = field(default_factory=lambda: {"sandbox_cpu_s": 1.0})

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(USAGE_FIELDS)
        if unknown:
            raise ValueError(f"unknown usage figures {sorted(unknown)}; there are {', '.join(USAGE_FIELDS)}")

    async def __call__(self, episode: Episode) -> Verdict:
        usage = episode_usage(episode.completions, episode.completion_tokens, episode.t_policy, episode.env_usage)
        parts: dict[str, float] = {}
        missing: list[str] = []
        for name, weight in self.weights.items():
            value = usage.get(name)
            if value is None:
                missing.append(name)
            parts[name] = weight * (value or 0.0)
        cost = sum(parts.values())
        messages = tuple(f"{name} was not measured: counted 0" for name in missing)
        return Verdict(cost, cost == 0, messages=messages, parts=parts)
