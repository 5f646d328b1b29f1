"""``boxgym bench rollout --ray-actors 1,2``: the null-env run of the rollout benchmark on Ray actors.

N episodes of S steps (:class:`~boxgym.rollout.NullEnv`, :class:`~boxgym.rollout.InstantPolicy`),
spread over A actors of a local Ray cluster (or ``RAY_ADDRESS``'s), each actor's manager
admitting N/A at once; the driver streams every result back, as a trainer's loop would.
Throughput is N*S over the time from the first task sent to the last result received
(actors are started, and warmed up with one episode, before). Every actor count is measured
``--repeat`` times, interleaved, and the best kept. ``ray_scaling`` is the throughput of the
largest count over the smallest's, in the same run. The CPU the driver spends per result and
the actors per step are measured too (the actors' only when on this machine): on a machine
with as many cores as actors, the driver shares them, and on a busy one the wall-clock
figures say more about the other work than about boxgym.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import sys
import time
from typing import Any

SCALING_TARGET = 1.6


async def _null_manager(episodes: int, steps: int, shard: Any, resources: Any) -> Any:
    from boxgym.rollout import Concurrency, InstantPolicy, NullEnv, RolloutConfig, RolloutManager

    config = RolloutConfig(concurrency=Concurrency(episodes=episodes, policy_calls=episodes, results_buffer=episodes))
    return RolloutManager(NullEnv.factory(steps), InstantPolicy(), config=config, name=shard.name, progress=False)


def _cpu_seconds(pid: int) -> float:
    """A local process's user + system CPU time (0 for a process on another node)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(actors: int, n: int, steps: int) -> dict[str, Any]:
    from boxgym.rollout import TaskRef
    from boxgym.rollout.ray import Placement, RayRolloutManager

    build = functools.partial(_null_manager, math.ceil(n / actors), steps)
    async with RayRolloutManager(build, placement=Placement(actors=actors, num_cpus=1), progress=False) as manager:
        await manager.collect([TaskRef(f"warm{i}") for i in range(actors * 4)])
        before = manager.metrics.steps
        pids = [a.pid for a in manager.actors]
        actor_cpu = sum(_cpu_seconds(pid) for pid in pids)
        done = failed = 0
        wall, cpu = time.perf_counter(), time.process_time()
        async for result in manager.run(TaskRef(f"t{i}") for i in range(n)):
            done += 1
            failed += not result.ok
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        actor_cpu = sum(_cpu_seconds(pid) for pid in pids) - actor_cpu
        taken = manager.metrics.steps - before
    failed += (n - done) + (taken != n * steps)
    return {"wall": wall, "driver_cpu": cpu, "actor_cpu": actor_cpu, "failed": failed}


def run(args: argparse.Namespace) -> int:
    from boxgym.rollout.ray import connect

    counts = sorted({int(x) for x in args.ray_actors.split(",") if x.strip()})
    if not counts or counts[0] < 1:
        print("--ray-actors takes actor counts, e.g. 1,2", file=sys.stderr)
        return 2
    n, steps, repeat = args.episodes, args.steps, max(1, args.repeat)
    connect(num_cpus=max(counts))
    best: dict[int, dict[str, Any]] = {}
    failed = 0
    for _ in range(repeat):
        for actors in counts:
            row = asyncio.run(_measure(actors, n, steps))
            failed += row["failed"]
            if actors not in best or row["wall"] < best[actors]["wall"]:
                best[actors] = row
    rows = []
    for actors in counts:
        row = best[actors]
        rows.append({
            "actors": actors,
            "steps_per_s": round(n * steps / row["wall"]),
            "episodes_per_s": round(n / row["wall"]),
            "driver_cpu_per_result_us": round(row["driver_cpu"] / n * 1e6, 1),
            "actors_cpu_per_step_us": round(row["actor_cpu"] / (n * steps) * 1e6, 2),
        })  # fmt: skip
        print(
            f"{actors} actor(s): {rows[-1]['steps_per_s']:>9,} steps/s, {rows[-1]['episodes_per_s']:>7,} episodes/s"
            f" (CPU: driver {rows[-1]['driver_cpu_per_result_us']} us per result,"
            f" actors {rows[-1]['actors_cpu_per_step_us']} us per step)",
            file=sys.stderr,
        )
    scaling = round(rows[-1]["steps_per_s"] / rows[0]["steps_per_s"], 3)
    report = {
        "episodes": n,
        "steps": steps,
        "total_steps": n * steps,
        "ray_actors": counts,
        "ray": rows,
        "ray_scaling": scaling,
        "ray_scaling_of": f"{counts[-1]} actors over {counts[0]}",
        "failed": failed,
        "repeat": repeat,
    }
    report["targets_met"] = failed == 0 and (len(counts) < 2 or scaling >= SCALING_TARGET)
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0 if failed == 0 else 1
