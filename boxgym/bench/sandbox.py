"""Sandbox latency and churn, side by side with docker exec and docker run in the same run.

Measures, on one image (default: the slim recipe):

* ``exec``: a trivial command (``true``) through the tool server, sequentially;
* ``docker_exec``: the same command through the ``docker exec`` CLI on the same
  container, and ``docker_api_exec`` through the Engine API's exec endpoints;
* ``acquire``: handing out a sandbox from a warm pool;
* ``cold_start``: create a container until its tool server answers;
* ``churn``: sandboxes created, used once and destroyed per second, sustained,
  against raw ``docker run --rm IMAGE true`` at the same concurrency;
* with ``--gui`` (or only them, ``--gui-only``): a GUI action, one click and the new screenshot,
  against pyautogui and a PIL grab in a plain process on the same display (:mod:`boxgym.bench.gui`).
* with ``--scienceworld``, ScienceWorld's figures and their baselines (:mod:`.scienceworld`).

With ``--hosts URL...`` (other Docker engines of this machine, docs/hosts.md), also
``hosts_churn``: the same churn at the same concurrency with the workers spread over this
engine and those, against this engine alone measured again right after it (the baseline
is the mean of the two one-engine phases, so a load that drifts during the run is shared).

``--browser`` adds ``browser_step_p50_ms`` (a click plus the new observation on MiniWoB++
click-button, in a desktop sandbox) and its baseline from the same run (:mod:`.browser`).

``--ipython`` adds the IPython toolset's figures (``--ipython-only``: only those), each
with its baseline from the same run: :mod:`boxgym.bench.ipython`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time

HELP = __doc__.splitlines()[0]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", default="slim", help="recipe name or image tag (default: slim)")
    parser.add_argument("--execs", type=int, default=2000, help="sequential tool-server execs")
    parser.add_argument("--docker-execs", type=int, default=100, help="sequential docker execs")
    parser.add_argument("--acquires", type=int, default=40, help="warm-pool acquisitions")
    parser.add_argument("--cold-starts", type=int, default=20, help="sequential cold starts")
    parser.add_argument("--churn-seconds", type=float, default=20.0, help="how long each churn phase runs")
    parser.add_argument("--concurrency", type=int, default=8, help="workers in each churn phase")
    parser.add_argument(
        "--scienceworld", action="store_true",
        help="also ScienceWorld through boxgym/ScienceWorld-v0, against a plain process in its container",
    )
    parser.add_argument("--scienceworld-image", default="scienceworld", help="its image (default: scienceworld)")
    parser.add_argument(
        "--hosts",
        nargs="+",
        default=[],
        metavar="URL",
        help="also churn spread over this engine and these Docker hosts of this machine (unix:///path or tcp://HOST:PORT)",
    )
    parser.add_argument("--tls-dir", metavar="DIR", help="ca.pem, cert.pem and key.pem for tcp:// hosts")
    parser.add_argument("--browser", action="store_true", help="also measure browser steps (desktop image) and a baseline")
    parser.add_argument("--browser-steps", type=int, default=30, help="timed browser steps")
    parser.add_argument(
        "--browsergym-python",
        default=os.environ.get("BOXGYM_BROWSERGYM_PYTHON"),
        help="a Python with browsergym-core and browsergym-miniwob: the baseline is BrowserGym's own env "
        "(else a bare Playwright click + accessibility snapshot on the host)",
    )
    parser.add_argument("--gui", action="store_true", help="also measure GUI actions (the desktop image)")
    parser.add_argument("--gui-only", action="store_true", help="measure only GUI actions")
    parser.add_argument("--gui-image", default="desktop", help="image of the GUI figures (default: desktop)")
    parser.add_argument("--gui-actions", type=int, default=400, help="GUI actions measured each way")

    from . import ipython

    ipython.add_arguments(parser)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _docker_cli(*argv: str) -> int:
    proc = await asyncio.create_subprocess_exec(
        "docker", *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await proc.wait()


async def _api_exec(engine, container_id: str) -> None:
    created = await engine.request(
        "POST", f"/containers/{container_id}/exec", body={"Cmd": ["true"], "AttachStdout": True, "AttachStderr": True}
    )
    await engine.request("POST", f"/exec/{created['Id']}/start", body={"Detach": False, "Tty": False})
    await engine.request("GET", f"/exec/{created['Id']}/json")


async def measure(args: argparse.Namespace) -> dict:
    from boxgym.sandboxes import SandboxSpec
    from boxgym.sandboxes.docker import DockerSandbox, resolve_image_ref
    from boxgym.sandboxes.engine import DockerEngine, EngineLimits
    from boxgym.sandboxes.hosts import DockerHost
    from boxgym.sandboxes.ownership import current_run
    from boxgym.sandboxes.pool import SandboxPool

    run = current_run()
    limits = EngineLimits(max_concurrent=64, creates_per_s=1000.0, create_burst=64)
    if args.gui_only:
        from .gui import measure_gui

        async with DockerEngine(limits) as engine:
            gui_image = await resolve_image_ref(args.gui_image)
            return {"gui_image": gui_image, **await measure_gui(engine, run, gui_image, args.gui_actions, 4, _say)}
    image = await resolve_image_ref(args.image)
    spec = SandboxSpec(image=image)
    others = [DockerHost.parse(url, tls_dir=args.tls_dir) for url in args.hosts]
    async with contextlib.AsyncExitStack() as stack:
        engine = await stack.enter_async_context(DockerEngine(limits))
        spread = [(engine, spec)]
        for host in others:
            other = await stack.enter_async_context(DockerEngine(limits, host=host))
            # A recipe resolves to the same tag on every host (a copy keeps it): one image everywhere.
            spread.append((other, SandboxSpec(image=await resolve_image_ref(args.image, other), host=other.host)))
        _say(f"image {image}")
        async with await DockerSandbox.create(spec, engine=engine) as sb:
            for _ in range(50):
                await sb.exec(["true"])
            _say(f"exec: {args.execs} x `true` through the tool server")
            execs = []
            for _ in range(args.execs):
                t = time.perf_counter()
                result = await sb.exec(["true"])
                execs.append(time.perf_counter() - t)
                assert result.exit_code == 0
            _say(f"docker exec: {args.docker_execs} x `docker exec <id> true`")
            docker_execs, api_execs = [], []
            for _ in range(args.docker_execs):
                t = time.perf_counter()
                assert await _docker_cli("exec", sb.id, "true") == 0
                docker_execs.append(time.perf_counter() - t)
                t = time.perf_counter()
                await _api_exec(engine, sb.id)
                api_execs.append(time.perf_counter() - t)

        _say(f"cold start: {args.cold_starts} x create until the tool server answers")
        colds = []
        for _ in range(args.cold_starts):
            t = time.perf_counter()
            sb = await DockerSandbox.create(spec, engine=engine, run=run)
            colds.append(time.perf_counter() - t)
            await sb.aclose()

        _say(f"acquire: {args.acquires} x from a warm pool of 4")
        acquires = []
        async with SandboxPool(spec, size=4, engine=engine, run=run) as pool:
            for _ in range(args.acquires):
                await pool.wait_ready(timeout=60)
                t = time.perf_counter()
                sb = await pool.acquire()
                acquires.append(time.perf_counter() - t)
                await sb.aclose()

        async def boxgym_cycle(where=(engine, spec)) -> None:
            sb = await DockerSandbox.create(where[1], engine=where[0], run=run)
            try:
                assert (await sb.exec(["true"])).exit_code == 0
            finally:
                await sb.aclose()

        async def docker_run_cycle() -> None:
            code = await _docker_cli("run", "--rm", "--network", "none", "--label", f"boxgym.sandbox={run.run_id}",
                                     image, "true")  # fmt: skip
            assert code == 0

        async def churn(cycle, label: str, spread_over: list | None = None) -> float:
            _say(f"churn: {label}, {args.concurrency} workers for {args.churn_seconds:.0f}s")
            done = 0
            end = time.monotonic() + args.churn_seconds

            async def worker(i: int) -> None:
                nonlocal done
                while time.monotonic() < end:
                    # Worker i keeps to one host: the hosts get equal shares of the workers.
                    await (cycle(spread_over[i % len(spread_over)]) if spread_over else cycle())
                    done += 1

            start = time.monotonic()
            await asyncio.gather(*(worker(i) for i in range(args.concurrency)))
            return done / (time.monotonic() - start)

        churn_boxgym = await churn(boxgym_cycle, "boxgym create+exec+close")
        churn_docker = await churn(docker_run_cycle, "docker run --rm")
        if others:
            hosts_label = ", ".join(e.host.url for e, _ in spread)
            churn_spread = await churn(boxgym_cycle, f"boxgym spread over {hosts_label}", spread)
            churn_again = await churn(boxgym_cycle, "boxgym on this engine alone, again")
        gui: dict = {}
        if args.gui:
            from .gui import measure_gui

            gui_image = await resolve_image_ref(args.gui_image)
            gui = {"gui_image": gui_image, **await measure_gui(engine, run, gui_image, args.gui_actions, 4, _say)}

    exec_p50 = _pct(execs, 0.5)
    docker_p50 = _pct(docker_execs, 0.5)
    result = {
        "image": image,
        "exec_p50_ms": round(exec_p50, 3),
        "exec_p99_ms": round(_pct(execs, 0.99), 3),
        "exec_mean_ms": round(statistics.fmean(execs) * 1000, 3),
        "docker_exec_p50_ms": round(docker_p50, 2),
        "docker_api_exec_p50_ms": round(_pct(api_execs, 0.5), 2),
        "exec_speedup": round(docker_p50 / exec_p50, 1),
        "acquire_p50_ms": round(_pct(acquires, 0.5), 3),
        "acquire_p99_ms": round(_pct(acquires, 0.99), 3),
        "cold_start_p50_ms": round(_pct(colds, 0.5), 1),
        "churn_per_s": round(churn_boxgym, 2),
        "docker_run_churn_per_s": round(churn_docker, 2),
        "churn_ratio": round(churn_boxgym / churn_docker, 2),
        "churn_concurrency": args.concurrency,
        "churn_seconds": args.churn_seconds,
        **gui,
    }
    if others:
        baseline = (churn_boxgym + churn_again) / 2
        result |= {
            "hosts": [e.host.url for e, _ in spread],
            "hosts_churn_per_s": round(churn_spread, 2),
            "hosts_churn_baseline_per_s": round(baseline, 2),
            "hosts_churn_ratio": round(churn_spread / baseline, 2),
        }
    return result


def run(args: argparse.Namespace) -> int:
    from boxgym.errors import BoxgymError

    from . import ipython

    try:
        result = {} if args.ipython_only else asyncio.run(measure(args))
        if args.scienceworld:
            from .scienceworld import measure as measure_scienceworld

            _say(f"scienceworld: program starts, resets, steps and valid actions on {args.scienceworld_image}")
            result.update(asyncio.run(measure_scienceworld(args.scienceworld_image)))
        if args.browser:
            from . import browser

            result |= asyncio.run(browser.measure(args.browser_steps, args.browsergym_python))
        if args.ipython or args.ipython_only:
            result.update(asyncio.run(ipython.measure(args)))
    except (BoxgymError, ValueError) as exc:  # ValueError: a --hosts url that names no Docker host
        print(f"boxgym bench sandbox: {exc}", file=sys.stderr)
        return 1
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        print(json.dumps(result))
    return 0
