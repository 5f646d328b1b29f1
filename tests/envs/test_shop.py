"""The personalised shop without Docker: the catalogue, WebShop's reward, the personalised
reranking, the site's purchase record against forged requests, and the judge's cost and budget.
The browser tests at the end play the scripted and the random shopper on the fake sandbox."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import boxgym.envs
from boxgym.envs.suites import shop
from boxgym.envs.suites.shop_shoppers import play
from boxgym.errors import JudgeError
from boxgym.judges import FinishedEpisode
from boxgym.judges.shop import CostBudget, ShopGoal, ShopJudge, episode_tokens, webshop_reward
from boxgym.sandboxes import FakeProvider
from boxgym.sandboxes.toolserver.browser_shop import WebShop, affinity, rank


def fits(goal: ShopGoal, item: dict[str, Any]) -> bool:
    return (
        item["type"] == goal.type
        and set(goal.all_attributes()) <= set(item["attributes"])
        and all(v in item["options"].get(d, ()) for d, v in goal.all_options().items())
        and item["price"] <= goal.max_price
    )


def purchase_of(item: dict[str, Any], options: dict[str, str]) -> dict[str, Any]:
    return {k: item[k] for k in ("type", "category", "attributes", "price")} | {"options": options}


# -- the catalogue -------------------------------------------------------------------------


@pytest.mark.parametrize("level", range(shop.LEVELS))
def test_every_task_has_an_item_that_fits_its_whole_goal_and_distractors_that_fit_only_what_is_said(level):
    for seed in range(30):
        task = shop.generate(seed, level)
        spec, goal = shop.catalogue(seed, level), task.oracle
        assert spec == shop.catalogue(seed, level) and task.id == f"shop/d{level}/s{seed}"
        items = spec["items"]
        assert len({i["id"] for i in items}) == len(items) == (40, 80, 160)[level]
        assert any(fits(goal, i) for i in items), task.id
        implicit = len(goal.implicit_attributes) + len(goal.implicit_options)
        assert implicit == task.metadata["implicit"] and (implicit == 0) == (level == 0)
        # Said: the instruction names the type, its attributes, its options and the price; never the unsaid.
        assert goal.type in task.prompt and all(a in task.prompt for a in goal.attributes)
        assert all(v in task.prompt for v in goal.options.values()) and f"${goal.max_price // 100}.00" in task.prompt
        assert not any(a in task.prompt for a in goal.implicit_attributes)
        if level:
            said_only = ShopGoal(goal.origin, goal.type, goal.category, goal.attributes, goal.options, goal.max_price)
            assert sum(fits(said_only, i) and not fits(goal, i) for i in items) >= 4
            # The unsaid comes from the profile the shop shows.
            user = spec["user"]
            assert set(goal.implicit_attributes) <= set(user["values"])
            sizes = {"size": user["sizes"]["clothing"], "shoe size": user["sizes"]["shoes"]}
            assert all(sizes[d] == v for d, v in goal.implicit_options.items())


def test_the_goal_stays_on_the_host():
    # What the plugin is given is the catalogue and the user, never which item is wanted.
    for seed in range(5):
        spec = json.dumps(shop.catalogue(seed, 2))
        assert "implicit" not in spec and "max_price" not in spec and "goal" not in spec


def test_the_id_is_registered_for_the_desktop_image():
    assert gym.spec("boxgym/Shop-v0").kwargs["image"] == "desktop"
    assert "boxgym/Shop-v0" in {env.id for env in boxgym.envs.ENVS}


# -- WebShop's reward ------------------------------------------------------------------------

GOAL = ShopGoal(
    "http://webshop.test", "t-shirt", "clothing", ("cotton", "slim fit"), {"color": "navy"}, 3000,
    implicit_attributes=("organic",), implicit_options={"size": "M"},
)  # fmt: skip
RIGHT = {"type": "t-shirt", "category": "clothing", "attributes": ["cotton", "slim fit", "organic"], "price": 2999, "options": {"color": "navy", "size": "M"}}


def test_the_right_item_scores_1_and_each_miss_costs_one_part_in_six():
    # |U_att| = 3 (two said, one unsaid), |U_opt| = 2 (one said, one unsaid), + price: 6 parts.
    assert webshop_reward(GOAL, RIGHT)[0] == 1.0
    no_size = RIGHT | {"options": {"color": "navy"}}
    reward, parts, _ = webshop_reward(GOAL, no_size)
    assert reward == pytest.approx(5 / 6) and parts["implicit"] == 0.5 and parts["options"] == 0.5
    dear = RIGHT | {"price": 3001, "attributes": ["cotton", "slim fit"]}
    reward, parts, checks = webshop_reward(GOAL, dear)
    assert reward == pytest.approx(4 / 6) and parts["price"] == 0.0
    assert {c.name: c.passed for c in checks} == {"type": True, "attributes": False, "options": True, "price": False}


def test_the_type_multiplies_everything():
    hoodie = RIGHT | {"type": "hoodie"}
    assert webshop_reward(GOAL, hoodie)[0] == 0.5  # the same category
    mug = RIGHT | {"type": "mug", "category": "kitchen"}
    assert webshop_reward(GOAL, mug)[0] == 0.0


# -- the personalised reranking ---------------------------------------------------------------


def _items() -> list[dict[str, Any]]:
    def item(i: str, brand: str, attributes: list[str], price: int) -> dict[str, Any]:
        return {"id": i, "title": f"{brand} shirt", "type": "t-shirt", "brand": brand, "attributes": attributes, "price": price}

    return [
        item("a", "Acme", ["cotton", "organic"], 2000),
        item("b", "Lumen", ["cotton", "fleece lined"], 1500),
        item("c", "Kestrel", ["cotton", "vegan"], 1000),
        {"id": "d", "title": "Acme mug", "type": "mug", "brand": "Acme", "attributes": ["ceramic"], "price": 500},
    ]


def test_without_a_user_the_order_is_the_text_match_then_the_price():
    assert [i["id"] for i in rank(_items(), "cotton shirt")] == ["c", "b", "a"]  # the mug matches no word


def test_two_users_searching_the_same_words_see_different_orders():
    organic = {"values": ["organic"], "brands": [], "avoid_brands": ["Kestrel"]}
    lumen = {"values": [], "brands": ["Lumen"], "avoid_brands": []}
    assert [i["id"] for i in rank(_items(), "cotton shirt", organic)] == ["a", "b", "c"]
    assert [i["id"] for i in rank(_items(), "cotton shirt", lumen)] == ["b", "c", "a"]
    assert affinity(_items()[2], organic) == -1.0 and affinity(_items()[0], organic) == 1.0


def test_one_liked_attribute_does_not_outweigh_a_matched_word_but_two_leanings_do():
    likes_organic = {"values": ["organic"], "brands": [], "avoid_brands": []}
    assert rank(_items(), "fleece shirt", likes_organic)[0]["id"] == "b"
    also_acme = {"values": ["organic"], "brands": ["Acme"], "avoid_brands": []}
    assert rank(_items(), "fleece shirt", also_acme)[0]["id"] == "a"


def test_the_scripted_reading_of_a_generated_shop_finds_the_target_near_the_top():
    # In the generated shops the wanted item ranks in the first page for its said words.
    for seed in range(10):
        spec, goal = shop.catalogue(seed, 2), shop.generate(seed, 2).oracle
        found = rank(spec["items"], " ".join([*goal.attributes, goal.type]), spec["user"])
        assert any(fits(goal, i) for i in found[:10]), seed


# -- the site's record ----------------------------------------------------------------------


def _site() -> tuple[WebShop, dict[str, Any]]:
    spec = shop.catalogue(3, 1)
    return WebShop(spec), spec["items"][0]


def _buy(site: WebShop, form: dict[str, str], method: str = "POST") -> str:
    from urllib.parse import urlencode

    body = urlencode(form).encode()
    return site.handle(method, "http://webshop.test/buy" + ("" if method == "POST" else "?" + body.decode()), body).body.decode()


def test_a_purchase_is_recorded_as_the_catalogue_has_it_whatever_the_form_says():
    site, item = _site()
    dim, values = next(iter(item["options"].items()))
    _buy(site, {"item": item["id"], f"opt_{dim}": values[0]})
    (bought,) = site.state()["purchases"]
    assert bought["item"] == item["id"] and bought["price"] == item["price"] and bought["options"] == {dim: values[0]}
    assert site.done


@pytest.mark.parametrize(
    "forged",
    [
        {"item": "B0999ZZZZ"},  # no such item
        {"item": "<first>", "opt_color": "gold"},  # an option value the item does not offer
        {"item": "<first>", "price": "1"},  # a field the shop does not take
        {"item": "<first>", "opt_warranty": "lifetime"},  # a dimension it does not have
    ],
)
def test_a_forged_purchase_records_nothing(forged):
    site, item = _site()
    form = {k: (item["id"] if v == "<first>" else v) for k, v in forged.items()}
    assert "Cannot buy" in _buy(site, form)
    assert site.state()["purchases"] == [] and not site.done


def test_only_the_first_purchase_counts_and_a_get_buys_nothing():
    site, item = _site()
    _buy(site, {"item": item["id"]}, method="GET")
    assert site.state()["purchases"] == []
    _buy(site, {"item": item["id"]})
    other = shop.catalogue(3, 1)["items"][1]
    assert "already placed" in _buy(site, {"item": other["id"]})
    assert [p["item"] for p in site.state()["purchases"]] == [item["id"]]


# -- the judge: reward, cost, budget ----------------------------------------------------------


@dataclass
class _Sandbox:
    state: dict[str, Any]
    calls: list[tuple[str, dict]] = field(default_factory=list)

    async def call(self, op: str, args: dict, **_: Any) -> dict:
        self.calls.append((op, args))
        return self.state


def _episode(purchases: list[dict[str, Any]], steps: int = 4) -> FinishedEpisode:
    task = boxgym.envs.Task("shop/d2/s0", "buy", GOAL)
    state = {"purchases": [p | {"seconds": 12.5} for p in purchases], "seconds_open": 20.0}
    return FinishedEpisode(task, _Sandbox(state), steps=tuple(object() for _ in range(steps)), episode_id="ep1")  # type: ignore[arg-type]


async def test_the_verdict_carries_the_reward_and_the_runtime_cost():
    episode = _episode([RIGHT])
    verdict = await ShopJudge(tokens=lambda episode_id: {"ep1": 1234}[episode_id]).score(episode)
    assert verdict.reward == 1.0 and verdict.passed
    assert verdict.parts["actions"] == 5 and verdict.parts["seconds"] == 12.5 and verdict.parts["tokens"] == 1234
    assert episode.sandbox.calls == [("browser.site_state", {"origin": "http://webshop.test"})]
    cost = next(c for c in verdict.checks if c.name == "cost")
    assert "actions 5" in cost.detail and "tokens 1234" in cost.detail


async def test_over_the_budget_scores_0_and_keeps_the_match():
    episode = _episode([RIGHT])
    verdict = await ShopJudge(budget=CostBudget(max_actions=4)).score(episode)
    assert verdict.reward == 0.0 and verdict.parts["match"] == 1.0 and "actions 5 > 4" in verdict.messages[0]
    within = await ShopJudge(budget=CostBudget(max_actions=5, max_seconds=13)).score(episode)
    assert within.reward == 1.0 and "tokens" not in within.parts
    with pytest.raises(ValueError, match="token source"):
        ShopJudge(budget=CostBudget(max_tokens=10))


async def test_nothing_bought_scores_0_with_the_cost_and_a_task_without_a_goal_is_a_judge_error():
    verdict = await ShopJudge().score(_episode([]))
    assert verdict.reward == 0.0 and verdict.parts["seconds"] == 20.0 and verdict.messages == ("nothing was bought",)
    other = FinishedEpisode(boxgym.envs.Task("x", "y", None), _Sandbox({}))  # type: ignore[arg-type]
    with pytest.raises(JudgeError):
        await ShopJudge().score(other)


def test_the_gateways_records_give_the_episodes_tokens():
    def record(prompt, completion, usage=None):
        return SimpleNamespace(prompt_token_ids=prompt, completion_token_ids=completion, response={"usage": usage} if usage else None)

    gateway = SimpleNamespace(records=lambda episode_id: [record((1, 2, 3), (4,)), record(None, None, {"total_tokens": 10})])
    assert episode_tokens(gateway)("ep") == 14
    blind = SimpleNamespace(records=lambda episode_id: [record(None, None)])
    assert episode_tokens(blind)("ep") is None


# -- through gym.make, on the fake sandbox with the host's Chromium ------------------------------


@pytest.mark.browser
@pytest.mark.slow
async def test_the_scripted_shopper_scores_high_and_the_random_one_low():
    env = gym.make("boxgym/Shop-v0", provider=FakeProvider()).unwrapped
    try:
        scripted, random = [], []
        for level in range(shop.LEVELS):
            reward, info = await play(env, seed=level, options={"difficulty": level})
            assert info["verdict"]["parts"]["actions"] > 0 and not info["infra_failure"]
            scripted.append(reward)
            random.append((await play(env, seed=level, options={"difficulty": level}, policy="random"))[0])
        assert np.mean(scripted) >= 0.9 and np.mean(random) < 0.3, (scripted, random)
    finally:
        await env.aclose()
