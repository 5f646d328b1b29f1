"""The pixel-only solver of ``boxgym/Vision-v0`` on real sandboxes: its mean reward per level and kind.

Each episode is played through the env as an agent would: one ``python`` call whose cell is
:func:`~boxgym.envs.suites.vision_solver.solver_cell` (NumPy over ``image.png`` in the
sandbox's kernel), then ``submit`` with the answer the cell printed, or with nothing when it
printed none (the cell raised). The reward is the env's, from the visual judges::

    python -m boxgym.bench.vision --levels 0 1 --tasks 60 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

__all__ = ["main", "play", "solve_episode"]


async def solve_episode(env: Any, seed: int, level: int, task_id: str | None = None) -> tuple[str, float | None]:
    """Play one episode with the solver (the task ``task_id``, else one drawn for ``seed`` at ``level``):
    the task's kind and the reward, None on an infrastructure failure."""
    from ..envs.suites.vision_solver import read_answer, solver_cell
    from ..toolsets import ToolCall

    _, info = await env.areset(seed=seed, options={"task_id": task_id} if task_id else {"difficulty": level})
    task = env.tasks.get(info["task_id"])
    if info["infra_failure"]:
        return task.metadata["kind"], None
    cell = ToolCall("solve", "python", {"code": solver_cell(task.metadata)})
    obs, _, _, _, info = await env.astep({"role": "assistant", "content": "", "tool_calls": [cell.to_openai()]})
    answer = read_answer(str(obs[0].get("content", "")))
    submit = ToolCall("submit", "submit", {} if answer is None else {"answer": answer})
    _, reward, _, _, info = await env.astep({"role": "assistant", "content": "", "tool_calls": [submit.to_openai()]})
    return task.metadata["kind"], None if info["infra_failure"] else float(reward)


async def play(levels: list[int], tasks: int, workers: int, first_seed: int = 0) -> dict[str, Any]:
    import gymnasium as gym

    import boxgym.envs  # noqa: F401 - registers the ids

    jobs = [(first_seed + i, level) for level in levels for i in range(tasks)]
    results: dict[int, list[tuple[str, float | None]]] = {level: [] for level in levels}
    envs = [gym.make("boxgym/Vision-v0", pool_size=workers).unwrapped for _ in range(workers)]
    start = time.monotonic()

    async def worker(env: Any) -> None:
        while jobs:
            seed, level = jobs.pop(0)
            results[level].append(await solve_episode(env, seed, level))

    try:
        await asyncio.gather(*(worker(env) for env in envs))
    finally:
        for env in envs:
            await env.aclose()
    report: dict[str, Any] = {"command": " ".join(sys.argv), "seconds": round(time.monotonic() - start, 1), "levels": {}}
    for level, runs in results.items():
        scored = [(kind, r) for kind, r in runs if r is not None]
        kinds: dict[str, list[float]] = {}
        for kind, reward in scored:
            kinds.setdefault(kind, []).append(reward)
        report["levels"][str(level)] = {
            "tasks": len(runs),
            "infra_failures": len(runs) - len(scored),
            "mean": round(statistics.fmean(r for _, r in scored), 3) if scored else None,
            "kinds": {k: {"tasks": len(v), "mean": round(statistics.fmean(v), 3)} for k, v in sorted(kinds.items())},
        }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m boxgym.bench.vision", description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--tasks", type=int, default=60, help="tasks per level (seeds 0..N-1)")
    parser.add_argument("--workers", type=int, default=2, help="episodes at a time")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = asyncio.run(play(args.levels, args.tasks, args.workers))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for level, figures in report["levels"].items():
            kinds = ", ".join(f"{k} {v['mean']:.3f} ({v['tasks']})" for k, v in figures["kinds"].items())
            print(f"level {level}: mean {figures['mean']} over {figures['tasks']} tasks; {kinds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
