"""``boxgym demo``: the main job end to end.

By default the scripted engine replays each task's reference solution as if a
model had produced it. Every call goes through the embedded gateway (which
records the engine's token ids and logprobs per episode), into real
environments in Docker sandboxes, and is judged. The run directory gets the
trajectories, the gateway's token records and the trainer's view; the summary
table says what happened per env family.

``--base-url`` puts a real OpenAI-compatible engine (vLLM, SGLang, ...) behind
the gateway instead; the model then solves the same tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HELP = "run the demo: reference solutions replayed through gateway, envs and judges, with a summary table"

FAMILIES = [("boxgym/Code-v0", "code"), ("boxgym/Shell-v0", "shell"), ("boxgym/SQL-v0", "sql")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=2, help="tasks per difficulty level and env (default 2)")
    parser.add_argument("--levels", type=int, default=4, help="difficulty levels to run, from 0 (default 4)")
    parser.add_argument("--concurrency", type=int, default=12, help="episodes in flight at once")
    parser.add_argument("--run-dir", default=None, help="where to write records (default runs/demo-<time>)")
    parser.add_argument("--base-url", default=None, help="a real engine's URL (e.g. http://127.0.0.1:8000)")
    parser.add_argument("--engine", default="vllm", choices=["vllm", "sglang", "openai"], help="with --base-url")
    parser.add_argument("--model", default="boxgym-scripted", help="model name sent to the engine")
    parser.add_argument("--max-turns", type=int, default=20, help="policy calls per episode")
    parser.add_argument("--ray", type=int, default=0, metavar="N",
                        help="run the episodes on N Ray actors (RAY_ADDRESS's cluster, or a local one), each with its own gateway")  # fmt: skip


def _tasks(args: argparse.Namespace) -> list[Any]:
    from boxgym.rollout import TaskRef

    return [
        TaskRef(f"{family}/d{level}/s{seed}", env_id)
        for env_id, family in FAMILIES
        for level in range(args.levels)
        for seed in range(args.seeds)
    ]


def _scripter(engine: Any) -> Any:
    """Before each episode starts, give the scripted engine that task's reference solution."""
    from boxgym.envs import reference_messages
    from boxgym.envs.suites import code, shell, sql
    from boxgym.gateway import Reply

    suites = {"code": code.task_set(), "shell": shell.task_set(), "sql": sql.task_set()}

    def script(episode: Any) -> None:
        task = suites[episode.task.task_id.split("/")[0]].get(episode.task.task_id)
        replies = []
        for message in reference_messages(task):
            for call in message.get("tool_calls") or ():
                fn = call["function"]
                replies.append(Reply.call(fn["name"], **json.loads(fn["arguments"] or "{}")))
        engine.script(episode.episode_id, [*replies, Reply.say("Done.")])

    return script


async def _manager(args: argparse.Namespace, run_dir: Path, stack: Any, name: str | None = None) -> Any:
    """The demo's manager, its scripted engine (or real one) and gateway; on Ray, one per actor."""
    from boxgym.envs import EnvFactory
    from boxgym.gateway import Gateway, GatewayConfig, MockEngine, MockEngineConfig, StoreConfig, UpstreamConfig
    from boxgym.rollout import EpisodeBudget, ChatPolicy, Concurrency, RolloutConfig, RolloutManager

    if args.base_url is None:
        engine = await stack.enter_async_context(MockEngine(MockEngineConfig()))
        upstream, on_start = UpstreamConfig(engine.url, engine="vllm"), _scripter(engine)
    else:
        upstream, on_start = UpstreamConfig(args.base_url, engine=args.engine), None
    store = StoreConfig(path=str(run_dir / "gateway.jsonl"))
    gateway = await stack.enter_async_context(Gateway(GatewayConfig(upstream=upstream, store=store)))
    policy = await stack.enter_async_context(ChatPolicy(model=args.model))
    factory = EnvFactory(pool_size=min(args.concurrency, 8))
    stack.push_async_callback(factory.aclose)
    config = RolloutConfig(concurrency=Concurrency(episodes=args.concurrency), budget=EpisodeBudget(max_turns=args.max_turns))
    return RolloutManager(factory, policy, config=config, gateway=gateway, on_episode_start=on_start,
                          run_dir=run_dir, progress=name is None, name=name)  # fmt: skip


async def _shard_manager(args: argparse.Namespace, shard: Any, resources: Any) -> Any:
    return await _manager(args, shard.run_dir, resources, name=shard.name)


async def _run(args: argparse.Namespace, run_dir: Path) -> list[Any]:
    from contextlib import AsyncExitStack

    if args.ray:
        # Each actor runs its share with its own embedded gateway (and scripted engine),
        # recording into its shard: a model call never leaves the process of its episode.
        from functools import partial

        from boxgym.rollout.ray import Placement, RayRolloutManager

        shard_args = argparse.Namespace(**{**vars(args), "concurrency": -(-args.concurrency // args.ray)})
        placement = Placement(actors=args.ray, num_cpus=1)
        async with RayRolloutManager(partial(_shard_manager, shard_args), placement=placement, run_dir=run_dir, progress=True) as manager:  # fmt: skip
            return await manager.collect(_tasks(args))
    async with AsyncExitStack() as stack:
        manager = await stack.enter_async_context(await _manager(args, run_dir, stack))
        return await manager.collect(_tasks(args))


# Per env: what happened, then what it cost on average per episode (UA2's runtime statistics:
# tokens in and out, seconds in the model and in tools, the sandbox's CPU-seconds and peak memory).
_COLUMNS = (
    ("env", "<17"), ("episodes", ">8"), ("reward", ">6"), ("steps", ">5"), ("recorded", ">8"), ("sampled", ">7"),
    ("fail", ">4"), ("tok in", ">7"), ("tok out", ">7"), ("model s", ">7"), ("tool s", ">6"), ("cpu s", ">5"),
    ("peak MB", ">7"),
)  # fmt: skip


def _mean(values: list[float | None], spec: str) -> str:
    known = [v for v in values if v is not None]
    return format(sum(known) / len(known), spec) if known else "-"


def _summary(results: list[Any], run_dir: Path, seconds: float) -> None:
    from boxgym.rollout import to_training, training_to_json

    rows: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(float))
    usage: dict[str, list[Any]] = defaultdict(list)
    with (run_dir / "training.jsonl").open("w") as out:
        for result in results:
            training = to_training(result)
            out.write(json.dumps(training_to_json(training)) + "\n")
            row = rows[result.task.env_id]
            row["episodes"] += 1
            row["steps"] += result.steps
            row["tokens"] += sum(len(s.token_ids) for s in training.sequences)
            row["sampled"] += sum(sum(s.loss_mask) for s in training.sequences)
            usage[result.task.env_id].append(result.usage)
            if result.ok:
                row["scored"] += 1
                row["reward"] += result.reward
            else:
                row["failures"] += 1
    print()
    header = " ".join(format(name, spec) for name, spec in _COLUMNS)
    print(header)
    print("-" * len(header))
    for env_id, row in sorted(rows.items()):
        mean = row["reward"] / row["scored"] if row["scored"] else float("nan")
        used = usage[env_id]
        cells = (
            env_id, int(row["episodes"]), f"{mean:.3f}", int(row["steps"]), int(row["tokens"]), int(row["sampled"]),
            int(row["failures"]), _mean([u.prompt_tokens for u in used], ".0f"),
            _mean([u.completion_tokens for u in used], ".0f"), _mean([u.model_s for u in used], ".3f"),
            _mean([u.tool_s for u in used], ".3f"), _mean([u.sandbox_cpu_s for u in used], ".2f"),
            _mean([u.sandbox_peak_memory_mb for u in used], ".0f"),
        )  # fmt: skip
        print(" ".join(format(cell, spec) for cell, (_, spec) in zip(cells, _COLUMNS)))
    print("\nrecorded/sampled: token ids recorded, and sampled (loss mask 1), over the run; the columns from")
    print("'tok in' on are means per episode (tokens into and out of the model, seconds in model calls and")
    print("in tool calls, sandbox CPU-seconds and peak memory from its cgroup; '-': not measured).")
    print(f"\n{len(results)} episodes in {seconds:.1f}s. Records in {run_dir}/:")
    if (run_dir / "shards").is_dir():
        print("  shards/<actor>/     one per Ray actor, with its own two files below (RunDir reads them as one run)")
    print("  trajectories.jsonl  every step of every episode (boxgym.trajectories)")
    print("  gateway.jsonl       every model call with prompt/completion token ids and logprobs")
    print("  training.jsonl      per episode: token sequences, loss mask, behaviour logprobs, reward, cost, usage")
    failed = [r for r in results if not r.ok]
    for result in failed[:5]:
        print(f"  failed: {result.episode_id} {result.task.task_id}: {result.reason} {result.error or ''}")
    print("\nA real engine instead of the scripted one: boxgym demo --base-url http://127.0.0.1:8000 --model NAME")


def run(args: argparse.Namespace) -> int:
    from boxgym.errors import BoxgymError

    run_dir = Path(args.run_dir or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.mkdir(parents=True, exist_ok=True)
    source = "the scripted engine replaying reference solutions" if args.base_url is None else args.base_url
    n = len(FAMILIES) * args.levels * args.seeds
    print(f"boxgym demo: {n} episodes over {len(FAMILIES)} env families, {args.concurrency} at a time;")
    print(f"policy: {source}, through the embedded gateway; sandboxes: Docker, image 'slim'")
    if args.ray:
        from boxgym.rollout.ray import connect

        connect(num_cpus=max(args.ray, os.cpu_count() or 1))
    started = time.monotonic()
    try:
        results = asyncio.run(_run(args, run_dir))
    except BoxgymError as exc:
        print(f"boxgym demo: {exc}")
        return 1
    _summary(results, run_dir, time.monotonic() - started)
    return 0 if all(r.ok for r in results) else 1
