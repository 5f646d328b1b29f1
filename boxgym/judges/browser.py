"""Judges of browser tasks: what the page's own code reported, or what the site recorded.

Neither reads anything the agent can write. The browser plugin keeps both in the tool server's
memory (root's): a MiniWoB++ page's result is handed over by the page's own ``endEpisode`` the
moment it runs (a later write to the page's ``WOB_REWARD_GLOBAL`` from a console changes
nothing), and a WebTasks site is served by the plugin itself, which records every request,
cart, order and message (docs/browser.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import JudgeError
from .base import Check, FinishedEpisode, Verdict

__all__ = ["PageReward", "PageRewardJudge", "SiteState", "SiteStateJudge"]


@dataclass(frozen=True, slots=True)
class PageReward:
    """The oracle of a MiniWoB++ task: the page's own reward for instance ``seed`` of ``task``."""

    task: str
    seed: int


@dataclass(frozen=True, slots=True)
class PageRewardJudge:
    """The page's raw reward (MiniWoB++'s, in [-1, 1]) clipped to [0, 1]; 0 if its episode never ended."""

    async def score(self, episode: FinishedEpisode) -> Verdict:
        if not isinstance(episode.task.oracle, PageReward):
            raise JudgeError(f"task {episode.task.id} has no page reward to read")
        result = await episode.sandbox.call("browser.miniwob_result", {})
        if not result.get("done"):
            return Verdict.fail("the page's episode did not end: the task was not finished")
        raw = float(result["raw_reward"])
        reason = result.get("reason")
        check = Check("page reward", raw > 0, f"raw reward {raw:g}" + (f" ({reason})" if reason else ""))
        return Verdict(max(0.0, min(1.0, raw)), raw >= 1.0, (check,), parts={"raw_reward": raw})


@dataclass(frozen=True, slots=True)
class SiteState:
    """The oracle of a WebTasks state task: what the site at ``origin`` must have recorded.

    ``orders`` and ``messages`` are compared whole with the site's (so a wrong extra order
    fails): each order is ``{"items": {sku: quantity}, "name", "address", "shipping"}``, each
    message ``{"name", "email", "topic", "message", "subscribe"}``.
    """

    origin: str
    orders: tuple[Mapping[str, Any], ...] = ()
    messages: tuple[Mapping[str, Any], ...] = ()
    checks: tuple[str, ...] = field(default=("orders", "messages"))


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    if isinstance(value, Mapping):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class SiteStateJudge:
    """1 when the site's orders and messages are exactly the expected ones (text compared without
    case or extra spaces), else 0 with what differed."""

    async def score(self, episode: FinishedEpisode) -> Verdict:
        oracle = episode.task.oracle
        if not isinstance(oracle, SiteState):
            raise JudgeError(f"task {episode.task.id} has no site state to compare")
        state = await episode.sandbox.call("browser.site_state", {"origin": oracle.origin})
        checks = []
        for name in oracle.checks:
            want = _norm(list(getattr(oracle, name)))
            got = _norm(state.get(name, []))
            checks.append(Check(name, got == want, f"expected {want!r}, the site recorded {got!r}"[:1000]))
        ok = all(c.passed for c in checks)
        return Verdict(1.0 if ok else 0.0, ok, tuple(checks))
