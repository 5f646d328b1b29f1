"""``boxgym view RUN_DIR...``: browse runs in a local web viewer (see :mod:`boxgym.viewer`)."""

from __future__ import annotations

import argparse
import asyncio
import sys

HELP = "browse run directories in a local web viewer: episodes, steps, tokens, replays side by side"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (each holds trajectories.jsonl)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")


async def _serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from boxgym.viewer import create_app

    runner = web.AppRunner(create_app(args.runs), handler_cancellation=True, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        print(f"boxgym view: http://{host}:{port}/  ({len(args.runs)} run{'s' if len(args.runs) > 1 else ''}; Ctrl-C stops)",
              flush=True)  # fmt: skip
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def run(args: argparse.Namespace) -> int:
    from boxgym.errors import BoxgymError

    try:
        asyncio.run(_serve(args))
    except BoxgymError as exc:
        print(f"boxgym view: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"boxgym view: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
