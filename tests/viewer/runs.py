"""Run directories for the viewer's tests: written with the real writers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from boxgym.envs import EnvFactory
from boxgym.gateway import Gateway, GatewayConfig, MockEngine, Reply, StoreConfig, UpstreamConfig
from boxgym.rollout import ChatPolicy, RolloutManager, TaskRef
from boxgym.sandboxes import FakeProvider
from boxgym.trajectories import EndReason, EpisodeEnd, EpisodeStart, Outcome, StepRecord, TrajectoryWriter

from ..replay.recorded import ENV, SCRIPTS, write_tasks


def obs(text: str) -> list[dict[str, Any]]:
    return [{"role": "tool", "tool_call_id": "c", "content": text}]


def step(eid: str, i: int, text: str, **kw: Any) -> StepRecord:
    action = {"role": "assistant", "content": None,
              "tool_calls": [{"id": "c", "type": "function", "function": {"name": "bash", "arguments": f'{{"command": "{text}"}}'}}]}  # fmt: skip
    return StepRecord(eid, i, action, tool_calls=action["tool_calls"], observation=obs(f"out of {text}"), **kw)


def synthetic(path: Path, n: int = 30) -> Path:
    """``n`` root episodes over two envs (every third failed, every fifth an infra failure), a
    root with two sub-agents (one of them on the critical path) and a judge episode."""
    with TrajectoryWriter(path) as w:
        for i in range(n):
            eid = f"ep-{i:03d}"
            env = "boxgym/Code-v0" if i % 2 else "boxgym/SQL-v0"
            w.write(EpisodeStart(eid, env, f"task/{i}", meta={"group_id": f"g{i // 2}", "sample_index": i % 2}, time=1000.0 + i))
            steps = 1 + i % 4
            for k in range(steps):
                w.write(step(eid, k, f"cmd {i}.{k}", timings={"policy_s": 0.1, "env_s": 0.2 + k}))
            if i % 5 == 4:
                w.write(EpisodeEnd(eid, Outcome.INFRA_FAILURE, None, steps, EndReason.INFRA, error="SandboxBroken: died", time=1001.0 + i))
            else:
                reward = 0.0 if i % 3 == 0 else 1.0
                w.write(EpisodeEnd(eid, Outcome.TERMINATED, reward, steps, EndReason.SUBMITTED, meta={"completion_tokens": 10 * i},
                                   time=1002.0 + i))  # fmt: skip
        w.write(EpisodeStart("root", "boxgym/Code-v0", "tree", meta={"group_id": "gt"}, time=2000.0))
        for k in range(3):
            w.write(step("root", k, f"root {k}"))
        for name, steps, env in (("fast", 1, "subagent"), ("slow", 3, "subagent"), ("judge", 2, "agent_judge")):
            cid = f"root.{name}"
            w.write(EpisodeStart(cid, env, "sub", parent_episode_id="root",
                                 meta={"subagent": name, "spawned_at_step": 1, "frozen": True}, time=2001.0))  # fmt: skip
            for k in range(steps):
                w.write(step(cid, k, f"{name} {k}"))
            w.write(EpisodeEnd(cid, Outcome.TERMINATED, None, steps, EndReason.NO_ACTION, time=2002.0))
        w.write(EpisodeEnd("root", Outcome.TERMINATED, 1.0, 3, EndReason.SUBMITTED, time=2003.0,
                           meta={"children": ["root.fast", "root.slow", "root.judge"]}))  # fmt: skip
    return path


async def with_gateway(path: Path, tmp: Path) -> Path:
    """A real run of boxgym's env (fake sandboxes) whose agent is the scripted engine behind the
    gateway: trajectories.jsonl and gateway.jsonl with the engine's tokens and logprobs."""
    task_file = write_tasks(tmp / "tasks.jsonl")
    provider = FakeProvider()
    async with MockEngine() as engine:

        def script(episode: Any) -> None:
            replies = []
            for call in SCRIPTS[episode.task.task_id]:
                fn = call["function"]
                replies.append(Reply.call(fn["name"], **json.loads(fn["arguments"])))
            engine.script(episode.episode_id, replies)

        config = GatewayConfig(upstream=UpstreamConfig(engine.url), store=StoreConfig(str(path / "gateway.jsonl")))
        async with Gateway(config) as gw, ChatPolicy(model="m") as policy:
            factory = EnvFactory(tasks=str(task_file), provider=provider)
            async with RolloutManager(factory, policy, gateway=gw, on_episode_start=script, run_dir=path,
                                      progress=False, name="gw") as manager:  # fmt: skip
                results = await manager.collect([TaskRef(t, ENV) for t in ("answer", "sql", "code")])
            await factory.aclose()
    await provider.aclose()
    assert [r.reward for r in results] == [1.0, 1.0, 1.0], [(r.reason, r.error) for r in results]
    return path
