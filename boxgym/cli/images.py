"""``boxgym images build|list|prune|copy``: sandbox images from recipes, no registry needed."""

from __future__ import annotations

import argparse
import sys

HELP = "build, list and prune the sandbox images (slim, desktop, jupyter, your recipes)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="images_command", metavar="ACTION", required=True)
    recipe_help = "also load recipes from this TOML/JSON file (repeatable)"

    build = sub.add_parser("build", help="build images whose recipe changed or that are missing")
    build.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="recipes to build (default: those of --recipe files, else slim, desktop, jupyter and scienceworld)",
    )
    build.add_argument("--force", action="store_true", help="rebuild even if the image exists")
    build.add_argument("--recipe", action="append", default=[], metavar="FILE", help=recipe_help)
    build.add_argument("-v", "--verbose", action="store_true", help="show the output of every build command")

    host_help = "on this Docker host (unix:///path or tcp://HOST:PORT) instead of the default one"
    tls_help = "ca.pem, cert.pem and key.pem for a tcp:// host (default: DOCKER_CERT_PATH)"

    ls = sub.add_parser("list", help="each recipe's current image: tag, built or not, size, age")
    ls.add_argument("--recipe", action="append", default=[], metavar="FILE", help=recipe_help)
    ls.add_argument("--host", metavar="URL", help=host_help)
    ls.add_argument("--tls-dir", metavar="DIR", help=tls_help)

    prune = sub.add_parser("prune", help="remove boxgym images that no current recipe maps to")
    prune.add_argument("names", nargs="*", metavar="NAME", help="only the images of these recipes")
    prune.add_argument("--all", action="store_true", help="remove every boxgym image (of NAMEs, if given)")
    prune.add_argument("--dry-run", action="store_true", help="only print what would be removed")
    prune.add_argument("--cache", action="store_true", help="also delete the build cache (base root, wheels, debs)")
    prune.add_argument("--recipe", action="append", default=[], metavar="FILE", help=recipe_help)
    prune.add_argument("--host", metavar="URL", help=host_help)
    prune.add_argument("--tls-dir", metavar="DIR", help=tls_help)

    copy = sub.add_parser(
        "copy", help="copy images to another Docker host of this machine or another (docker save | docker load)"
    )
    copy.add_argument("names", nargs="*", metavar="NAME", help="recipes (default: those of --recipe files, else slim and desktop)")
    copy.add_argument("--to", required=True, metavar="URL", help="the Docker host to copy to")
    copy.add_argument("--from", dest="source", metavar="URL", help="the Docker host to copy from (default: the default one)")
    copy.add_argument("--tls-dir", metavar="DIR", help=tls_help)
    copy.add_argument("--recipe", action="append", default=[], metavar="FILE", help=recipe_help)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from boxgym.errors import BoxgymError
    from boxgym.sandboxes import images

    try:
        args.loaded = [recipe.name for path in args.recipe for recipe in images.load_recipes(path)]
        action = {"build": _build, "list": _list, "prune": _prune, "copy": _copy}[args.images_command]
        return asyncio.run(_cancel_on_sigterm(action(args)))
    except (BoxgymError, ValueError, OSError) as exc:
        print(f"boxgym images {args.images_command}: {exc}", file=sys.stderr)
        return 1


async def _cancel_on_sigterm(coro):
    """SIGTERM cancels like Ctrl-C does, so builds unmount and clean up on both."""
    import asyncio
    import signal

    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        print("cancelled; build files cleaned up", file=sys.stderr)
        return 130
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _print_event(event) -> None:
    if event.step_s is None:
        print(f"[{event.elapsed_s:6.1f}s] {event.recipe}: {event.step} ...", flush=True)
    else:
        print(f"[{event.elapsed_s:6.1f}s] {event.recipe}: {event.step} done in {event.step_s:.1f}s", flush=True)


async def _build(args: argparse.Namespace) -> int:
    import time

    from boxgym.sandboxes import images

    names = args.names or args.loaded or ["slim", "desktop", "jupyter", "scienceworld"]
    recipes = [images.get_recipe(name) for name in names]  # unknown names fail before any work
    for recipe in recipes:
        began = time.monotonic()
        tag = images.image_tag(recipe)
        print(f"{recipe.name}: {tag}", flush=True)
        built = await images.build_image(recipe, force=args.force, progress=_print_event, verbose=args.verbose)
        took = time.monotonic() - began
        print(f"{recipe.name}: {built} ready ({took:.1f}s)", flush=True)
    return 0


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.0f} MB"


def _host(url: str | None, tls_dir: str | None):
    from boxgym.sandboxes.hosts import DockerHost

    return None if url is None else DockerHost.parse(url, tls_dir=tls_dir)


async def _list(args: argparse.Namespace) -> int:
    from boxgym.sandboxes import images

    host = _host(args.host, args.tls_dir)
    rows = [("RECIPE", "TAG", "BUILT", "SIZE", "CREATED")]
    for status in await images.list_images(host=host):
        rows.append(
            (
                status.recipe,
                status.tag,
                "yes" if status.built else "no",
                _size(status.size),
                (status.created or "-")[:19],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    stale, _ = await images.prune_images(dry_run=True, host=host)
    if stale:
        print(f"{len(stale)} stale boxgym images take space: `boxgym images prune` removes them")
    return 0


async def _prune(args: argparse.Namespace) -> int:
    import asyncio
    import shutil

    from boxgym.sandboxes import images
    from boxgym.sandboxes.images.runner import release_tree

    host = _host(args.host, args.tls_dir)
    removed, failed = await images.prune_images(args.names or None, everything=args.all, dry_run=args.dry_run, host=host)
    verb = "would remove" if args.dry_run else "removed"
    for ref in removed:
        print(f"{verb} {ref}")
    for line in failed:
        print(f"kept {line}", file=sys.stderr)
    if args.cache:
        cache = images.cache_dir()
        print(f"{verb} the build cache {cache}")
        if not args.dry_run and cache.exists():
            if (cache / "tmp").exists():
                await asyncio.to_thread(release_tree, cache / "tmp")  # never rmtree through a mount
            await asyncio.to_thread(shutil.rmtree, cache)
    if not removed and not failed:
        print("nothing to prune")
    return 1 if failed else 0


async def _copy(args: argparse.Namespace) -> int:
    import time

    from boxgym.sandboxes import images

    to, source = _host(args.to, args.tls_dir), _host(args.source, args.tls_dir)
    names = args.names or args.loaded or ["slim", "desktop"]
    recipes = [images.get_recipe(name) for name in names]  # unknown names fail before any work
    for recipe in recipes:
        began = time.monotonic()
        tag, copied = await images.copy_image(recipe.name, to=to, source=source)
        took = time.monotonic() - began
        print(f"{recipe.name}: {tag} {'copied' if copied else 'already'} on {to} ({took:.1f}s)", flush=True)
    return 0
