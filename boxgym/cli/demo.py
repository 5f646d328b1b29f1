"""``boxgym demo``: sandboxes from a warm pool, commands in them, latencies in a table."""

from __future__ import annotations

import argparse
import asyncio
import time

HELP = "run the demo: sandboxes from a warm pool, commands in them, a table of what happened"

COMMANDS = [
    ("whoami", "id -un; pwd"),
    ("python", "python3 -c 'import sys; print(sys.version.split()[0])'"),
    ("write+run", "printf 'print(sum(range(10**6)))' > s.py && python3 s.py"),
    ("network", "python3 -c \"import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)\" 2>&1 | tail -1"),
    ("timeout", "sleep 30"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sandboxes", type=int, default=4, help="how many sandboxes to run at once")
    parser.add_argument("--image", default="slim", help="recipe name or image tag")


async def _episode(pool, index: int) -> list[tuple]:
    rows = []
    t = time.perf_counter()
    sb = await pool.acquire()
    acquire_ms = (time.perf_counter() - t) * 1000
    async with sb:
        for label, cmd in COMMANDS:
            result = await sb.exec(cmd, timeout=1.0 if label == "timeout" else 10.0)
            out = (result.stdout or result.stderr).strip().replace("\n", " | ")
            status = "timed out, tree killed" if result.timed_out else f"exit {result.exit_code}"
            rows.append((index, sb.name[-10:], label, status, out[:48], result.duration_s * 1000, acquire_ms))
    return rows


async def _main(args: argparse.Namespace) -> None:
    from boxgym.sandboxes import SandboxSpec
    from boxgym.sandboxes.pool import SandboxPool

    started = time.perf_counter()
    async with SandboxPool(SandboxSpec(image=args.image), size=args.sandboxes) as pool:
        print(f"warming a pool of {args.sandboxes} sandboxes ({pool.spec.image}) ...")
        await pool.wait_ready(timeout=120)
        print(f"pool ready in {time.perf_counter() - started:.2f}s; running {len(COMMANDS)} commands in each\n")
        results = await asyncio.gather(*(_episode(pool, i) for i in range(args.sandboxes)))
    header = ("#", "sandbox", "command", "status", "output", "ms", "acquire ms")
    rows = [r for rows in results for r in rows]
    print(f"{header[0]:>2}  {header[1]:<10}  {header[2]:<9}  {header[3]:<22}  {header[4]:<48}  {header[5]:>8}  {header[6]:>10}")
    for i, name, label, status, out, ms, acq in rows:
        print(f"{i:>2}  {name:<10}  {label:<9}  {status:<22}  {out:<48}  {ms:>8.1f}  {acq:>10.2f}")
    print(f"\n{args.sandboxes} sandboxes, {len(rows)} commands, {time.perf_counter() - started:.2f}s in all; "
          "every container has been removed.")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from boxgym.errors import BoxgymError

    try:
        asyncio.run(_main(args))
    except BoxgymError as exc:
        print(f"boxgym demo: {exc}")
        return 1
    return 0
