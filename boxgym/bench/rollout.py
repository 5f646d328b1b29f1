"""Rollout manager overhead against bare asyncio: N concurrent episodes of S steps on a null env.

Side by side, in one process and one event loop each: (a) bare asyncio, N tasks
each awaiting ``asyncio.sleep(0)`` once as its "policy call" and once as its
"env step" per step; (b) the rollout manager running N episodes on
:class:`~boxgym.rollout.NullEnv` with :class:`~boxgym.rollout.InstantPolicy`
(each yields once per call, through the same ``asyncio.sleep(0)``), with its
normal bookkeeping (episode state, metrics, the results stream), once with
trajectory recording off and once on (to a temporary directory). Every
measurement is repeated ``--repeat`` times, interleaved, and the best of each
kind is kept: on a shared machine the best run is the one least disturbed.
``efficiency_cpu`` is the same ratio on process CPU time, less sensitive to
other processes on the machine.
The last line with ``--json`` is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import resource
import sys
import tempfile
import time
from typing import Any

DEFAULT_SCALING = "1000,10000,100000"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, default=100_000, help="concurrent episodes N (default 100000)")
    parser.add_argument("--steps", type=int, default=10, help="steps per episode S (default 10)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement; the best is kept")
    parser.add_argument(
        "--gc-threshold",
        default=None,
        help="gc.set_threshold for the whole process, bare and manager alike, e.g. 10000,10,10 "
        "(default: Python's own). At 100k episodes the collector's full passes over every "
        "suspended episode are a large share of both sides' time.",
    )
    parser.add_argument(
        "--no-gc-pause",
        action="store_true",
        help="run the manager with RolloutConfig(gc_pause_admission=False): the collector stays on while "
        "episodes are admitted (to see what that pause is worth)",
    )
    parser.add_argument(
        "--ray-actors",
        default=None,
        metavar="1,2",
        help="instead: the same null-env run on Ray actors, once per count, reporting ray_scaling "
        "(throughput of the largest count over the smallest's, same run; needs the ray extra)",
    )
    parser.add_argument(
        "--scaling",
        default=DEFAULT_SCALING,
        help=f"comma-separated concurrencies for the scaling table, recording off ('' to skip; default {DEFAULT_SCALING})",
    )


async def _bare(n: int, steps: int) -> tuple[float, float]:
    async def episode() -> None:
        for _ in range(steps):
            await asyncio.sleep(0)  # the "policy call"
            await asyncio.sleep(0)  # the "env step"

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(episode() for _ in range(n)))
    return time.perf_counter() - wall, time.process_time() - cpu


async def _manager(n: int, steps: int, run_dir: str | None, gc_pause: bool = True) -> tuple[float, float, int, int]:
    from boxgym.rollout import InstantPolicy, Concurrency, NullEnv, RolloutConfig, RolloutManager, TaskRef

    # Every bound at N so that all N episodes are in flight at once (the concurrency measured);
    # the stage limiters are still taken and released on every call.
    config = RolloutConfig(concurrency=Concurrency(episodes=n, policy_calls=n, results_buffer=n), gc_pause_admission=gc_pause)
    done = failed = 0
    async with RolloutManager(
        NullEnv.factory(steps), InstantPolicy(), config=config, run_dir=run_dir, progress=False
    ) as manager:
        wall, cpu = time.perf_counter(), time.process_time()
        async for result in manager.run(TaskRef(f"t{i}") for i in range(n)):
            done += 1
            failed += not result.ok
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if manager.metrics.steps != n * steps:
            failed += 1
    return wall, cpu, done, failed


def _measure(n: int, steps: int, repeat: int, recording: bool, gc_pause: bool = True) -> dict[str, Any]:
    best: dict[str, Any] = {"bare": None, "manager": None, "recording": None}
    failed = 0
    for _ in range(repeat):
        kinds = ["bare", "manager"] + (["recording"] if recording else [])
        for kind in kinds:
            gc.collect()
            if kind == "bare":
                wall, cpu = asyncio.run(_bare(n, steps))
            elif kind == "manager":
                wall, cpu, done, bad = asyncio.run(_manager(n, steps, None, gc_pause))
                failed += bad + (n - done)
            else:
                with tempfile.TemporaryDirectory(prefix="boxgym-bench-rollout-") as run_dir:
                    wall, cpu, done, bad = asyncio.run(_manager(n, steps, run_dir, gc_pause))
                failed += bad + (n - done)
            if best[kind] is None or wall < best[kind][0]:
                best[kind] = (wall, cpu)
            if best.get(kind + "_cpu") is None or cpu < best[kind + "_cpu"]:
                best[kind + "_cpu"] = cpu
    total = n * steps
    out: dict[str, Any] = {
        "concurrency": n,
        "bare_steps_per_s": round(total / best["bare"][0]),
        "manager_steps_per_s": round(total / best["manager"][0]),
        "efficiency": round(best["bare"][0] / best["manager"][0], 3),
        "efficiency_cpu": round(best["bare_cpu"] / best["manager_cpu"], 3),
        "failed": failed,
    }
    if recording:
        out["manager_recording_steps_per_s"] = round(total / best["recording"][0])
        out["efficiency_recording"] = round(best["bare"][0] / best["recording"][0], 3)
        out["efficiency_recording_cpu"] = round(best["bare_cpu"] / best["recording_cpu"], 3)
    return out


def run(args: argparse.Namespace) -> int:
    if args.ray_actors:
        from . import rollout_ray

        return rollout_ray.run(args)
    n, steps, repeat = args.episodes, args.steps, max(1, args.repeat)
    if args.gc_threshold:
        gc.set_threshold(*(int(x) for x in args.gc_threshold.split(",")))
    scaling_sizes = [int(x) for x in args.scaling.split(",") if x.strip()] if args.scaling else []
    scaling = []
    for size in scaling_sizes:
        if size == n:
            continue  # measured below, with recording
        row = _measure(size, steps, repeat, recording=False, gc_pause=not args.no_gc_pause)
        scaling.append(row)
        print(
            f"N={size:>7,}: bare {row['bare_steps_per_s']:>9,} steps/s, manager {row['manager_steps_per_s']:>9,}"
            f" steps/s, efficiency {row['efficiency']:.2f} (cpu {row['efficiency_cpu']:.2f})",
            file=sys.stderr,
        )
    main = _measure(n, steps, repeat, recording=True, gc_pause=not args.no_gc_pause)
    print(
        f"N={n:>7,}: bare {main['bare_steps_per_s']:>9,} steps/s, manager {main['manager_steps_per_s']:>9,} steps/s"
        f" (efficiency {main['efficiency']:.2f}), recording {main['manager_recording_steps_per_s']:>9,} steps/s"
        f" (efficiency {main['efficiency_recording']:.2f})",
        file=sys.stderr,
    )
    scaling.append({k: main[k] for k in ("concurrency", "bare_steps_per_s", "manager_steps_per_s", "efficiency", "efficiency_cpu", "failed")})
    scaling.sort(key=lambda row: row["concurrency"])
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    report = {
        "episodes": n,
        "concurrency": n,
        "steps": steps,
        "total_steps": n * steps,
        "bare_steps_per_s": main["bare_steps_per_s"],
        "manager_steps_per_s": main["manager_steps_per_s"],
        "manager_recording_steps_per_s": main["manager_recording_steps_per_s"],
        "efficiency": main["efficiency"],
        "efficiency_recording": main["efficiency_recording"],
        "efficiency_cpu": main["efficiency_cpu"],
        "efficiency_recording_cpu": main["efficiency_recording_cpu"],
        "peak_rss_mb": round(peak_rss_mb, 1),
        "failed": main["failed"] + sum(row["failed"] for row in scaling if row["concurrency"] != n),
        "repeat": repeat,
        "scaling": scaling,
        "python": platform.python_version(),
        "gc_threshold": list(gc.get_threshold()),
        "gc_pause_admission": not args.no_gc_pause,
    }
    ok = (
        report["efficiency"] >= 0.5
        and report["efficiency_recording"] >= 0.25
        and report["peak_rss_mb"] <= 3000
        and report["failed"] == 0
    )
    report["targets_met"] = ok
    if args.json:
        print(json.dumps(report))
    else:
        print(json.dumps(report, indent=2))
    return 0 if report["failed"] == 0 else 1
