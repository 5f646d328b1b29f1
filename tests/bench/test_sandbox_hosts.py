"""The sandbox benchmark's churn spread over two Docker hosts: the spread phase creates sandboxes on
the second engine, the figures come from one run, and a host that cannot work stops it before it
measures anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.docker


def bench(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "boxgym", "bench", "sandbox", "--json", "--image", os.environ.get("BOXGYM_TEST_IMAGE", "slim"),
         "--execs", "5", "--docker-execs", "1", "--acquires", "1", "--cold-starts", "1", "--churn-seconds", "2",
         "--concurrency", "2", *flags],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def test_the_churn_spread_over_two_hosts_creates_on_both_and_has_its_baseline(second_host):
    since = int(time.time()) - 1
    out = bench("--hosts", second_host.unix.url)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["hosts"][1] == second_host.unix.url and len(report["hosts"]) == 2
    assert report["hosts_churn_per_s"] > 0 and report["hosts_churn_baseline_per_s"] > 0
    assert report["hosts_churn_ratio"] == pytest.approx(
        report["hosts_churn_per_s"] / report["hosts_churn_baseline_per_s"], abs=0.02
    )
    # Only the spread phase uses the second engine: its daemon saw this session's sandboxes created.
    events = second_host.docker(
        "events", "--since", str(since), "--until", str(int(time.time()) + 1),
        "--filter", "event=create", "--filter", f"label=boxgym.session={os.environ['BOXGYM_SESSION']}",
        "--format", "{{.Actor.ID}}",
    )  # fmt: skip
    assert events.returncode == 0, events.stderr
    assert len(events.stdout.split()) >= 2  # two workers on it, each at least one cycle in 2 s


def test_a_host_that_cannot_work_stops_the_run_before_it_measures(tmp_path):
    out = bench("--hosts", "tcp://192.0.2.1:2376", "--tls-dir", str(tmp_path))  # TEST-NET-1: never this machine
    assert out.returncode == 1
    assert "is another machine" in out.stderr
    assert "exec:" not in out.stderr  # refused before the first phase
