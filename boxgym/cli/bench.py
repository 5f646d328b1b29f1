"""``boxgym bench NAME``: run a benchmark; with ``--json`` its last line is one JSON object."""

from __future__ import annotations

import argparse
import importlib

HELP = "run a benchmark (sandbox, gateway, rollout, replay, chaos)"

#: benchmark name -> module with add_arguments(parser) and run(args) -> int
BENCHMARKS = {
    "sandbox": "boxgym.bench.sandbox",
    "gateway": "boxgym.bench.gateway",
    "rollout": "boxgym.bench.rollout",
    "replay": "boxgym.bench.replay",
    "chaos": "boxgym.bench.chaos",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name, path in BENCHMARKS.items():
        try:
            module = importlib.import_module(path)
        except ModuleNotFoundError as exc:
            if exc.name != path:
                raise
            continue
        p = sub.add_parser(name, help=module.__doc__.strip().splitlines()[0] if module.__doc__ else name)
        p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
        module.add_arguments(p)
        p.set_defaults(_bench_run=module.run)


def run(args: argparse.Namespace) -> int:
    return int(args._bench_run(args) or 0)
