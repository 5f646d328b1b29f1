"""The IPython part of ``boxgym bench sandbox`` (``--ipython``, or ``--ipython-only``).

* ``ipython_exec_p50_ms``: a trivial cell (``1``) through ``ipython.execute`` in a sandbox of the
  ``jupyter`` image, sequentially, its kernel warm: the host's call, the tool server, the kernel
  and back, until the cell's reply and the end of its output (IOPub ``idle``);
* ``jupyter_direct_p50_ms``, the baseline in the same run: jupyter-client's own
  ``execute_interactive`` against a kernel it started on the host over IPC, as boxgym's is
  reached (the same wait: the reply and ``idle``). ``ipython_overhead_ms`` is the difference (target: at most 2 ms);
* ``desktop_ready_p50_ms``: from ``acquire`` on a warm pool of the ``desktop`` image whose
  sandboxes start their browser and kernel as they are created (``SandboxSpec(warm=
  ("browser.observe", "ipython.ready"))``) to a browser that answers (an observation of its page);
  ``desktop_kernel_ready_p50_ms`` goes on to the answer of a first cell; ``slim_acquire_p50_ms``
  is a bare acquire from a warm ``slim`` pool in the same run, which they should be close to.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

__all__ = ["add_arguments", "measure"]

CELL = "1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ipython", action="store_true", help="also measure the IPython toolset (see boxgym.bench.ipython)")
    parser.add_argument("--ipython-only", action="store_true", help="measure only the IPython toolset")
    parser.add_argument("--cells", type=int, default=500, help="sequential trivial cells, each way (default: 500)")
    parser.add_argument("--ready-acquires", type=int, default=20, help="acquires from the warm desktop pool")
    parser.add_argument("--ipython-image", default="jupyter", help="image of the cell latency (default: jupyter)")
    parser.add_argument("--desktop-image", default="desktop", help="image of desktop_ready (default: desktop)")


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


def _check(ok: bool, answer: Any) -> None:
    # A figure over failed cells would measure the failure: stop and show it.
    if not ok:
        raise RuntimeError(f"a benchmark cell failed: {answer!r}")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _through_boxgym(image: str, cells: int, engine: Any) -> list[float]:
    from boxgym.sandboxes import SandboxSpec
    from boxgym.sandboxes.docker import DockerSandbox, resolve_image_ref

    spec = SandboxSpec(image=await resolve_image_ref(image), warm=("ipython.ready",))
    async with await DockerSandbox.create(spec, engine=engine) as sb:
        for _ in range(50):
            await sb.call("ipython.execute", {"code": CELL})
        times = []
        for _ in range(cells):
            start = time.perf_counter()
            answer = await sb.call("ipython.execute", {"code": CELL})
            times.append(time.perf_counter() - start)
            _check(answer["ok"], answer)
    return times


async def _direct(cells: int) -> list[float]:
    import tempfile

    from jupyter_client.manager import AsyncKernelManager

    # Over IPC, as boxgym talks to its kernel: the baseline is not slowed by TCP.
    scratch = tempfile.TemporaryDirectory(prefix="boxgym-bench-")
    manager = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=f"{scratch.name}/kernel")
    await manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        quiet = lambda msg: None  # noqa: E731 - the output is not what is measured
        for _ in range(50):
            await client.execute_interactive(CELL, output_hook=quiet, timeout=30)
        times = []
        for _ in range(cells):
            start = time.perf_counter()
            reply = await client.execute_interactive(CELL, output_hook=quiet, timeout=30)
            times.append(time.perf_counter() - start)
            _check(reply["content"]["status"] == "ok", reply)
    finally:
        client.stop_channels()
        await manager.shutdown_kernel(now=True)
        scratch.cleanup()
    return times


async def _ready(image: str, acquires: int, engine: Any, run: Any) -> tuple[list[float], list[float], list[float]]:
    from boxgym.sandboxes import SandboxSpec
    from boxgym.sandboxes.pool import SandboxPool

    ready, kernel, bare = [], [], []
    spec = SandboxSpec(image=image, warm=("browser.observe", "ipython.ready"))
    async with SandboxPool(spec, size=4, engine=engine, run=run) as pool:
        for _ in range(acquires):
            await pool.wait_ready(timeout=120)
            start = time.perf_counter()
            sb = await pool.acquire()
            page = await sb.call("browser.observe", {})
            ready.append(time.perf_counter() - start)
            answer = await sb.call("ipython.execute", {"code": CELL})
            kernel.append(time.perf_counter() - start)
            _check(page["ok"] and "url" in page, page)
            _check(answer["ok"], answer)
            await sb.aclose()
    async with SandboxPool(SandboxSpec(image="slim"), size=4, engine=engine, run=run) as pool:
        for _ in range(acquires):
            await pool.wait_ready(timeout=60)
            start = time.perf_counter()
            sb = await pool.acquire()
            bare.append(time.perf_counter() - start)
            await sb.aclose()
    return ready, kernel, bare


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from boxgym.sandboxes.engine import DockerEngine
    from boxgym.sandboxes.ownership import current_run

    async with DockerEngine() as engine:
        _say(f"ipython: {args.cells} x the cell {CELL!r} through the tool server ({args.ipython_image})")
        boxgym = await _through_boxgym(args.ipython_image, args.cells, engine)
        _say(f"ipython: {args.cells} x the same cell, jupyter-client to a kernel on the host")
        direct = await _direct(args.cells)
        _say(f"ipython: {args.ready_acquires} x acquire + the browser's page + a first cell, warm {args.desktop_image} pool")
        ready, kernel, bare = await _ready(args.desktop_image, args.ready_acquires, engine, current_run())
    return {
        "ipython_exec_p50_ms": _ms(boxgym, 0.5),
        "ipython_exec_p99_ms": _ms(boxgym, 0.99),
        "ipython_exec_mean_ms": round(statistics.fmean(boxgym) * 1000, 3),
        "jupyter_direct_p50_ms": _ms(direct, 0.5),
        "jupyter_direct_p99_ms": _ms(direct, 0.99),
        "ipython_overhead_ms": round(_ms(boxgym, 0.5) - _ms(direct, 0.5), 3),
        "desktop_ready_p50_ms": _ms(ready, 0.5),
        "desktop_ready_p99_ms": _ms(ready, 0.99),
        "desktop_kernel_ready_p50_ms": _ms(kernel, 0.5),
        "slim_acquire_p50_ms": _ms(bare, 0.5),
    }
