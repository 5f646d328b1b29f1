"""The browser benchmark's report: boxgym's step on Docker and its baseline, measured in one run."""

from __future__ import annotations

import pytest

from boxgym.bench import browser

pytestmark = [pytest.mark.docker, pytest.mark.browser, pytest.mark.slow]


async def test_a_short_run_reports_boxgyms_step_against_playwright_on_the_host() -> None:
    # Every step asserts that the click ended the page's episode, so a figure means a solved task.
    report = await browser.measure(3, None)
    assert set(report) == {"browser_step_p50_ms", "browser_steps", "playwright_direct_step_p50_ms", "browser_step_speedup"}
    assert report["browser_steps"] == 3
    assert report["browser_step_p50_ms"] > 0 and report["playwright_direct_step_p50_ms"] > 0
    assert report["browser_step_speedup"] == round(report["playwright_direct_step_p50_ms"] / report["browser_step_p50_ms"], 2)
