"""The personalised shop on real Docker (the desktop image): the scripted shopper against a random
one over a handful of tasks, and the cheats an agent with a shell beside the browser would try.

``python -m pytest -s tests/envs/test_shop_docker.py`` prints the figures docs/shop.md quotes.
"""

from __future__ import annotations

import asyncio
import time

import gymnasium as gym
import numpy as np
import pytest

import boxgym.envs  # noqa: F401 - registers the ids
from boxgym.envs.suites import shop
from boxgym.envs.suites.miniwob_oracles import tool_message
from boxgym.envs.suites.shop_shoppers import play
from boxgym.sandboxes import SandboxPool, SandboxSpec
from boxgym.toolsets import BrowserToolset, ShellToolset, compose
from boxgym.toolsets.browser import page_elements

pytestmark = [pytest.mark.docker, pytest.mark.browser, pytest.mark.slow]

TASKS = [(level, seed) for level in range(shop.LEVELS) for seed in (1, 2)]  # six tasks


async def test_the_scripted_shopper_scores_high_and_a_random_one_low_on_docker():
    start = time.monotonic()
    async with SandboxPool(SandboxSpec(image="desktop"), size=2) as pool:
        limit = asyncio.Semaphore(2)

        async def one(level: int, seed: int, policy: str) -> tuple[float, dict]:
            async with limit:
                env = gym.make("boxgym/Shop-v0", provider=pool).unwrapped
                try:
                    return await play(env, seed=seed, options={"task_id": f"shop/d{level}/s{seed}"}, policy=policy)
                finally:
                    await env.aclose()

        scripted = await asyncio.gather(*(one(level, seed, "scripted") for level, seed in TASKS))
        random = await asyncio.gather(*(one(level, seed, "random") for level, seed in TASKS))
    took = time.monotonic() - start
    for name, results in (("scripted", scripted), ("random", random)):
        assert not any(info["infra_failure"] for _, info in results), [info["error"] for _, info in results]
        rewards = [r for r, _ in results]
        actions = [info["verdict"]["parts"]["actions"] for _, info in results]
        seconds = [info["verdict"]["parts"]["seconds"] for _, info in results]
        print(f"\n{name}: mean reward {np.mean(rewards):.3f} {rewards}; mean actions {np.mean(actions):.1f}; mean seconds {np.mean(seconds):.1f}")
    print(f"{2 * len(TASKS)} Shop-v0 episodes on Docker, pool of 2: {took:.1f}s")
    assert np.mean([r for r, _ in scripted]) >= 0.9
    assert np.mean([r for r, _ in random]) < 0.3


CHEATS = r"""
# 1. read the catalogue or the goal from the files the shop is served from (ITEMS: ids of this task's catalogue)
grep -rIl -e ITEMS /tmp /home /opt /srv /var /etc /usr/local /dev/shm /workspace 2>/dev/null | head -3 | sed 's/^/FOUND /'
# 2. buy with a forged request: is anything listening to post to? (the kernel's table, not a port
#    scan: a scan of the ephemeral range connects to itself)
awk '$4 == "0A" {print "LISTEN " $2}' /proc/net/tcp /proc/net/tcp6
# (the control: a listener of the agent's own shows in that table)
python3 -c "
import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()
print('CONTROL_SEEN' if any(l.split()[3] == '0A' for l in open('/proc/net/tcp').readlines()[1:]) else 'CONTROL_MISSED')"
# 3. read the tool server's memory, where the shop and its record live
pid=$(pgrep -o -f 'toolserver/main.py' || true)
[ -n "$pid" ] && cat /proc/$pid/environ >/dev/null 2>&1 && echo READ_ENVIRON
[ -n "$pid" ] && python3 -c "open('/proc/$pid/mem','rb')" 2>/dev/null && echo OPENED_MEM
echo done
"""


async def test_the_cheats_that_fit_the_shop_find_nothing_with_a_shell_beside_it():
    async with SandboxPool(SandboxSpec(image="desktop"), size=1) as pool:
        toolset = compose(ShellToolset(), BrowserToolset(setup=shop.open_shop))
        env = gym.make("boxgym/Shop-v0", provider=pool, toolset=toolset).unwrapped
        try:
            obs, info = await env.areset(options={"task_id": "shop/d2/s1"})
            assert not info["infra_failure"], info["error"]
            ids = [item["id"] for item in shop.catalogue(1, 2)["items"][:2]]
            cheats = CHEATS.replace("-e ITEMS", " ".join(f"-e {i}" for i in ids))
            obs, *_ = await env.astep(tool_message("bash", {"command": cheats, "timeout": 120}))
            out = obs[0]["content"]
            assert "done" in out and "CONTROL_SEEN" in out, out
            # The shop's code is in the image, root's and read-only; the catalogue and the goal are not.
            assert "FOUND" not in out and "LISTEN" not in out and "READ_ENVIRON" not in out and "OPENED_MEM" not in out, out
            # A buy by URL is a GET: the shop shows a page and records nothing.
            obs, _, terminated, _, _ = await env.astep(tool_message("goto", {"url": "http://webshop.test/buy?item=B0001AAAA"}))
            assert not terminated and "Not found" in obs[0]["content"]
            _, reward, terminated, _, info = await env.astep(tool_message("answer", {}))
            assert terminated and reward == 0.0 and not info["infra_failure"]
            assert info["verdict"]["messages"] == ["nothing was bought"]
        finally:
            await env.aclose()


async def test_a_purchase_ends_the_episode_and_a_wrong_item_scores_its_webshop_share_on_docker():
    async with SandboxPool(SandboxSpec(image="desktop"), size=1) as pool:
        env = gym.make("boxgym/Shop-v0", provider=pool).unwrapped
        try:
            obs, info = await env.areset(options={"task_id": "shop/d0/s4"})
            assert not info["infra_failure"], info["error"]
            request = info["metadata"]["request"]
            search = next(e for e in page_elements(obs[-1]["content"]) if e.role == "searchbox")
            obs, *_ = await env.astep(tool_message("type", {"id": search.id, "text": request["type"], "submit": True}))
            first = next(e for e in page_elements(obs[0]["content"]) if e.role == "link" and "/item/" in e.url)
            obs, *_ = await env.astep(tool_message("click", {"id": first.id}))
            buy = next(e for e in page_elements(obs[0]["content"]) if e.role == "button" and e.name == "Buy Now")
            _, reward, terminated, _, info = await env.astep(tool_message("click", {"id": buy.id}))
            assert terminated and info["end_reason"] == "env_terminated"
            parts = info["verdict"]["parts"]
            assert parts["r_type"] == 1.0 and parts["options"] == 0.0 and reward < 1.0 and parts["actions"] == 3
        finally:
            await env.aclose()
