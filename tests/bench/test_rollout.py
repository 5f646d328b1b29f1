"""The rollout benchmark's report: every field the issue names, the same run for both sides."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

KEYS = {"episodes", "concurrency", "steps", "bare_steps_per_s", "manager_steps_per_s", "efficiency",
        "efficiency_recording", "peak_rss_mb", "failed", "scaling", "gc_pause_admission"}


@pytest.mark.parametrize("flags", [[], ["--no-gc-pause"]])
def test_a_small_run_reports_every_figure_and_no_failure(flags: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "boxgym", "bench", "rollout", "--json", "--episodes", "300", "--steps", "3",
         "--repeat", "1", "--scaling", "100", *flags],
        capture_output=True, text=True, timeout=120, check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert KEYS <= report.keys()
    assert report["episodes"] == report["concurrency"] == 300 and report["steps"] == 3
    assert report["failed"] == 0
    assert report["gc_pause_admission"] is (not flags)
    assert [row["concurrency"] for row in report["scaling"]] == [100, 300]
    assert 0 < report["efficiency"] and 0 < report["efficiency_recording"] <= report["efficiency"] * 1.5


def test_the_ray_run_reports_its_scaling_from_one_run() -> None:
    pytest.importorskip("ray")
    out = subprocess.run(
        [sys.executable, "-m", "boxgym", "bench", "rollout", "--json", "--ray-actors", "1,2", "--episodes", "200",
         "--steps", "3", "--repeat", "1"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["ray_actors"] == [1, 2] and [row["actors"] for row in report["ray"]] == [1, 2]
    assert report["failed"] == 0 and report["total_steps"] == 600
    assert report["ray_scaling"] == round(report["ray"][1]["steps_per_s"] / report["ray"][0]["steps_per_s"], 3)
