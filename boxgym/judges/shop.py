"""The shop's judge: WebShop's reward for the item bought, and UA2's runtime cost beside it.

WebShop (Yao et al., 2022, "WebShop: Towards Scalable Real-World Web Interaction with Grounded
Language Agents", §3.1) scores a purchase ``Y`` against the instruction's goal ``U``::

    r = r_type · (|U_att ∩ Y_att| + |U_opt ∩ Y_opt| + 1[y_price ≤ u_price]) / (|U_att| + |U_opt| + 1)

Here the catalogue is generated, so every match is exact: an attribute matches when the item
has it, an option when the bought option has the goal's value, and ``r_type`` is 1 for the goal's
product type, 0.5 for another type of the same category, 0 otherwise (WebShop's ``r_type``
estimates the same from titles and categories, which a scraped catalogue needs and this one
does not). With UA2's user profiles, ``U_att`` and ``U_opt`` hold the goal's implicit
attributes and options too (the ones the profile implies and the instruction leaves unsaid).

UA2's runtime cost (Yang et al., 2024, "Towards Unified Alignment Between Agents, Humans, and
Environment") is reported with the reward, in the verdict's ``parts`` and ``checks``:
``actions`` (the agent's turns), ``seconds`` (from opening the shop to the purchase, or to the
judge when nothing was bought, timed in the tool server) and ``tokens`` (the policy's tokens for
the episode, when a ``tokens`` source is given; absent otherwise). A :class:`CostBudget` makes an
episode over any of its limits score 0, with the match kept in ``parts["match"]``.

The purchase is read from the site's record in the tool server (``browser.site_state``): the
item and options as the catalogue has them, nothing the agent's shell or a forged request can
write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import JudgeError
from .base import Check, FinishedEpisode, Verdict

if TYPE_CHECKING:
    from ..context.tokens import RecordSource

__all__ = ["CostBudget", "ShopGoal", "ShopJudge", "episode_tokens", "webshop_reward"]


@dataclass(frozen=True, slots=True)
class ShopGoal:
    """A shop task's oracle: what the user wants, said (``attributes``, ``options``) and unsaid
    (``implicit_*``: the profile's), and where the shop is served."""

    origin: str
    type: str
    category: str
    attributes: tuple[str, ...]
    options: Mapping[str, str]
    max_price: int  # cents
    implicit_attributes: tuple[str, ...] = ()
    implicit_options: Mapping[str, str] = field(default_factory=dict)

    def all_attributes(self) -> tuple[str, ...]:
        return self.attributes + tuple(a for a in self.implicit_attributes if a not in self.attributes)

    def all_options(self) -> dict[str, str]:
        return {**self.options, **self.implicit_options}


@dataclass(frozen=True, slots=True)
class CostBudget:
    """UA2's optional budget: an episode over any limit scores 0 (None: no limit)."""

    max_actions: int | None = None
    max_seconds: float | None = None
    max_tokens: int | None = None


def webshop_reward(goal: ShopGoal, purchase: Mapping[str, Any]) -> tuple[float, dict[str, float], tuple[Check, ...]]:
    """WebShop's reward of ``purchase`` (the site's record) against ``goal``: ``(reward, parts, checks)``."""
    if purchase["type"] == goal.type:
        r_type = 1.0
    elif purchase["category"] == goal.category:
        r_type = 0.5
    else:
        r_type = 0.0
    attributes = goal.all_attributes()
    options = goal.all_options()
    have_att = [a for a in attributes if a in purchase["attributes"]]
    have_opt = [d for d, v in options.items() if purchase["options"].get(d) == v]
    cheap = purchase["price"] <= goal.max_price
    matched = len(have_att) + len(have_opt) + int(cheap)
    total = len(attributes) + len(options) + 1
    reward = r_type * matched / total
    implicit = [a for a in goal.implicit_attributes if a in purchase["attributes"]]
    implicit += [d for d, v in goal.implicit_options.items() if purchase["options"].get(d) == v]
    n_implicit = len(goal.implicit_attributes) + len(goal.implicit_options)
    parts = {
        "r_type": r_type,
        "attributes": len(have_att) / len(attributes) if attributes else 1.0,
        "options": len(have_opt) / len(options) if options else 1.0,
        "price": float(cheap),
        "implicit": len(implicit) / n_implicit if n_implicit else 1.0,
        "match": reward,
    }
    checks = (
        Check("type", r_type == 1.0, f"wanted a {goal.type} ({goal.category}); bought a {purchase['type']} ({purchase['category']})"),
        Check("attributes", len(have_att) == len(attributes), f"wanted {list(attributes)}; the item has {list(purchase['attributes'])}"),
        Check("options", len(have_opt) == len(options), f"wanted {options}; chose {dict(purchase['options'])}"),
        Check("price", cheap, f"at most {goal.max_price / 100:.2f}; paid {purchase['price'] / 100:.2f}"),
    )
    return reward, parts, checks


def episode_tokens(gateway: RecordSource) -> Callable[[str], int | None]:
    """The policy's tokens of an episode from the gateway's records: every call's prompt and
    completion token ids (or the engine's ``usage`` counts), summed; None when a call has neither."""

    def count(episode_id: str) -> int | None:
        total = 0
        for record in gateway.records(episode_id):
            if record.prompt_token_ids is not None and record.completion_token_ids is not None:
                total += len(record.prompt_token_ids) + len(record.completion_token_ids)
                continue
            usage = (record.response or {}).get("usage") or {}
            if not isinstance(usage.get("total_tokens"), int):
                return None
            total += usage["total_tokens"]
        return total

    return count


@dataclass(frozen=True, slots=True)
class ShopJudge:
    """WebShop's reward of the first purchase, UA2's cost beside it, and the optional budget.

    ``tokens(episode_id)`` gives the policy's tokens (:func:`episode_tokens` over a gateway);
    without it the cost has no ``tokens`` part.
    """

    budget: CostBudget | None = None
    tokens: Callable[[str], int | None] | None = None

    def __post_init__(self) -> None:
        if self.budget is not None and self.budget.max_tokens is not None and self.tokens is None:
            raise ValueError("a token budget needs a token source: ShopJudge(tokens=episode_tokens(gateway))")

    async def score(self, episode: FinishedEpisode) -> Verdict:
        goal = episode.task.oracle
        if not isinstance(goal, ShopGoal):
            raise JudgeError(f"task {episode.task.id} has no shop goal")
        state = await episode.sandbox.call("browser.site_state", {"origin": goal.origin})
        purchases = state.get("purchases") or []
        cost: dict[str, float] = {"actions": float(len(episode.steps) + 1)}  # the steps before the last, and the last
        cost["seconds"] = float(purchases[0]["seconds"] if purchases else state["seconds_open"])
        used_tokens = None if self.tokens is None or episode.episode_id is None else self.tokens(episode.episode_id)
        if used_tokens is not None:
            cost["tokens"] = float(used_tokens)
        said = ", ".join(f"{k} {v:g}" for k, v in cost.items())
        cost_check = Check("cost", True, said + ("" if "tokens" in cost else " (tokens not measured: no token source)"))
        if not purchases:
            parts = {"match": 0.0, **cost}
            return Verdict(0.0, False, (Check("purchase", False, "nothing was bought"), cost_check), ("nothing was bought",), parts)
        reward, parts, checks = webshop_reward(goal, purchases[0])
        over = self._over_budget(cost)
        checks += (cost_check,)
        messages: tuple[str, ...] = ()
        if self.budget is not None:
            checks += (Check("budget", not over, "; ".join(over) or "within the budget"),)
        if over:
            reward, messages = 0.0, (f"over the budget: {'; '.join(over)}",)
        return Verdict(reward, reward >= 1.0, checks, messages, {**parts, **cost})

    def _over_budget(self, cost: Mapping[str, float]) -> list[str]:
        if self.budget is None:
            return []
        limits = (("actions", self.budget.max_actions), ("seconds", self.budget.max_seconds), ("tokens", self.budget.max_tokens))
        return [f"{name} {cost[name]:g} > {limit:g}" for name, limit in limits if limit is not None and name in cost and cost[name] > limit]
