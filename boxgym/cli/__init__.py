"""The ``boxgym`` command: one module per subcommand.

Each subcommand module defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``. Modules import their heavy dependencies inside
``run`` so that ``boxgym --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

#: subcommand name -> module that implements it
SUBCOMMANDS: dict[str, str] = {
    "demo": "boxgym.cli.demo",
    "images": "boxgym.cli.images",
    "gc": "boxgym.cli.gc",
    "bench": "boxgym.cli.bench",
    "gateway": "boxgym.cli.gateway",
    "envs": "boxgym.cli.envs",
    "tasks": "boxgym.cli.tasks",
    "replay": "boxgym.cli.replay",
    "view": "boxgym.cli.view",
}


def _available() -> dict[str, object]:
    modules = {}
    for name, path in SUBCOMMANDS.items():
        try:
            modules[name] = importlib.import_module(path)
        except ModuleNotFoundError as exc:  # a subcommand not built yet, or a missing extra
            if exc.name != path:
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="boxgym", description="Sandboxed environment gym for LLM agents.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _available().items():
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
