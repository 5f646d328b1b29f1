"""The benchmark runs end to end on a small budget and reports what the issue asks for."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

KEYS = {
    "direct_p50_ms", "gateway_p50_ms", "added_p50_ms", "added_p99_ms", "added_stream_p50_ms", "direct_rps",
    "gateway_rps", "rps_ratio", "gateway_cpu_ms_per_req", "records_written", "records_expected",
    "litellm_added_p50_ms", "litellm_cpu_ms_per_req", "store_bytes_ratio", "workers_scaling", "workers_rps",
    "workers_cpu_ms_per_req", "handoff_cpu_ms_per_req", "hop_cpu_ms_per_req",
}  # fmt: skip


@pytest.mark.slow
def test_bench_gateway_json_line() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "boxgym", "bench", "gateway", "--json", "--no-litellm",
         "--requests", "40", "--throughput-requests", "200", "--concurrency", "8", "--blocks", "2",
         "--workers-requests", "200", "--workers-rounds", "1"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert KEYS <= set(result)
    assert result["records_written"] == result["records_expected"] == 200 + 2 * 40 + 200
    assert result["litellm_added_p50_ms"] is None and result["litellm_cpu_ms_per_req"] is None
    assert result["gateway_cpu_ms_per_req"] > 0 and result["direct_rps"] > 0 and result["gateway_rps"] > 0
    assert result["store_turns"] == 100 and 1 < result["store_bytes_ratio"] <= 3  # linear, not quadratic
    assert result["workers_scaling"] > 0 and set(result["workers_rps"]) == set(result["workers_cpu_ms_per_req"]) == {"1", "2"}
    assert result["handoff_cpu_ms_per_req"] > 0 and result["hop_cpu_ms_per_req"] > 0
