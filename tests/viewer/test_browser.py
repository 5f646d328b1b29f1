"""``boxgym view`` in a real browser: Debian's Chromium, driven by Playwright, on a real demo run.

The run is the demo's (Docker, the gateway, the scripted engine) plus a resume of its SQL
episode from step 1 with a model that submits a wrong query, so that the side-by-side page has
a real divergence. Set ``BOXGYM_SCREENSHOTS=DIR`` to keep screenshots of the pages checked.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boxgym.trajectories import RunDir
from boxgym.trajectories import EpisodeStart, TrajectoryWriter

from ..replay.cli import demo, free_port, resume_wrong, serving
from .runs import step

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.docker,
    # CI (BOXGYM_REQUIRE_DOCKER=1, through run.sh, which installs chromium) fails rather than skips
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and os.environ.get("BOXGYM_REQUIRE_DOCKER") != "1",
        reason=f"no {CHROMIUM} (Debian's chromium package; run.sh installs it)",
    ),
]
playwright = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    tmp = tmp_path_factory.mktemp("view")
    run = demo(tmp / "demo")
    sql = next(e for e in RunDir(run).episodes() if e.env_id == "boxgym/SQL-v0")
    done = resume_wrong(run, sql.episode_id, tmp / "resumed", tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    return run, tmp / "resumed", sql.episode_id


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    profile = tempfile.mkdtemp(prefix="boxgym-chromium-")
    with playwright.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            viewport={"width": 1280, "height": 900},
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-sync"],  # fmt: skip
        )
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def shot(page: Any, name: str) -> None:
    where = os.environ.get("BOXGYM_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(where) / f"viewer-{name}.png"))


def test_the_viewer_shows_table_episode_tokens_and_diff(runs: tuple[Path, Path, str], browser: Any) -> None:
    run, resumed, sql_id = runs
    port = free_port()
    errors: list[str] = []
    started = time.monotonic()
    with serving("view", str(run), str(resumed), "--port", str(port), port=port):
        page = browser.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        base = f"http://127.0.0.1:{port}/"

        # the table: the demo's three episodes, sortable, a failed one two clicks away
        page.goto(base + "#/run/0")
        rows = page.locator("tr.episode-row")
        rows.first.wait_for()
        first_render = time.monotonic() - started
        assert rows.count() == 3
        assert sorted(page.locator("tr.episode-row td:nth-child(2)").all_inner_texts()) == [
            "boxgym/Code-v0", "boxgym/SQL-v0", "boxgym/Shell-v0"]  # fmt: skip
        page.click("th[data-sort=steps]")
        page.wait_for_function("location.hash.includes('sort=steps')")
        shot(page, "table")
        page.goto(base + "#/run/1")
        page.click("#failed-only")
        page.wait_for_function("location.hash.includes('failed=1')")
        page.locator("tr.episode-row.failed").first.wait_for()
        assert page.locator("tr.episode-row").count() == 1

        # one episode: title, steps, verdict, the replay that branched from it
        page.goto(base + f"#/run/0/episode/{sql_id}")
        page.locator("#episode-title").wait_for()
        assert page.inner_text("#episode-title") == sql_id
        assert page.locator(".step").count() == 2
        assert "passed" in page.inner_text("#verdict") and "execution match" in page.inner_text("#verdict")
        page.locator("#prompt .obs").first.wait_for()
        assert "SQLite" in page.inner_text("#prompt") or "SQL" in page.inner_text("#prompt")
        assert "replayed as" in page.inner_text("main")
        shot(page, "episode")

        # the token view: two calls, ROOT then CLEAN, tokens coloured by logprob, masks shown
        page.click("button[data-tab=tokens]")
        page.locator("#token-view .call").first.wait_for()
        calls = page.locator("#token-view .call")
        assert calls.count() == 2
        assert calls.nth(0).locator(".badge.prefix").inner_text() == "ROOT"
        assert calls.nth(1).locator(".badge.prefix").inner_text() == "CLEAN"
        tokens = calls.nth(0).locator(".tok.mask1")
        assert tokens.count() > 20
        assert "logprob -" in tokens.first.get_attribute("title")
        assert "background: hsl(" in tokens.first.get_attribute("style")
        assert "<tool_call>" in calls.nth(0).locator(".tokens").inner_text()
        shot(page, "tokens")

        # the resumed episode against its original: the first divergence is step 1
        resumed_id = next(RunDir(resumed).episodes()).episode_id
        page.goto(base + f"#/run/1/episode/{resumed_id}")
        page.click("#compare-origin")
        page.locator("#first-divergence").wait_for()
        assert "first divergence: step 1" in page.inner_text("#first-divergence")
        assert "SELECT 0" in page.inner_text("#first-divergence")
        assert page.locator(".diff-row.diverged").get_attribute("data-step") == "1"
        assert "shared" in page.locator(".diff-row[data-step='0']").get_attribute("class")
        shot(page, "diff")

        # live: an episode appended to the run shows up without a reload
        page.goto(base + "#/run/0")
        page.locator("tr.episode-row").first.wait_for()
        with TrajectoryWriter(run) as writer:
            writer.write(EpisodeStart("live-1", "boxgym/SQL-v0", "sql/live", time=time.time()))
            writer.write(step("live-1", 0, "still going"))
        page.locator("tr.episode-row[data-episode='live-1']").wait_for(timeout=15_000)
        assert page.locator("tr.episode-row").count() == 4
    assert errors == []
    print(f"first render of the table: {first_render:.2f}s after `boxgym view` started")
