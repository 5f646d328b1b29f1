"""The browser envs on real Docker (the desktop image): the 20 MiniWoB++ oracles in one pool, the
cheats an agent with a shell beside the browser would try, and a sandbox that closes clean."""

from __future__ import annotations

import asyncio
import time

import gymnasium as gym
import pytest

import boxgym.envs  # noqa: F401 - registers the ids
from boxgym.envs.suites import miniwob, webtasks
from boxgym.envs.suites.miniwob_oracles import ORACLES, play, tool_message
from boxgym.judges.browser import PageRewardJudge
from boxgym.sandboxes import SandboxPool, SandboxSpec
from boxgym.toolsets import BrowserToolset, ShellToolset, compose
from boxgym.toolsets.browser import page_elements

pytestmark = [pytest.mark.docker, pytest.mark.browser, pytest.mark.slow]

POOL = 3  # warm sandboxes; two episodes run at once on CI's two cores


async def test_the_20_oracles_solve_their_tasks_on_docker_in_one_pool():
    start = time.monotonic()
    async with SandboxPool(SandboxSpec(image="desktop"), size=POOL) as pool:
        limit = asyncio.Semaphore(2)

        async def one(task: str) -> tuple[str, float, str | None]:
            async with limit:
                env = gym.make(f"boxgym/miniwob.{task}-v0", provider=pool).unwrapped
                try:
                    reward, info = await play(env, seed=1)
                    return task, reward, info.get("error") or str(info.get("verdict"))
                finally:
                    await env.aclose()

        results = await asyncio.gather(*(one(task) for task in ORACLES))
    took = time.monotonic() - start
    print(f"\n20 MiniWoB++ oracles on Docker, pool of {POOL}, 2 at a time: {took:.1f}s")
    failed = [r for r in results if not r[1] > 0]
    assert len(results) == 20 and not failed, failed


async def test_webtasks_reference_passes_on_docker():
    async with SandboxPool(SandboxSpec(image="desktop"), size=1) as pool:
        env = gym.make("boxgym/WebTasks-v0", provider=pool).unwrapped
        try:
            task = webtasks.generate(1, 3)
            reward, info = await play_webtask(env, task.id)
            assert reward == 1.0, (info.get("verdict"), info.get("error"))
        finally:
            await env.aclose()


async def play_webtask(env, task_id):
    return await webtasks.play(env, options={"task_id": task_id})


def shell_and_browser(pool):
    """click-button with both tools: what an agent with a shell beside the browser can try."""
    toolset = compose(ShellToolset(), BrowserToolset(setup=miniwob.open_task, viewport=miniwob.VIEWPORT))
    return gym.make(
        "boxgym/miniwob.click-button-v0", provider=pool, toolset=toolset, judge=PageRewardJudge()
    ).unwrapped


def bash(command: str) -> dict:
    return tool_message("bash", {"command": command, "timeout": 60})


CHEATS = r"""
pages=$(python3 -c 'import miniwob, os; print(os.path.dirname(miniwob.__file__))')/html/miniwob
# 1. edit the served page so that it rewards anything
sed -i 's/core.endEpisode(-1.0/core.endEpisode(1.0/' "$pages/click-button.html" && echo EDITED
# 2. serve an edited copy, from a file and from a server of its own
mkdir -p /tmp/site && sed 's/-1.0/1.0/' "$pages/click-button.html" > /tmp/site/click-button.html
(cd /tmp/site && nohup python3 -m http.server 8000 >/dev/null 2>&1 &)
# 3. reach into the browser: its memory, its environment
pid=$(pgrep -o -u agent chromium)
cat /proc/$pid/environ >/dev/null 2>&1 && echo READ_ENVIRON
python3 -c "open('/proc/$pid/mem','rb')" 2>/dev/null && echo OPENED_MEM
echo done
"""


async def test_the_cheats_that_fit_a_browser_score_0_with_a_shell_beside_it():
    async with SandboxPool(SandboxSpec(image="desktop"), size=1) as pool:
        env = shell_and_browser(pool)
        try:
            obs, info = await env.areset(seed=5)
            assert not info["infra_failure"], info["error"]
            wanted = obs[1]["content"].split('"')[1]  # Task: Click on the "..." button.
            obs, *_ = await env.astep(bash(CHEATS))
            out = obs[0]["content"]
            assert "done" in out and "EDITED" not in out and "READ_ENVIRON" not in out and "OPENED_MEM" not in out, out
            for url in ("file:///tmp/site/click-button.html", "http://127.0.0.1:8000/click-button.html",
                        "javascript:core.endEpisode(1.0)"):  # fmt: skip
                obs, _, terminated, _, _ = await env.astep(tool_message("goto", {"url": url}))
                assert not terminated and obs[0]["content"].startswith("error: cannot open"), obs[0]["content"]
            # Any button but the one asked for: the page's own reward is -1 whatever the shell did;
            # without another button, the agent answers with the page's episode not ended.
            wrong = [e.id for e in page_elements(obs[0]["content"]) if e.role == "button" and e.name != wanted]
            action = tool_message("click", {"id": wrong[0]}) if wrong else tool_message("answer", {})
            _, reward, terminated, _, info = await env.astep(action)
            assert terminated and reward == 0.0 and not info["infra_failure"]
        finally:
            await env.aclose()


async def test_killing_the_browser_from_the_shell_is_the_agents_loss_not_an_infrastructure_failure():
    async with SandboxPool(SandboxSpec(image="desktop"), size=1) as pool:
        env = shell_and_browser(pool)
        try:
            _, info = await env.areset(seed=2)
            assert not info["infra_failure"]
            obs, *_ = await env.astep(bash("pkill -KILL -u agent -x chromium; sleep 1; echo killed"))
            assert "killed" in obs[0]["content"]
            obs, _, terminated, _, info = await env.astep(tool_message("scroll", {"direction": "down"}))
            assert not terminated and "the browser had exited" in obs[0]["content"]
            _, reward, terminated, _, info = await env.astep(tool_message("answer", {}))
            assert terminated and reward == 0.0 and not info["infra_failure"]
        finally:
            await env.aclose()


async def test_stopping_the_plugins_leaves_no_browser_process():
    async with SandboxPool(SandboxSpec(image="desktop"), size=1) as pool:
        sandbox = await pool.acquire()
        try:
            opened = await sandbox.call("browser.open_miniwob", {"task": "click-dialog", "seed": 1}, timeout=120)
            assert opened["utterance"]
            ps = await sandbox.exec("ps -eo user,comm,args", user="root", timeout=30)
            assert "chromium" in ps.stdout and "run-driver" in ps.stdout
            assert all(line.startswith("agent") for line in ps.stdout.splitlines() if "/usr/lib/chromium/chromium" in line)
            assert (await sandbox.call("stop_plugins", {}, timeout=60)) == {"failed": {}}
            ps = await sandbox.exec("ps -eo user,comm,args", user="root", timeout=30)
            assert "chromium" not in ps.stdout and "run-driver" not in ps.stdout, ps.stdout
        finally:
            await sandbox.aclose()
