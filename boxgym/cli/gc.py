"""``boxgym gc``: remove sandboxes whose owner process is gone, on every Docker host of this machine."""

from __future__ import annotations

import argparse
import asyncio

HELP = "remove sandbox containers whose owner process is gone (e.g. killed with SIGKILL), on every Docker host"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    parser.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="URL",
        help="also this Docker host (unix:///path or tcp://HOST:PORT; repeatable). The default host and "
        "every host a run of this machine used are cleaned without naming them",
    )
    parser.add_argument(
        "--tls-dir", metavar="DIR", help="ca.pem, cert.pem and key.pem for tcp:// hosts (default: DOCKER_CERT_PATH)"
    )


def run(args: argparse.Namespace) -> int:
    from boxgym.errors import EngineError
    from boxgym.sandboxes.hosts import DockerHost
    from boxgym.sandboxes.ownership import gc_hosts

    try:
        hosts = [DockerHost.parse(url, tls_dir=args.tls_dir) for url in args.host]
    except ValueError as exc:
        print(f"boxgym gc: {exc}")
        return 2
    report = asyncio.run(gc_hosts(hosts, dry_run=args.dry_run))
    verb = "would remove" if args.dry_run else "removed"
    for row in report.removed:
        print(f"{verb} {row['id']}  run {row['run']}  owner pid {row['pid']} (gone)  on {row['host']}")
    for host, error in report.unreachable.items():
        print(f"boxgym gc: skipped {host}: {error}")
    print(f"{verb} {len(report.removed)} container(s)")
    # A host a run once used may be gone for good; the default and the named ones must answer.
    try:
        named = {DockerHost().address, *(h.address for h in hosts)}
    except EngineError:
        named = {"DOCKER_HOST", *(h.address for h in hosts)}
    return 1 if named & report.unreachable.keys() else 0
