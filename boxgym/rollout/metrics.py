"""Counters of one manager, and their Prometheus text exposition.

Plain attributes, bumped inline on the hot path (a metrics library's labelled
counter costs a dict lookup and a lock per increment). No globals: each
manager has its own, so many managers in one process (or one per Ray actor)
never mix their numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..trajectories import Outcome

if TYPE_CHECKING:
    from .limiter import Limiter
    from .state import Episode

__all__ = ["STAGES", "RolloutMetrics", "metrics_handler"]

#: The stages whose summed time is kept, in the order of ``RolloutMetrics.seconds``.
STAGES = ("queued", "sandbox", "policy", "env", "judge")
_INFRA_FAILURE = Outcome.INFRA_FAILURE
_SCORED = (Outcome.TERMINATED, Outcome.TRUNCATED)  # looked up once: an enum member lookup is not free


class RolloutMetrics:
    __slots__ = (
        "close_failures",
        "episode_retries",
        "finished",
        "policy_calls",
        "policy_retries",
        "reasons",
        "reward_count",
        "reward_sum",
        "running",
        "seconds",
        "started",
        "steps",
        "tokens",
    )

    def __init__(self) -> None:
        self.started = 0
        self.running = 0
        self.finished: Counter[str] = Counter()  # by outcome
        self.reasons: Counter[str] = Counter()
        self.steps = 0
        self.policy_calls = 0
        self.policy_retries = 0
        self.episode_retries = 0
        self.tokens = 0
        self.reward_sum = 0.0
        self.reward_count = 0
        self.close_failures = 0
        self.seconds = [0.0] * len(STAGES)  # summed stage time, in STAGES order

    def episode_done(self, ep: Episode) -> None:
        outcome = ep.outcome or _INFRA_FAILURE
        self.finished[outcome._value_] += 1  # ._value_: .value is a property, a Python call per episode
        self.reasons[ep.reason or "error"] += 1  # a StrEnum: counted under its value
        if outcome in _SCORED:
            self.reward_sum += ep.reward
            self.reward_count += 1
        seconds = self.seconds  # [queued, sandbox, policy, env, judge]
        seconds[0] += ep.t_queued
        seconds[1] += ep.t_sandbox
        seconds[2] += ep.t_policy
        seconds[3] += ep.t_env
        seconds[4] += ep.t_judge

    @property
    def done(self) -> int:
        """Episodes that reached a verdict (terminated or truncated)."""
        return self.finished[Outcome.TERMINATED.value] + self.finished[Outcome.TRUNCATED.value]

    @property
    def failed(self) -> int:
        """Infrastructure failures and errors (never scored)."""
        return self.finished[Outcome.INFRA_FAILURE.value] + self.finished[Outcome.ERROR.value]

    @property
    def mean_reward(self) -> float | None:
        return self.reward_sum / self.reward_count if self.reward_count else None

    def prometheus_text(self, limiters: Iterable[Limiter] = (), prefix: str = "boxgym_rollout") -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: Iterable[tuple[str, float]]) -> None:
            lines.append(f"# HELP {prefix}_{name} {help_}")
            lines.append(f"# TYPE {prefix}_{name} {kind}")
            for labels, value in samples:
                lines.append(f"{prefix}_{name}{labels} {value}")

        metric("episodes_started_total", "counter", "Episodes admitted.", [("", self.started)])
        metric("episodes_running", "gauge", "Episodes in a stage now (sub-agents included).", [("", self.running)])
        metric(
            "episodes_finished_total",
            "counter",
            "Episodes finished, by outcome.",
            [(f'{{outcome="{o.value}"}}', self.finished[o.value]) for o in Outcome],
        )
        metric(
            "episodes_reason_total",
            "counter",
            "Episodes finished, by reason.",
            [(f'{{reason="{r}"}}', n) for r, n in sorted(self.reasons.items())],
        )
        metric("steps_total", "counter", "Env steps taken.", [("", self.steps)])
        metric("policy_calls_total", "counter", "Policy calls answered.", [("", self.policy_calls)])
        metric("policy_retries_total", "counter", "Policy calls retried after an upstream failure.", [("", self.policy_retries)])
        metric("episode_retries_total", "counter", "Episodes restarted after an infrastructure failure.", [("", self.episode_retries)])
        metric("completion_tokens_total", "counter", "Completion tokens sampled.", [("", self.tokens)])
        metric("reward_sum", "counter", "Sum of rewards of scored episodes.", [("", self.reward_sum)])
        metric("reward_count", "counter", "Scored episodes.", [("", self.reward_count)])
        metric("close_failures_total", "counter", "Envs or sandboxes whose close failed.", [("", self.close_failures)])
        metric(
            "stage_seconds_total",
            "counter",
            "Time spent in each stage, summed over episodes.",
            [(f'{{stage="{s}"}}', self.seconds[i]) for i, s in enumerate(STAGES)],
        )
        limiters = list(limiters)
        if limiters:
            metric(
                "stage_in_use",
                "gauge",
                "Slots held per bounded stage.",
                [(f'{{stage="{lim.name}"}}', lim.in_use) for lim in limiters],
            )
            metric(
                "stage_waiting",
                "gauge",
                "Coroutines waiting for a slot per bounded stage.",
                [(f'{{stage="{lim.name}"}}', lim.statistics().waiting) for lim in limiters],
            )
        return "\n".join(lines) + "\n"


def metrics_handler(text: Callable[[], str]) -> Callable[[Any], Awaitable[Any]]:
    """An aiohttp handler serving ``text()`` (e.g. ``manager.prometheus_text``) for a scrape::

        app.router.add_get("/metrics", metrics_handler(manager.prometheus_text))
    """
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        return web.Response(text=text(), content_type="text/plain", charset="utf-8", headers={"X-Content-Type-Options": "nosniff"})

    return handle
