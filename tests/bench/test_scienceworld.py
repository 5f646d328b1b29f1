"""``boxgym bench sandbox --scienceworld``'s figures: every one measured, each beside its
same-run baseline from a plain process in the same container, and no sandbox left behind."""

from __future__ import annotations

import pytest

from boxgym.bench.scienceworld import measure

pytestmark = [pytest.mark.docker, pytest.mark.slow]  # three JVM starts: tens of seconds

KEYS = {
    "scienceworld_start_p50_s", "scienceworld_start_direct_s", "scienceworld_reset_p50_ms",
    "scienceworld_step_p50_ms", "scienceworld_step_direct_p50_ms", "scienceworld_step_package_p50_ms",
    "scienceworld_valid_actions_p50_ms",
}


@pytest.mark.timeout(600)
async def test_a_small_run_reports_every_figure_with_its_baseline() -> None:
    report = await measure("scienceworld", starts=1, resets=2, steps=5)
    assert report.keys() == KEYS
    assert all(isinstance(value, float) and value > 0 for value in report.values()), report
    # The program's start includes the JVM's, which the baseline measures alone.
    assert report["scienceworld_start_p50_s"] > 0.5 * report["scienceworld_start_direct_s"]
