"""``browser_step_p50_ms``: a click plus the new observation on MiniWoB++ click-button, and its baseline.

boxgym's step is one ``browser.click`` on the button the task asks for, through the tool server of
a desktop sandbox (Docker): the click, waiting for what it caused, and the pruned accessibility
tree with URL, title and tabs. Each step gets a fresh instance (``open_miniwob`` with the next
seed, not timed), since the right click ends the page's episode.

The baseline runs in the same run on the host:

* ``browsergym_step_p50_ms``: BrowserGym's own env (``browsergym/miniwob.click-button``,
  ``env.step("click('<bid>')")``) with Playwright pointed at Debian's Chromium, as made by
  default (it waits 0.5 s before observing), and ``browsergym_no_delay_step_p50_ms`` with that
  wait set to 0, when ``--browsergym-python`` names a Python that has browsergym-core and
  browsergym-miniwob (they pin an older Playwright than boxgym's, so they live in a virtual environment of their
  own: docs/browser.md says how);
* otherwise ``playwright_direct_step_p50_ms``: a bare Playwright click on the same button and a
  CDP accessibility snapshot (``Accessibility.getFullAXTree``), on the host, no sandbox.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import sys
import time
from typing import Any

CHROMIUM = "/usr/lib/chromium/chromium"


def _p50_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


def _target(tree: str, utterance: str) -> int:
    wanted = re.search(r'"(.+?)"', utterance)
    assert wanted is not None, utterance
    match = re.search(r"\[(\d+)\] button " + re.escape(json.dumps(wanted[1])), tree)
    assert match is not None, tree
    return int(match[1])


async def boxgym_steps(steps: int, image: str = "desktop") -> list[float]:
    from boxgym.sandboxes import SandboxPool, SandboxSpec

    times = []
    async with SandboxPool(SandboxSpec(image=image), size=1) as pool:
        sandbox = await pool.acquire()
        try:
            for seed in range(steps + 1):
                opened = await sandbox.call("browser.open_miniwob", {"task": "click-button", "seed": seed}, timeout=120)
                page = await sandbox.call("browser.observe", {})
                target = _target(page["tree"], opened["utterance"])
                start = time.perf_counter()
                after = await sandbox.call("browser.click", {"id": target})
                if seed:  # the first step warms up
                    times.append(time.perf_counter() - start)
                assert after["ok"] and after["task_done"], after
        finally:
            await sandbox.aclose()
    return times


def browsergym_steps(steps: int, python: str, delay_s: float | None = None) -> list[float]:
    """BrowserGym's steps as its env is made by default, or with ``pre_observation_delay=delay_s``."""
    import subprocess

    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "browsergym_step.py")
    argv = [python, script, str(steps), CHROMIUM, *([] if delay_s is None else [str(delay_s)])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"BrowserGym's baseline failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["step_s"]


async def playwright_direct_steps(steps: int) -> list[float]:
    import miniwob
    from playwright.async_api import async_playwright

    url = f"file://{os.path.dirname(miniwob.__file__)}/html/miniwob/click-button.html"
    times = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM)
        page = await browser.new_page()
        session = await page.context.new_cdp_session(page)
        for seed in range(steps + 1):
            await page.goto(url)
            await page.evaluate(f"() => {{ core.EPISODE_MAX_TIME = 1e9; Math.seedrandom({seed}); core.startEpisodeReal(); }}")
            wanted = re.search(r'"(.+?)"', await page.evaluate("() => core.getUtterance()"))
            start = time.perf_counter()
            await page.get_by_role("button", name=wanted[1], exact=True).first.click()
            await session.send("Accessibility.getFullAXTree")
            if seed:
                times.append(time.perf_counter() - start)
        await browser.close()
    return times


async def measure(steps: int, browsergym_python: str | None, image: str = "desktop") -> dict[str, Any]:
    ours = _p50_ms(await boxgym_steps(steps, image))
    result: dict[str, Any] = {"browser_step_p50_ms": ours, "browser_steps": steps}
    if browsergym_python:
        base = _p50_ms(await asyncio.to_thread(browsergym_steps, steps, browsergym_python))
        # BrowserGym waits 0.5 s before every observation by default; without that wait, what is
        # left is the work of the step itself.
        bare = _p50_ms(await asyncio.to_thread(browsergym_steps, steps, browsergym_python, 0.0))
        result |= {
            "browsergym_step_p50_ms": base,
            "browser_step_speedup": round(base / ours, 1),
            "browsergym_no_delay_step_p50_ms": bare,
            "browser_step_speedup_no_delay": round(bare / ours, 1),
        }
    else:
        base = _p50_ms(await playwright_direct_steps(steps))
        result |= {"playwright_direct_step_p50_ms": base, "browser_step_speedup": round(base / ours, 2)}
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))))
