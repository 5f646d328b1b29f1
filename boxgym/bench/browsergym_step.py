"""BrowserGym's own MiniWoB++ env on the host: the baseline of ``browser_step_p50_ms``.

Run by :mod:`boxgym.bench.browser` with the Python of a separate virtual environment that has
``browsergym-core``, ``browsergym-miniwob`` and ``miniwob`` (BrowserGym pins an older Playwright
than boxgym's). Imports nothing of boxgym. Prints one JSON object: the step times in seconds.

A step is what BrowserGym's ``env.step`` does for ``click('<bid>')`` on the button the task asks
for: the click, its wait before observing (``pre_observation_delay``, 0.5 s by default: the
third argument changes it), then its whole observation (accessibility tree, DOM snapshot,
screenshot).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time


def _point_playwright_at(chromium: str) -> str:
    """BrowserGym launches Playwright's own Chromium build (its chat window ignores the launch
    options), which cannot be downloaded here: a browsers directory whose build is Debian's."""
    import tempfile

    import playwright

    with open(os.path.join(os.path.dirname(playwright.__file__), "driver", "package", "browsers.json")) as fh:
        revision = next(b["revision"] for b in json.load(fh)["browsers"] if b["name"] == "chromium")
    root = tempfile.mkdtemp(prefix="boxgym-pw-browsers-")
    os.makedirs(os.path.join(root, f"chromium-{revision}", "chrome-linux"))
    os.symlink(chromium, os.path.join(root, f"chromium-{revision}", "chrome-linux", "chrome"))
    os.environ["PLAYWRIGHT_BROWSERS_PATH"] = root
    return root


def main(steps: int, chromium: str, delay_s: float | None = None) -> None:
    browsers = _point_playwright_at(chromium)
    import gymnasium as gym
    import browsergym.miniwob  # noqa: F401 - registers browsergym/miniwob.*
    import miniwob
    from browsergym.utils.obs import flatten_axtree_to_str

    html = os.path.join(os.path.dirname(miniwob.__file__), "html", "miniwob")
    os.environ.setdefault("MINIWOB_URL", f"file://{html}/")
    options = {} if delay_s is None else {"pre_observation_delay": delay_s}
    env = gym.make("browsergym/miniwob.click-button", pw_chromium_kwargs={"executable_path": chromium}, **options)
    times = []
    try:
        for seed in range(steps + 1):
            obs, _ = env.reset(seed=seed)
            wanted = re.search(r'"(.+?)"', obs["goal"])
            tree = flatten_axtree_to_str(obs["axtree_object"])
            bid = re.search(r"\[(\w+)\] button '" + re.escape(wanted[1]) + "'", tree)
            start = time.perf_counter()
            _, reward, *_ = env.step(f"click('{bid[1]}')")
            if seed:  # the first step warms up
                times.append(time.perf_counter() - start)
            assert reward > 0, (obs["goal"], tree)
    finally:
        env.close()
        shutil.rmtree(browsers, ignore_errors=True)
    print(json.dumps({"step_s": times}))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else None)
