"""``boxgym bench replay`` at a small size: every phase runs and reports its figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.docker
@pytest.mark.slow
def test_a_small_replay_benchmark_reports_every_phase():
    out = subprocess.run(
        [sys.executable, "-m", "boxgym", "bench", "replay", "--json", "--episodes", "8", "--redrive-episodes", "4",
         "--concurrency", "4", "--viewer-sizes", "20"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["original"]["ok"] == 8 and report["rescore"]["rescored"] == 8, report
    assert report["redrive"]["identical"] == 4 and report["redrive"]["reward_reproduced"] == 4, report
    assert report["redrive_over_original"] > 0 and [v["episodes"] for v in report["viewer"]] == [20]
