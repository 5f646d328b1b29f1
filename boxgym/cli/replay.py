"""``boxgym replay``: rescore, redrive or resume a recorded run (see :mod:`boxgym.replay`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

HELP = "debug from what was recorded: rescore with today's judges, redrive the actions, resume from step k"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", help="the recorded run directory (holds trajectories.jsonl)")
    p.add_argument("--episode", action="append", default=None, metavar="ID", help="only this episode (repeatable)")
    p.add_argument("--tasks", default=None, help="the JSONL task file the run used, if not the env's own tasks")
    p.add_argument("--concurrency", type=int, default=8, help="episodes at once (default 8)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="replay_command", metavar="MODE", required=True)

    p = sub.add_parser("rescore", help="the current judges on the recorded episodes: old against new reward")
    _common(p)
    p.add_argument("--out", default=None, help="the output JSONL (default: RUN-rescore-<time>.jsonl beside the run)")
    p.add_argument("--changed", action="store_true", help="list only the episodes whose reward changed")

    p = sub.add_parser("redrive", help="replay the recorded actions in fresh sandboxes, no model; diff observations")
    _common(p)
    p.add_argument("--out", default=None, help="the new run directory (default: RUN-redrive-<time> beside the run)")
    p.add_argument("--skip-normaliser", action="append", default=[], metavar="NAME",
                   help="compare without this normalisation (repeatable; --list-normalisers shows them)")  # fmt: skip
    p.add_argument("--normaliser", action="append", nargs=2, default=[], metavar=("REGEX", "REPLACEMENT"),
                   help="also replace REGEX by REPLACEMENT in both observations before comparing (repeatable)")  # fmt: skip
    p.add_argument("--list-normalisers", action="store_true", help="list the default normalisations and exit")
    p.add_argument("--image-threshold", type=float, default=0.1,
                   help="images closer than this perceptual distance (0..1) count as equal (default 0.1)")  # fmt: skip

    p = sub.add_parser("resume", help="replay an episode's first K steps, then let a live model go on")
    _common(p)
    p.add_argument("--at", type=int, required=True, metavar="K", help="recorded steps to keep (0: none)")
    p.add_argument("--base-url", required=True, help="the engine the live policy calls, e.g. http://127.0.0.1:8000")
    p.add_argument("--engine", choices=("vllm", "sglang", "openai"), default="vllm")
    p.add_argument("--model", default="default", help="the model name sent to the engine")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--samples", type=int, default=1, help="new episodes per recorded one (default 1)")
    p.add_argument("--out", default=None, help="the new run directory (default: RUN-resume-<time> beside the run)")


def _beside(run: Path, mode: str, suffix: str = "") -> Path:
    return run.resolve().with_name(f"{run.resolve().name}-{mode}-{time.strftime('%Y%m%d-%H%M%S')}{suffix}")


def _config(args: argparse.Namespace) -> Any:
    from boxgym.replay import ReplayConfig

    env_kwargs = {"tasks": args.tasks} if args.tasks else {}
    return ReplayConfig(concurrency=args.concurrency, env_kwargs=env_kwargs, progress=None)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _rescore(args: argparse.Namespace, run: Any) -> tuple[int, dict[str, Any]]:
    from boxgym.replay import rescore

    out = Path(args.out) if args.out else _beside(run.path, "rescore", ".jsonl")
    summary = asyncio.run(rescore(run, out=out, only=args.episode, config=_config(args)))
    rows = summary.changed if args.changed else summary.rows
    print(f"{'episode':<20} {'env':<17} {'task':<18} {'old':>6} {'new':>6}  how")
    for r in rows:
        mark = " *" if r.changed else ""
        why = f"  ({r.why})" if r.why else ""
        rewards = f"{_fmt(r.old_reward):>6} {_fmt(r.new_reward):>6}"
        print(f"{r.episode_id:<20} {r.env_id:<17} {r.task_id:<18} {rewards}  {r.how}{mark}{why}")
    s = summary.to_json()
    print(f"\n{s['episodes']} episodes: {s['rescored']} rescored ({s['by_how']['record']} from the record, "
          f"{s['by_how']['checker']} in a checker sandbox, {s['by_how']['re-executed']} re-executed), "
          f"{s['by_how']['skipped']} skipped, {s['by_how']['failed']} failed; {s['changed']} changed "
          f"({s['up']} up, {s['down']} down); mean {_fmt(s['old_mean'])} -> {_fmt(s['new_mean'])}")  # fmt: skip
    print(f"rows in {out}" + (f"; re-executed episodes in {summary.reexecuted_run}" if summary.reexecuted_run else ""))
    return (1 if s["by_how"]["failed"] else 0), s


def _redrive(args: argparse.Namespace, run: Any) -> tuple[int, dict[str, Any]]:
    from boxgym.replay import DEFAULT_NORMALISERS, Normaliser, redrive

    skip = set(args.skip_normaliser)
    unknown = skip - {n.name for n in DEFAULT_NORMALISERS}
    if unknown:
        raise SystemExit(f"boxgym replay: no normaliser {', '.join(sorted(unknown))} (see --list-normalisers)")
    normalisers = [n for n in DEFAULT_NORMALISERS if n.name not in skip]
    normalisers += [Normaliser(f"custom-{i}", regex, repl) for i, (regex, repl) in enumerate(args.normaliser)]
    out = Path(args.out) if args.out else _beside(run.path, "redrive")
    summary = asyncio.run(
        redrive(run, out=out, only=args.episode, config=_config(args), normalisers=normalisers,
                image_threshold=args.image_threshold)  # fmt: skip
    )
    print(f"{'episode':<20} {'replay':<14} {'steps':>9} {'reward':>13}  first divergence")
    for r in summary.rows:
        if not r.replayed:
            print(f"{r.episode_id:<20} {'-':<14} {'':>9} {'':>13}  not replayed: {r.why}")
            continue
        d = r.first_divergence
        where = "none" if d is None else f"step {d.index} ({d.where})"
        reward = f"{_fmt(r.old_reward)}->{_fmt(r.new_reward)}"
        print(f"{r.episode_id:<20} {r.replay_episode_id:<14} {r.steps_recorded:>4}/{r.steps_replayed:<4} {reward:>13}  {where}")
        if d is not None and d.diff:
            print("    " + d.diff.replace("\n", "\n    "))
    s = summary.to_json()
    print(f"\n{s['replayed']} of {s['episodes']} episodes replayed: {s['identical']} identical, {s['diverged']} diverged, "
          f"reward reproduced in {s['reward_reproduced']}; {s['steps']} steps in {s['seconds']:.1f}s")  # fmt: skip
    print(f"new run in {out} (report: {out / 'redrive.jsonl'}); compare: boxgym view {out} {run.path}")
    return (0 if s["replayed"] == s["reward_reproduced"] else 1), s


def _resume(args: argparse.Namespace, run: Any) -> tuple[int, dict[str, Any]]:
    if not args.episode:
        raise SystemExit("boxgym replay resume: name the episode(s) with --episode ID")
    out = Path(args.out) if args.out else _beside(run.path, "resume")
    summary = asyncio.run(_resume_async(args, run, out))
    for r in summary.rows:
        print(f"{r.episode_id} -> {r.replay_episode_id}: kept {r.at_step} of {r.old_steps} steps, now {r.new_steps} steps, "
              f"reward {_fmt(r.old_reward)} -> {_fmt(r.new_reward)} ({r.new_reason}{': ' + r.error if r.error else ''})")  # fmt: skip
    print(f"new run in {out}; compare: boxgym view {out} {run.path}")
    return 0, summary.to_json()


async def _resume_async(args: argparse.Namespace, run: Any, out: Path) -> Any:
    from boxgym.gateway import Gateway, GatewayConfig, StoreConfig, UpstreamConfig
    from boxgym.replay import resume
    from boxgym.rollout import ChatPolicy, ChatPolicyConfig

    sampling = {k: v for k, v in (("temperature", args.temperature), ("max_tokens", args.max_tokens)) if v is not None}
    out.mkdir(parents=True, exist_ok=True)
    store = StoreConfig(path=str(out / "gateway.jsonl"))
    async with Gateway(GatewayConfig(upstream=UpstreamConfig(args.base_url, engine=args.engine), store=store)) as gw:
        async with ChatPolicy(ChatPolicyConfig(model=args.model, sampling=sampling)) as policy:
            return await resume(run, args.episode, at=args.at, policy=policy, out=out, samples=args.samples,
                                config=_config(args), gateway=gw)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from boxgym.errors import BoxgymError
    from boxgym.replay import DEFAULT_NORMALISERS, open_run

    if args.replay_command == "redrive" and args.list_normalisers:
        for n in DEFAULT_NORMALISERS:
            print(f"{n.name:<10} {n.replacement:<12} {n.description}\n{'':<10} {n.pattern}")
        return 0
    if args.run is None:
        print("boxgym replay: name the run directory", file=sys.stderr)
        return 2
    try:
        run_dir = open_run(args.run)
        mode = {"rescore": _rescore, "redrive": _redrive, "resume": _resume}[args.replay_command]
        status, summary = mode(args, run_dir)
    except BoxgymError as exc:
        print(f"boxgym replay: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary))
    return status
