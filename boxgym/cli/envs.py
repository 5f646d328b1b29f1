"""``boxgym envs list`` and ``boxgym envs check``: the registered environments, and Gymnasium's checker over them."""

from __future__ import annotations

import argparse
import time

HELP = "list the registered environments, or run Gymnasium's env checker over them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="envs_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="one line per registered id")
    check = sub.add_parser("check", help="run gymnasium.utils.env_checker.check_env over every id (or those named)")
    check.add_argument("ids", nargs="*", metavar="ID", help="ids to check (default: all)")
    check.add_argument(
        "--image", default=None, help="sandbox image: a recipe name or an image tag (default: each id's own, e.g. slim, desktop or jupyter)"
    )
    check.add_argument("--fake", action="store_true", help="use the in-process fake sandbox instead of Docker")


def run(args: argparse.Namespace) -> int:
    from boxgym.envs import ENVS

    if args.envs_command == "list":
        width = max(len(env.id) for env in ENVS)
        for env in ENVS:
            print(f"{env.id:<{width}}  {env.summary}")
        return 0
    known = {env.id for env in ENVS}
    ids = args.ids or [env.id for env in ENVS]
    unknown = [i for i in ids if i not in known]
    if unknown:
        print(f"unknown id(s): {', '.join(unknown)}; see `boxgym envs list`")
        return 2
    failures = sum(not _check(env_id, args) for env_id in ids)
    print(f"{len(ids) - failures}/{len(ids)} environments passed")
    return 1 if failures else 0


def _check(env_id: str, args: argparse.Namespace) -> bool:
    import warnings

    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    from boxgym.sandboxes import FakeProvider

    kwargs: dict = {"provider": FakeProvider()} if args.fake else {"pool_size": 1}
    if args.image is not None and not args.fake:
        kwargs["image"] = args.image  # otherwise the id's registered image (DataAnalysis-v0: jupyter)
    start = time.monotonic()
    env = gym.make(env_id, **kwargs)
    try:
        # check_env cannot tell an infrastructure failure from an episode: look first.
        _, info = env.reset(seed=0)
        if info["infra_failure"]:
            print(f"FAIL  {env_id}: infrastructure failure: {info['error']}")
            return False
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env.unwrapped)
    except Exception as exc:  # noqa: BLE001 - report every failure of the checker, whatever it is
        print(f"FAIL  {env_id}: {type(exc).__name__}: {exc}")
        return False
    finally:
        env.close()
    if caught:
        for warning in caught:
            print(f"FAIL  {env_id}: warning: {warning.message}")
        return False
    print(f"ok    {env_id}  ({time.monotonic() - start:.1f}s)")
    return True
