"""Chaos: episodes through the rollout manager while sandboxes, tool servers and the gateway are killed.

The demo's stack runs ``--episodes`` episodes: the scripted engine replays each
task's reference solution through a gateway into real envs in Docker
sandboxes, and the judges score them. Meanwhile a chaos task, every
``--fault-interval`` seconds on average, does one of: ``docker kill`` of a
running episode's sandbox, ``kill -9`` of the tool server inside one (through
``docker exec``), or, every ``--gateway-every``-th fault, a restart of the
gateway (it runs as its own process on a fixed port: SIGKILL, then a new one).
Some episodes misbehave on purpose first: a fork bomb (contained, so the
episode goes on and succeeds) or files that fill the sandbox's memory limit
(the agent's wreck: scored 0, never retried).

Every episode must end as a success, an agent failure or a retried
infrastructure failure. The report (with ``--json`` one JSON object on the
last line) counts them and what went wrong: ``episodes_lost`` (ended any other
way, or never: must be 0), ``counted_twice`` (must be 0), ``misattributed``
(a planned wreck not scored as the agent's, or a fault scored as the agent's:
must be 0), ``containers_left`` after everything closed (must be 0), the
trajectory lines that do not parse (must be 0), and the time to recover: from
a sandbox fault to its episode's next attempt, and from a gateway kill to the
new gateway answering.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..rollout.state import Episode

FAMILIES = (("boxgym/Code-v0", "code"), ("boxgym/Shell-v0", "shell"), ("boxgym/SQL-v0", "sql"))
LEVELS = 4
#: An agent that fills its sandbox's memory with files (/tmp holds more than the limit), then runs on.
WRECK = "head -c 400M /dev/zero > /tmp/fill; for i in $(seq 20); do python3 -c 'x = bytearray(32 * 2**20)'; done"
#: A fork bomb, killed at its call's timeout; the episode then goes on.
BOMB = "bomb() { bomb | bomb & }; bomb; sleep 30"
SERVER = "^python3 -I /opt/boxgym/toolserver/main.py"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, default=500, help="episodes to run (default 500)")
    parser.add_argument("--concurrency", type=int, default=8, help="episodes in flight at once (default 8)")
    parser.add_argument("--fault-interval", type=float, default=1.0, help="mean seconds between faults (default 1)")
    parser.add_argument("--gateway-every", type=int, default=15, help="every Nth fault restarts the gateway (0: never)")
    parser.add_argument("--agent-misbehaves", type=float, default=0.08, help="share of episodes that bomb or wreck")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default=None, help="where records go (default: a temporary directory)")


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    episodes: int = 500
    concurrency: int = 8
    fault_interval: float = 1.0
    gateway_every: int = 15
    agent_misbehaves: float = 0.08  # half of them a fork bomb, half a wreck
    attempts: int = 3  # per episode, on an infrastructure failure
    seed: int = 0
    image: str = "slim"


@dataclass(slots=True)
class ChaosReport:
    episodes: int
    seconds: float
    outcomes: dict[str, int]  # success, agent_failure, infra_retried
    episodes_lost: int
    counted_twice: int
    misattributed: int
    faults: dict[str, int]  # docker_kill, server_kill, gateway_restart
    faults_absorbed: int  # hit an episode after its last use of the sandbox: nothing to recover
    retries: int
    containers_left: int
    trajectory_lines: int
    unparsable_lines: int
    recovery_s: dict[str, float | None]  # from a sandbox fault to its episode's next attempt
    gateway_recovery_s: dict[str, float | None]  # from a gateway kill to a new one answering
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "p50": None, "max": None}
    return {"n": len(values), "p50": round(statistics.median(values), 3), "max": round(max(values), 3)}


class _Gateway:
    """``boxgym gateway serve`` as a process of its own on a fixed port, so it can be killed and restarted."""

    def __init__(self, upstream: str, store: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._argv = [sys.executable, "-m", "boxgym", "gateway", "serve", "--upstream", upstream, "--engine", "vllm",
                      "--store", str(store), "--port", str(self.port)]  # fmt: skip
        package_parent = str(Path(__file__).resolve().parents[2])  # the same boxgym as this process
        self._env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))}
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> float:
        """Start it and return the seconds until it answers."""
        import aiohttp

        started = time.monotonic()
        self._proc = await asyncio.create_subprocess_exec(*self._argv, env=self._env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)  # fmt: skip
        async with aiohttp.ClientSession() as session:
            while True:
                if self._proc.returncode is not None:
                    raise RuntimeError(f"the gateway exited at start with status {self._proc.returncode}")
                try:
                    async with session.get(self.url + "/health", timeout=aiohttp.ClientTimeout(total=1)) as resp:
                        if resp.status == 200:
                            return time.monotonic() - started
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if time.monotonic() - started > 60:
                    raise RuntimeError("the gateway did not answer within 60 s")
                await asyncio.sleep(0.05)

    async def restart(self) -> float:
        """SIGKILL, as a crash would, then a new process on the same port; seconds until it answers."""
        started = time.monotonic()
        await self.aclose(kill=True)
        await self.start()
        return time.monotonic() - started

    async def aclose(self, *, kill: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.kill() if kill else proc.terminate()
            await proc.wait()


class _Tracker:
    """The live attempt of every episode, the faults that hit them, and how long recovery took."""

    def __init__(self) -> None:
        self.live: dict[str, Episode] = {}
        self.faulted: dict[str, float] = {}  # root id -> time of a fault its episode has not recovered from
        self.recoveries: list[float] = []

    def started(self, ep: Episode) -> None:
        root = ep.episode_id.split("~")[0]
        if root in self.faulted and ep.episode_id != root:
            self.recoveries.append(time.monotonic() - self.faulted.pop(root))
        self.live[root] = ep

    def victim(self, rng: random.Random) -> tuple[str, str] | None:
        """A running episode's (root id, container id), or None when no episode holds a sandbox."""
        running = [
            (root, ep.sandbox.id)
            for root, ep in self.live.items()
            if ep.outcome is None and ep.sandbox is not None and not ep.sandbox.closed and root not in self.faulted
        ]
        return rng.choice(running) if running else None


def _tasks(n: int) -> list[Any]:
    from ..rollout import TaskRef

    per_family = [(env_id, family, level) for env_id, family in FAMILIES for level in range(LEVELS)]
    return [
        TaskRef(f"{family}/d{level}/s{i // len(per_family)}", env_id)
        for i, (env_id, family, level) in ((i, per_family[i % len(per_family)]) for i in range(n))
    ]


def _plans(n: int, share: float, rng: random.Random) -> list[str]:
    return [("bomb" if rng.random() < 0.5 else "wreck") if rng.random() < share else "normal" for _ in range(n)]


def _scripter(engine: Any, plans: dict[str, str], tracker: _Tracker) -> Any:
    from ..envs import reference_messages
    from ..envs.suites import code, shell, sql
    from ..gateway import Reply

    suites = {"code": code.task_set(), "shell": shell.task_set(), "sql": sql.task_set()}

    def script(ep: Episode) -> None:
        task = suites[ep.task.task_id.split("/")[0]].get(ep.task.task_id)
        replies = [
            Reply.call(call["function"]["name"], **json.loads(call["function"]["arguments"] or "{}"))
            for message in reference_messages(task)
            for call in message.get("tool_calls") or ()
        ]
        plan = plans[ep.episode_id.split("~")[0]]
        if plan == "bomb":
            replies.insert(0, Reply.call("bash", command=BOMB, timeout=2))
        elif plan == "wreck":
            replies[:0] = [Reply.call("bash", command=WRECK, timeout=60), Reply.call("bash", command="ls")]
        engine.script(ep.episode_id, [*replies, Reply.say("Done.")])
        tracker.started(ep)

    return script


async def _fault(kind: str, container: str, engine: Any) -> bool:
    from ..errors import EngineError

    if kind == "docker_kill":
        try:
            await engine.request("POST", f"/containers/{container}/kill", ok=(204,))
        except EngineError:
            return False  # already gone: its episode ended meanwhile
        return True
    proc = await asyncio.create_subprocess_exec(
        "docker", "exec", container, "pkill", "-9", "-f", SERVER,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return await proc.wait() == 0


async def _chaos(cfg: ChaosConfig, tracker: _Tracker, gateway: _Gateway, engine: Any, rng: random.Random,
                 faults: Counter, gateway_times: list[float]) -> None:  # fmt: skip
    n = 0
    while True:
        await asyncio.sleep(rng.expovariate(1 / cfg.fault_interval))
        n += 1
        if cfg.gateway_every and n % cfg.gateway_every == 0:
            gateway_times.append(await gateway.restart())
            faults["gateway_restart"] += 1
            continue
        victim = tracker.victim(rng)
        if victim is None:
            continue
        root, container = victim
        kind = rng.choice(("docker_kill", "server_kill"))
        if await _fault(kind, container, engine):
            tracker.faulted[root] = time.monotonic()
            faults[kind] += 1


def _read_trajectories(run_dir: Path) -> tuple[int, int, Counter]:
    """(lines, lines that are not a record, EpisodeEnd records per attempt id)."""
    from ..trajectories import EpisodeEnd
    from ..trajectories.records import from_json

    lines = unparsable = 0
    ends: Counter = Counter()
    for line in (run_dir / "trajectories.jsonl").read_text().splitlines():
        lines += 1
        try:
            record = from_json(json.loads(line))
        except (ValueError, KeyError, TypeError):
            unparsable += 1
            continue
        if isinstance(record, EpisodeEnd):
            ends[record.episode_id] += 1
    return lines, unparsable, ends


async def run_chaos(cfg: ChaosConfig, run_dir: Path) -> ChaosReport:
    """Run the chaos and check every episode's end; see the module docstring."""
    from contextlib import AsyncExitStack
    from dataclasses import replace

    from ..envs import EnvFactory
    from ..gateway import MockEngine, MockEngineConfig
    from ..rollout import ChatPolicy, Concurrency, EndReason, EpisodeBudget, Outcome, Retries, RolloutConfig, RolloutManager
    from ..sandboxes import SandboxPool, SandboxSpec
    from ..sandboxes.engine import DockerEngine
    from ..sandboxes.ownership import LABEL_RUN, current_run

    rng = random.Random(cfg.seed)
    tasks = _tasks(cfg.episodes)
    plans = dict(zip((f"chaos-{i}" for i in range(cfg.episodes)), _plans(cfg.episodes, cfg.agent_misbehaves, rng)))
    tracker, faults, gateway_times = _Tracker(), Counter(), []
    base = SandboxSpec(image=cfg.image)
    # /tmp holds more than the memory limit, so that a wreck is possible at all; the tasks need little.
    spec = replace(base, limits=replace(base.limits, memory_mb=256, tmp_mb=384, workdir_mb=128, pids=256))
    config = RolloutConfig(
        concurrency=Concurrency(episodes=cfg.concurrency),
        budget=EpisodeBudget(max_turns=20),
        retries=Retries(policy_call_attempts=5, episode_attempts=cfg.attempts),
    )
    started = time.monotonic()
    async with AsyncExitStack() as stack:
        engine = await stack.enter_async_context(DockerEngine())
        mock = await stack.enter_async_context(MockEngine(MockEngineConfig()))
        gateway = _Gateway(mock.url, run_dir / "gateway.jsonl")
        stack.push_async_callback(gateway.aclose)
        await gateway.start()
        pool = await stack.enter_async_context(SandboxPool(spec, size=min(cfg.concurrency, 8), engine=engine))
        policy = await stack.enter_async_context(ChatPolicy(model="boxgym-scripted"))
        manager = await stack.enter_async_context(
            RolloutManager(EnvFactory(), policy, config=config, provider=pool, run_dir=run_dir, name="chaos",
                           episode_base_url=gateway.url + "/episodes/{episode_id}/v1",
                           on_episode_start=_scripter(mock, plans, tracker), progress=False)  # fmt: skip
        )
        chaos = asyncio.create_task(_chaos(cfg, tracker, gateway, engine, rng, faults, gateway_times))
        try:
            results = await manager.collect(tasks)
        finally:
            chaos.cancel()
            await asyncio.gather(chaos, return_exceptions=True)
        retries = manager.metrics.episode_retries
    seconds = time.monotonic() - started

    outcomes: Counter = Counter()
    problems: list[str] = []
    misattributed = 0
    for result in results:
        plan = plans.get(result.episode_id.split("~")[0])
        if result.reason is EndReason.SANDBOX_WRECKED or (result.ok and plan == "wreck"):
            outcomes["agent_failure"] += 1
            misattributed += plan != "wreck"
        elif result.ok:
            outcomes["success" if (result.reward or 0) >= 1 else "agent_failure"] += 1
        elif result.outcome is Outcome.INFRA_FAILURE and result.attempts >= cfg.attempts:
            outcomes["infra_retried"] += 1
            misattributed += plan == "wreck" and result.attempts == 1
        else:
            problems.append(f"{result.episode_id}: {result.outcome.value}/{result.reason.value}: {result.error}")
    roots = [r.episode_id.split("~")[0] for r in results]
    counted_twice = len(roots) - len(set(roots))
    lost = cfg.episodes - len(set(roots)) + len(problems)
    async with DockerEngine() as engine:
        left = await engine.list_containers(labels={LABEL_RUN: current_run().run_id})
    lines, unparsable, ends = _read_trajectories(run_dir)
    # Every attempt ends once in the record, and every result's last attempt has its end there.
    counted_twice += sum(n > 1 for n in ends.values())
    lost += sum(result.episode_id not in ends for result in results)
    for name, value in (("episodes_lost", lost), ("counted_twice", counted_twice), ("misattributed", misattributed),
                        ("containers_left", len(left)), ("unparsable_lines", unparsable)):  # fmt: skip
        if value:
            problems.append(f"{name} = {value}")
    return ChaosReport(
        episodes=cfg.episodes,
        seconds=round(seconds, 1),
        outcomes=dict(outcomes),
        episodes_lost=lost,
        counted_twice=counted_twice,
        misattributed=misattributed,
        faults=dict(faults),
        faults_absorbed=len(tracker.faulted),
        retries=retries,
        containers_left=len(left),
        trajectory_lines=lines,
        unparsable_lines=unparsable,
        recovery_s=_stats(tracker.recoveries),
        gateway_recovery_s=_stats(gateway_times),
        problems=problems[:20],
    )


def run(args: argparse.Namespace) -> int:
    cfg = ChaosConfig(
        episodes=args.episodes,
        concurrency=args.concurrency,
        fault_interval=args.fault_interval,
        gateway_every=args.gateway_every,
        agent_misbehaves=args.agent_misbehaves,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory(prefix="boxgym-chaos-") as tmp:
        run_dir = Path(args.run_dir or tmp)
        run_dir.mkdir(parents=True, exist_ok=True)
        report = asyncio.run(run_chaos(cfg, run_dir))
    fields = asdict(report)
    print(f"{report.episodes} episodes in {report.seconds:.0f}s: {report.outcomes}", file=sys.stderr)
    print(f"faults {report.faults} ({report.faults_absorbed} absorbed), {report.retries} retries; recovery "
          f"{report.recovery_s}, gateway {report.gateway_recovery_s}", file=sys.stderr)  # fmt: skip
    print(f"lost {report.episodes_lost}, counted twice {report.counted_twice}, misattributed {report.misattributed}, "
          f"containers left {report.containers_left}, unparsable lines {report.unparsable_lines}", file=sys.stderr)  # fmt: skip
    for problem in report.problems:
        print(f"  problem: {problem}", file=sys.stderr)
    print(json.dumps(fields) if args.json else json.dumps(fields, indent=2))
    return 0 if report.ok else 1
