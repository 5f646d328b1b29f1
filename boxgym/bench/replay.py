"""Replay and the viewer: rescore episodes/s, redrive steps/s against the original run's, and the
viewer's first render and memory on large run directories.

1. **Record** ``--episodes`` SQL episodes for real (Docker sandboxes, the SQL suite's tasks at
   four levels, each task's reference solution as the policy, through the rollout manager):
   the original run's steps/s.
2. **Rescore** that run with the current judges: the SQL judge reads only the submitted query,
   so every episode is judged offline in a few shared clean checker sandboxes, with no
   re-execution: episodes/s.
3. **Redrive** ``--redrive-episodes`` of them (default all) in fresh sandboxes with no model, at
   the same concurrency: steps/s, and its ratio to the original's.
4. **View** run directories of each of ``--viewer-sizes`` episodes (the recorded episodes'
   lines, repeated under new ids): the time from starting ``boxgym view`` to the table's first
   page of rows (and, with Debian's Chromium, to the rows drawn in the browser), the time to
   index the whole run, and the viewer's peak memory, which should not grow with the run.

The last line with ``--json`` is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_SIZES = "1000,10000,50000"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, default=1000, help="episodes of the recorded run (default 1000)")
    parser.add_argument("--redrive-episodes", type=int, default=None, help="episodes to redrive (default: all)")
    parser.add_argument("--concurrency", type=int, default=16, help="episodes at once, original and replays alike")
    parser.add_argument("--viewer-sizes", default=DEFAULT_SIZES,
                        help=f"episodes of the viewed run directories, comma-separated ('' skips; default {DEFAULT_SIZES})")  # fmt: skip
    parser.add_argument("--keep", default=None, help="keep the runs in this directory (default: a temporary one)")


class _Reference:
    """The policy: each SQL task's reference solution, one tool call per turn."""

    def __init__(self) -> None:
        from boxgym.envs.suites import sql

        self._tasks = sql.task_set()

    async def __call__(self, episode: Any) -> Any:
        from boxgym.envs import reference_messages
        from boxgym.rollout import Completion

        messages = reference_messages(self._tasks.get(episode.task.task_id))
        return Completion(messages[episode.turn] if episode.turn < len(messages) else {"role": "assistant", "content": ""},
                          final=episode.turn >= len(messages))  # fmt: skip


async def _record(run_dir: Path, episodes: int, concurrency: int) -> dict[str, Any]:
    from boxgym.envs import EnvFactory
    from boxgym.rollout import Concurrency, RolloutConfig, RolloutManager, TaskRef

    tasks = [TaskRef(f"sql/d{i % 4}/s{i // 4}", "boxgym/SQL-v0") for i in range(episodes)]
    factory = EnvFactory(pool_size=min(concurrency, 8))
    config = RolloutConfig(concurrency=Concurrency(episodes=concurrency))
    started = time.monotonic()
    try:
        async with RolloutManager(factory, _Reference(), config=config, run_dir=run_dir, progress=None, name="orig") as m:
            results = await m.collect(tasks)
    finally:
        await factory.aclose()
    seconds = time.monotonic() - started
    steps = sum(r.steps for r in results if not r.completions or not r.completions[-1].final) + sum(
        r.steps - 1 for r in results if r.completions and r.completions[-1].final
    )
    return {"episodes": len(results), "ok": sum(r.ok for r in results), "steps": steps, "seconds": seconds,
            "steps_per_s": steps / seconds}  # fmt: skip


async def _replays(run_dir: Path, out: Path, redrive_episodes: int | None, concurrency: int) -> dict[str, Any]:
    from boxgym.replay import ReplayConfig, open_run, redrive, rescore

    run = open_run(run_dir)
    config = ReplayConfig(concurrency=concurrency, env_kwargs={"pool_size": min(concurrency, 8)}, progress=None)
    rescored = await rescore(run, out=out / "rescore.jsonl", config=config)
    only = None
    if redrive_episodes is not None:
        only = [e.episode_id for e, _ in zip(run.episodes(), range(redrive_episodes))]
    redriven = await redrive(run, out=out / "redrive", only=only, config=config)
    return {"rescore": rescored.to_json(), "redrive": redriven.to_json()}


# -- the viewer ----------------------------------------------------------------------------------


def _grow(source: Path, target: Path, episodes: int) -> int:
    """A run directory of ``episodes`` episodes: the source's episodes' lines again and again,
    each copy under new ids (lines interleaved as a concurrent run writes them)."""
    from boxgym.replay.rundir import decode_line

    target.mkdir(parents=True, exist_ok=True)
    by_episode: dict[str, list[str]] = {}
    for line in (source / "trajectories.jsonl").read_text().splitlines():
        by_episode.setdefault(decode_line(line.encode()).episode_id, []).append(line)
    templates = list(by_episode.items())[:64]
    with (target / "trajectories.jsonl").open("w") as fh:
        for n in range(0, episodes, 8):  # eight episodes at a time, their lines interleaved
            batch = []
            for k in range(n, min(n + 8, episodes)):
                old, lines = templates[k % len(templates)]
                new = f"v{k:07d}"
                batch.append([line.replace(f'"episode_id":"{old}"', f'"episode_id":"{new}"', 1) for line in lines])
            for row in range(max(len(lines) for lines in batch)):
                for lines in batch:
                    if row < len(lines):
                        fh.write(lines[row] + "\n")
    return (target / "trajectories.jsonl").stat().st_size


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - our own viewer on the loopback
        return json.loads(response.read())


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _view(run_dir: Path, browser: bool) -> dict[str, Any]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "boxgym", "view", str(run_dir), "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                page = _get(base + "/api/runs/0/episodes?limit=100")
                if page["rows"]:
                    break
            except OSError:
                pass
            if time.monotonic() - started > 120:
                raise TimeoutError("the viewer did not answer within 120 s")
            time.sleep(0.01)
        first_rows = time.monotonic() - started
        while True:
            [run] = _get(base + "/api/runs")
            if run["indexed_bytes"] >= run["total_bytes"]:
                break
            time.sleep(0.01)
        indexed = time.monotonic() - started
        total = _get(base + "/api/runs/0/episodes?limit=1")["total"]
        last = _get(base + "/api/runs/0/episodes?limit=1&sort=episode&order=desc")["rows"][0]["episode_id"]
        episode = _get(f"{base}/api/runs/0/episodes/{last}")
        report = {"episodes": total, "first_rows_s": first_rows, "indexed_s": indexed, "steps_of_one": len(episode["steps"]),
                  "peak_rss_mb": _peak_rss_mb(process.pid)}  # fmt: skip
    finally:
        process.terminate()
        process.wait(timeout=30)
    if browser:
        report["browser_first_render_s"] = _browser_first_render(run_dir)
    return report


def _browser_first_render(run_dir: Path, repeat: int = 3) -> float | None:
    """From starting ``boxgym view`` to the table's rows drawn in Debian's Chromium (best of
    ``repeat``): the browser is started first and left to settle, and opens the page once the
    viewer listens, as a person opens the URL it prints."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    import socket

    profile = tempfile.mkdtemp(prefix="boxgym-bench-chromium-")
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"]  # fmt: skip
    best = None
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium", headless=True, args=args)
            try:
                page = context.new_page()
                page.goto("about:blank")
                for _ in range(repeat):
                    time.sleep(3.0)  # the browser's own start-up work is not the viewer's
                    with socket.socket() as s:
                        s.bind(("127.0.0.1", 0))
                        port = s.getsockname()[1]
                    started = time.monotonic()
                    process = subprocess.Popen([sys.executable, "-m", "boxgym", "view", str(run_dir), "--port", str(port)],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
                    try:
                        while True:
                            try:
                                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                                break
                            except OSError:
                                time.sleep(0.005)
                        page.goto(f"http://127.0.0.1:{port}/#/run/0")
                        page.locator("tr.episode-row").first.wait_for(timeout=60_000)
                        seconds = time.monotonic() - started
                    finally:
                        process.terminate()
                        process.wait(timeout=30)
                    best = seconds if best is None else min(best, seconds)
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return best


def run(args: argparse.Namespace) -> int:
    keep = Path(args.keep) if args.keep else None
    root = keep or Path(tempfile.mkdtemp(prefix="boxgym-bench-replay-"))
    root.mkdir(parents=True, exist_ok=True)
    original = root / "original"
    try:
        print(f"recording {args.episodes} SQL episodes (reference solutions, Docker, {args.concurrency} at a time)...",
              file=sys.stderr)  # fmt: skip
        recorded = asyncio.run(_record(original, args.episodes, args.concurrency))
        print("rescoring and redriving them...", file=sys.stderr)
        replays = asyncio.run(_replays(original, root, args.redrive_episodes, args.concurrency))
        sizes = [int(x) for x in args.viewer_sizes.split(",") if x.strip()]
        browser = Path("/usr/bin/chromium").exists()
        viewer = []
        for size in sizes:
            print(f"viewing a run of {size} episodes...", file=sys.stderr)
            target = root / f"view-{size}"
            nbytes = _grow(original, target, size)
            viewer.append({"trajectory_mb": nbytes / 1e6, **_view(target, browser and size == max(sizes))})
            if keep is None:
                shutil.rmtree(target, ignore_errors=True)
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    rescore, redrive = replays["rescore"], replays["redrive"]
    report = {
        "benchmark": "replay",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "concurrency": args.concurrency,
        "original": recorded,
        "rescore_episodes_per_s": rescore["episodes_per_s"],
        "rescore": rescore,
        "redrive_steps_per_s": redrive["steps_per_s"],
        "original_steps_per_s": recorded["steps_per_s"],
        "redrive_over_original": (redrive["steps_per_s"] or 0) / recorded["steps_per_s"],
        "redrive": redrive,
        "viewer": viewer,
    }
    print(f"\noriginal run: {recorded['episodes']} episodes, {recorded['steps']} steps in {recorded['seconds']:.1f}s "
          f"= {recorded['steps_per_s']:.1f} steps/s")  # fmt: skip
    print(f"rescore: {rescore['rescored']} episodes in {rescore['seconds']:.1f}s = {rescore['episodes_per_s']:.1f} episodes/s "
          f"({rescore['by_how']['checker']} in checker sandboxes, {rescore['by_how']['re-executed']} re-executed, "
          f"{rescore['changed']} changed)")  # fmt: skip
    print(f"redrive: {redrive['replayed']} episodes, {redrive['steps']} steps in {redrive['seconds']:.1f}s = "
          f"{redrive['steps_per_s']:.1f} steps/s ({report['redrive_over_original']:.2f}x the original's); "
          f"{redrive['identical']} identical, reward reproduced in {redrive['reward_reproduced']}")  # fmt: skip
    for v in viewer:
        browser_part = f", drawn in Chromium after {v['browser_first_render_s']:.2f}s" if v.get("browser_first_render_s") else ""
        print(f"view {v['episodes']:>7} episodes ({v['trajectory_mb']:.0f} MB): first rows after {v['first_rows_s']:.2f}s"
              f"{browser_part}, all indexed after {v['indexed_s']:.2f}s, peak RSS {v['peak_rss_mb']:.0f} MB")  # fmt: skip
    if args.json:
        print(json.dumps(report))
    return 0
