"""``boxgym bench sandbox --ipython-only``: the IPython figures, each with its baseline from the same run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("ipykernel")

KEYS = {"ipython_exec_p50_ms", "jupyter_direct_p50_ms", "ipython_overhead_ms", "desktop_ready_p50_ms",
        "desktop_kernel_ready_p50_ms", "slim_acquire_p50_ms"}  # fmt: skip


@pytest.mark.docker
def test_a_small_run_reports_each_figure_with_its_baseline() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "boxgym", "bench", "sandbox", "--ipython-only", "--json", "--cells", "20",
         "--ready-acquires", "2"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert KEYS <= report.keys() and "cold_start_p50_ms" not in report  # only the IPython part ran
    assert all(report[key] > 0 for key in KEYS - {"ipython_overhead_ms"})
    assert report["ipython_overhead_ms"] == pytest.approx(report["ipython_exec_p50_ms"] - report["jupyter_direct_p50_ms"], abs=0.01)
