"""``boxgym gc``: remove sandboxes whose owner process is gone."""

from __future__ import annotations

import argparse
import asyncio

HELP = "remove sandbox containers whose owner process is gone (e.g. killed with SIGKILL)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")


def run(args: argparse.Namespace) -> int:
    from boxgym.errors import EngineError
    from boxgym.sandboxes.engine import DockerEngine
    from boxgym.sandboxes.ownership import gc

    async def main() -> list[dict[str, str]]:
        async with DockerEngine() as engine:
            return await gc(engine, dry_run=args.dry_run)

    try:
        removed = asyncio.run(main())
    except EngineError as exc:
        print(f"boxgym gc: {exc}")
        return 1
    verb = "would remove" if args.dry_run else "removed"
    for row in removed:
        print(f"{verb} {row['id']}  run {row['run']}  owner pid {row['pid']} (gone)")
    print(f"{verb} {len(removed)} container(s)")
    return 0
