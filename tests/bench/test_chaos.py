"""Chaos: episodes through the rollout manager while sandboxes, tool servers and the gateway die.

The slow test runs 500 episodes, as ``boxgym bench chaos`` does by default (measured: about
2 minutes on this project's 2-core machines); the quick one checks the command's report.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from boxgym.bench.chaos import ChaosConfig, run_chaos

KEYS = {"episodes", "faults", "episodes_lost", "containers_left", "recovery_s", "gateway_recovery_s", "outcomes",
        "counted_twice", "misattributed", "unparsable_lines", "trajectory_lines", "retries"}  # fmt: skip


@pytest.mark.docker
@pytest.mark.slow
async def test_every_episode_ends_once_as_success_agent_failure_or_retried_infrastructure_failure(tmp_path):
    report = await run_chaos(ChaosConfig(episodes=500), tmp_path)
    assert report.problems == [], report.problems
    assert report.episodes_lost == 0 and report.counted_twice == 0 and report.misattributed == 0
    assert report.containers_left == 0 and report.unparsable_lines == 0 and report.trajectory_lines > 500
    assert sum(report.outcomes.values()) == 500 and set(report.outcomes) <= {"success", "agent_failure", "infra_retried"}
    assert report.outcomes["agent_failure"] > 0  # the agents that wrecked their sandboxes, scored and not retried
    assert report.faults["docker_kill"] and report.faults["server_kill"] and report.faults["gateway_restart"]
    hits = report.faults["docker_kill"] + report.faults["server_kill"] - report.faults_absorbed
    assert report.retries >= hits and report.recovery_s["n"] >= hits
    assert report.recovery_s["max"] < 30 and report.gateway_recovery_s["max"] < 30


@pytest.mark.docker
def test_the_chaos_benchmark_reports_every_figure():
    out = subprocess.run(
        [sys.executable, "-m", "boxgym", "bench", "chaos", "--json", "--episodes", "12", "--fault-interval", "0.3",
         "--gateway-every", "4"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert out.returncode == 0, out.stderr[-2000:]
    assert KEYS <= report.keys()
    assert report["episodes"] == 12 and report["episodes_lost"] == 0 and report["containers_left"] == 0
    assert report["faults"].get("gateway_restart", 0) >= 1
