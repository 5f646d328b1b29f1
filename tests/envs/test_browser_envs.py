"""MiniWoB++ and WebTasks through gym.make, on the fake sandbox with the host's Chromium (breadth).

The same plugin and browser as in Docker (tests/envs/test_browser_docker.py runs the oracles there):
the ids, check_env, seeds, the oracles and references, a random policy, and the cheats that fit
a browser.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import boxgym.envs
from boxgym.envs.miniwob_names import MINIWOB_VERSION, TASKS
from boxgym.envs.suites import webtasks
from boxgym.envs.suites.miniwob_oracles import ORACLES, play, tool_message
from boxgym.sandboxes import FakeProvider
from boxgym.toolsets.browser import page_elements

pytestmark = [pytest.mark.browser]

NEW_IDS = ["boxgym/WebTasks-v0", "boxgym/MiniWoB-v0", *(f"boxgym/miniwob.{t}-v0" for t in TASKS)]


def test_every_task_the_wheel_ships_has_an_id():
    spec = importlib.util.find_spec("miniwob")
    pages = os.path.join(list(spec.submodule_search_locations)[0], "html", "miniwob")
    assert sorted(name[:-5] for name in os.listdir(pages) if name.endswith(".html")) == sorted(TASKS)
    assert importlib.metadata.version("miniwob") == MINIWOB_VERSION
    registered = {env.id for env in boxgym.envs.ENVS}
    assert set(NEW_IDS) <= registered
    for env_id in NEW_IDS:
        assert gym.spec(env_id).kwargs["image"] == "desktop"
    assert set(ORACLES) <= set(TASKS)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["boxgym/WebTasks-v0", "boxgym/MiniWoB-v0"])
def test_check_env_accepts_the_browser_ids(env_id):
    # A per-task id is MiniWoB-v0's code with one task name (each costs ~30 s here: a browser per
    # reset); `boxgym envs check --fake` runs them all, and every page's determinism is below.
    env = gym.make(env_id, provider=FakeProvider())
    try:
        check_env(env.unwrapped)
    finally:
        env.close()


async def test_the_seed_picks_the_instance_and_the_utterance_is_the_prompt():
    env = gym.make("boxgym/miniwob.click-checkboxes-v0", provider=FakeProvider()).unwrapped
    try:
        first, info = await env.areset(seed=7)
        again, _ = await env.areset(seed=7)
        other, _ = await env.areset(seed=8)
        assert first == again and first != other
        assert first[1]["content"].startswith("Task: Select ") and info["metadata"]["miniwob_task"] == "click-checkboxes"
        assert "URL: http://miniwob.test/miniwob/click-checkboxes.html" in first[1]["content"]
    finally:
        await env.aclose()


@pytest.mark.slow
async def test_oracles_through_gym_make_solve_their_tasks():
    # A few here for breadth; all 20, batched in one Docker pool, in test_browser_docker.py.
    for task in ("click-collapsible", "navigate-tree", "grid-coordinate", "guess-number"):
        env = gym.make(f"boxgym/miniwob.{task}-v0", provider=FakeProvider()).unwrapped
        try:
            reward, info = await play(env, seed=11)
            assert reward > 0, (task, info.get("verdict"), info.get("error"))
        finally:
            await env.aclose()


def _random_call(rng: np.random.Generator, page: str) -> dict:
    ids = [e.id for e in page_elements(page) if e.id is not None] or [1]
    target = int(rng.choice(ids))
    kind = rng.choice(["click"] * 5 + ["type", "press", "scroll", "hover", "select_option"])
    arguments = {
        "click": {"id": target},
        "hover": {"id": target},
        "type": {"id": target, "text": str(rng.integers(0, 100)), "submit": bool(rng.integers(0, 2))},
        "press": {"key": str(rng.choice(["Enter", "Tab", "ArrowDown", "Space"]))},
        "scroll": {"direction": str(rng.choice(["up", "down"]))},
        "select_option": {"id": target, "option": "1"},
    }[str(kind)]
    return tool_message(str(kind), arguments, "random")


async def _random_episode(task: str, seed: int, steps: int = 6) -> float:
    env = gym.make(f"boxgym/miniwob.{task}-v0", provider=FakeProvider()).unwrapped
    rng = np.random.default_rng(seed)
    try:
        obs, _ = await env.areset(seed=seed)
        page = obs[-1]["content"]
        for _ in range(steps):
            obs, reward, terminated, truncated, _ = await env.astep(_random_call(rng, page))
            if terminated or truncated:
                return reward
            page = obs[0]["content"]
        _, reward, _, _, _ = await env.astep(tool_message("answer", {}, "end"))
        return reward
    finally:
        await env.aclose()


@pytest.mark.slow
async def test_a_random_policy_scores_below_0_2_over_the_oracle_tasks():
    limit = asyncio.Semaphore(4)

    async def one(task: str) -> float:
        async with limit:
            return await _random_episode(task, seed=len(task))

    rewards = await asyncio.gather(*(one(task) for task in ORACLES))
    assert len(rewards) == 20 and np.mean(rewards) < 0.2, rewards


async def _reset_click_button(env, seed: int = 3) -> tuple[str, int]:
    obs, info = await env.areset(seed=seed)
    assert not info["infra_failure"], info["error"]
    text = obs[-1]["content"]
    wanted = text.split('"')[1]
    return text, next(e.id for e in page_elements(text) if e.role == "button" and e.name == wanted)


async def test_writing_the_page_reward_variable_from_a_console_scores_0():
    env = gym.make("boxgym/miniwob.click-button-v0", provider=FakeProvider()).unwrapped
    try:
        await _reset_click_button(env)
        # A console the agent does not have: the test writes the page's globals itself.
        plugin = env._episode.sandbox._plugins._loaded["browser"].instance
        await plugin.pages[0].evaluate("() => { WOB_REWARD_GLOBAL = 1; WOB_RAW_REWARD_GLOBAL = 1; WOB_DONE_GLOBAL = true; }")
        _, reward, terminated, _, info = await env.astep(tool_message("answer", {}))
        assert terminated and reward == 0.0 and not info["infra_failure"]
        assert "did not end" in info["verdict"]["messages"][0]
    finally:
        await env.aclose()


async def test_the_agent_cannot_reach_a_console_through_its_tools():
    env = gym.make("boxgym/miniwob.click-button-v0", provider=FakeProvider()).unwrapped
    try:
        await _reset_click_button(env)
        script = "javascript:core.endEpisode(1.0);WOB_REWARD_GLOBAL=1;void 0"
        for name, arguments in (("goto", {"url": script}), ("new_tab", {"url": script})):
            obs, reward, terminated, _, _ = await env.astep(tool_message(name, arguments))
            assert not terminated and obs[0]["content"].startswith("error: cannot open 'javascript:")
        _, reward, terminated, _, _ = await env.astep(tool_message("answer", {}))
        assert terminated and reward == 0.0
    finally:
        await env.aclose()


async def test_a_wrong_click_scores_0_and_the_right_one_1():
    env = gym.make("boxgym/miniwob.click-button-v0", provider=FakeProvider()).unwrapped
    try:
        text, right = await _reset_click_button(env)
        wrong = next(e.id for e in page_elements(text) if e.role == "button" and e.id != right)
        _, reward, terminated, _, info = await env.astep(tool_message("click", {"id": wrong}))
        assert terminated and reward == 0.0 and info["end_reason"] == "env_terminated"
        await _reset_click_button(env)
        text, right = await _reset_click_button(env)
        _, reward, terminated, _, info = await env.astep(tool_message("click", {"id": right}))
        assert terminated and reward == 1.0 and info["verdict"]["parts"]["raw_reward"] == 1.0
    finally:
        await env.aclose()


@pytest.mark.slow
@pytest.mark.parametrize("level", range(webtasks.LEVELS))
async def test_webtasks_references_pass_and_doing_nothing_fails(level):
    env = gym.make("boxgym/WebTasks-v0", provider=FakeProvider()).unwrapped
    try:
        for seed in (0,):
            task = webtasks.generate(seed, level)
            reward, info = await webtasks.play(env, options={"task_id": task.id})
            assert reward == 1.0, (task.id, task.metadata["kind"], info.get("verdict"), info.get("error"))
        obs, _ = await env.areset(options={"task_id": webtasks.generate(2, level).id})
        assert obs[1]["content"].startswith(env.tasks.get(webtasks.generate(2, level).id).prompt)
        _, reward, terminated, _, _ = await env.astep(tool_message("answer", {"text": "I do not know"}))
        assert terminated and reward == 0.0
    finally:
        await env.aclose()


def test_webtasks_are_reproducible_and_their_answers_come_from_the_site():
    for level in range(webtasks.LEVELS):
        for seed in range(20):
            task = webtasks.generate(seed, level)
            assert task == webtasks.generate(seed, level) and task.id == f"webtasks/d{level}/s{seed}"
            spec = webtasks.site(seed, level)
            json.dumps(spec)  # plain data: it crosses to the plugin as JSON
            kind = task.metadata["kind"]
            if kind == "price":
                product = next(p for p in spec["products"] if p["name"] == task.metadata["product"])
                assert task.oracle.answer == f"${product['price'] // 100}.{product['price'] % 100:02d}"
            if kind == "stock":  # not on the first page: the agent must search or page through
                names = [p["name"] for p in spec["products"]]
                assert names.index(task.metadata["product"]) >= spec["page_size"]
            if kind == "cheapest":
                (sku,) = task.oracle.orders[0]["items"]
                chosen = next(p for p in spec["products"] if p["sku"] == sku)
                same = [p["price"] for p in spec["products"] if p["category"] == chosen["category"]]
                assert chosen["price"] == min(same)


# Pages drawn by a timer, not only by the seed: stock-market shows its price at the first 100 ms tick
# and moves it at every one after.
MOVES_BY_THE_CLOCK = {"stock-market"}


@pytest.mark.slow
async def test_every_task_page_opens_with_an_utterance_and_the_same_seed_gives_the_same_page():
    # What check_env would find wrong with one per-task id: its page, its prompt, its determinism
    # (one browser for all 130 pages here; `boxgym envs check --fake` runs check_env on each id).
    import re

    from boxgym.sandboxes import FakeSandbox

    sandbox = FakeSandbox()
    problems = []
    try:
        for task in TASKS:
            seen = []
            for _ in range(2):
                opened = await sandbox.call("browser.open_miniwob", {"task": task, "seed": 5}, timeout=60)
                page = await sandbox.call("browser.observe", {})
                seen.append((opened["utterance"], re.sub(r"\[\d+\] ", "", page["tree"])))
            if task in MOVES_BY_THE_CLOCK:  # the same instance, its page drawn by a timer: the prompt must agree
                seen = [(utterance, "") for utterance, _ in seen]
            if not seen[0][0] or seen[0] != seen[1]:
                problems.append((task, seen))
    finally:
        await sandbox.aclose()
    assert not problems, problems
