"""boxgym/ScienceWorld-v0 on real Docker, through gym.make: ScienceWorld's own gold action
sequences reach its full score on every one of its 30 tasks, in one sandbox whose JVM serves
them all; empty, invalid and wrong sequences do not; the agent cannot reach the simulator."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time

import gymnasium as gym
import pytest

import boxgym.envs  # noqa: F401 - registers the ids
from boxgym.envs.runner import run_sync
from boxgym.toolsets.shell import ShellToolset

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# The longest gold paths (inclined-plane-friction-unnamed-surfaces, the mendelian-genetics tasks)
# run past ScienceWorld's default of 100 moves.
STEP_LIMIT = 250


@pytest.fixture(scope="module")
def env():
    made = gym.make("boxgym/ScienceWorld-v0", pool_size=1, step_limit=STEP_LIMIT)
    yield made
    made.close()


def play(env, actions):
    """Play ``actions`` until the episode ends; the summed reward, the last info, terminated, truncated."""
    total, info, terminated, truncated = 0.0, {"simulator": {}}, False, False
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
        if terminated or truncated:
            break
    return total, info, terminated, truncated


#: Sandboxes that share the 30 gold runs, each with one JVM that serves all of its tasks.
GOLD_SANDBOXES = 2


async def play_gold(env, task_ids: list[str]) -> list[tuple[str, int, int, float]]:
    """Each task's gold path in ``env``, one after the other; asserts each reaches the full score."""
    rows = []
    for task_id in task_ids:
        t0 = time.monotonic()
        _, info = await env.areset(options={"task_id": task_id})
        assert not info["infra_failure"], info["error"]
        start_score = info["metadata"]["score"]
        gold = await env.areference_actions()
        total, terminated, truncated = 0.0, False, False
        for action in gold:
            _, reward, terminated, truncated, info = await env.astep(action)
            total += reward
            if terminated or truncated:
                break
        simulator = info["simulator"]
        assert simulator["score"] == 100 and simulator["completed"], (task_id, simulator, len(gold))
        assert terminated and not truncated and info["end_reason"] == "env_terminated"
        assert total == pytest.approx((100 - start_score) / 100), task_id
        rows.append((task_id, len(gold), simulator["moves"], time.monotonic() - t0))
    return rows


@pytest.mark.timeout(1200)
async def test_gold_paths_reach_full_score_on_every_task():
    began = time.monotonic()
    made = [gym.make("boxgym/ScienceWorld-v0", pool_size=1, step_limit=STEP_LIMIT) for _ in range(GOLD_SANDBOXES)]
    envs = [env.unwrapped for env in made]
    try:
        starts = [await env.areset(options={"task_id": "find-plant/0"}) for env in envs]
        names = await envs[0].blackbox.tasks(envs[0].program)
        assert len(names) == 30
        sandboxes = [env.sandbox for env in envs]
        # Round robin over the sorted names puts the two slow mendelian-genetics tasks apart.
        groups = [[f"{name}/0" for name in sorted(names)[k::GOLD_SANDBOXES]] for k in range(GOLD_SANDBOXES)]
        results = await asyncio.gather(*(play_gold(env, group) for env, group in zip(envs, groups)))
        assert [env.sandbox for env in envs] == sandboxes  # one sandbox, one JVM, every task of its group
    finally:
        for env in envs:
            await env.aclose()
    took = time.monotonic() - began
    jvm = ", ".join(f"{info['timings']['simulator_start_s']:.2f}s" for _, info in starts)
    lines = [f"ScienceWorld gold paths: 30 tasks in {took:.1f}s on {GOLD_SANDBOXES} sandboxes (JVM starts: {jvm})"]
    for rows in results:
        for task, gold, moves, seconds in rows:
            lines.append(f"  {task:50s} gold {gold:3d}  moves {moves:3d}  {seconds:5.1f}s")
    print("\n" + "\n".join(lines), file=sys.stderr)


def test_empty_invalid_and_wrong_action_sequences_do_not_score(env):
    _, info = env.reset(options={"task_id": "melt/0"})
    assert info["metadata"]["score"] < 100  # doing nothing: the episode goes on, short of the full score
    total, last, terminated, truncated = play(env, ["", "fly to the moon", "xyzzy", "focus on"] * 5)
    assert total == 0 and not terminated and not truncated
    assert last["simulator"]["score"] == info["metadata"]["score"] and not last["simulator"]["completed"]
    # Another task's gold path: it moves around and may score a little, never the full score.
    _, info = env.reset(options={"task_id": "boil/0"})
    boil = env.unwrapped.reference_actions()
    _, info = env.reset(options={"task_id": "melt/0"})
    total, last, terminated, truncated = play(env, boil)
    assert last["simulator"]["score"] < 100 and not last["simulator"]["completed"]


CHEAT = textwrap.dedent("""
    import json, os, socket, subprocess
    out = {}
    sim = [int(p) for p in os.listdir("/proc") if p.isdigit() and os.stat(f"/proc/{p}").st_uid == 10002]
    out["sim_pids"] = sim
    out["kill"] = []
    for pid in sim:
        try:
            os.kill(pid, 9)
            out["kill"].append("killed")
        except PermissionError:
            out["kill"].append("denied")
    out["fds"] = []
    for pid in sim:
        for what in (f"/proc/{pid}/fd", f"/proc/{pid}/mem", f"/proc/{pid}/environ"):
            try:
                os.listdir(what) if what.endswith("fd") else open(what, "rb").read(1)
                out["fds"].append("opened " + what)
            except PermissionError:
                out["fds"].append("denied")
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):  # the JVM listens on ::ffff:127.0.0.1
        for line in open(table).read().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # listening
                ports.append(int(fields[1].split(":")[1], 16))
    out["ports"] = ports
    out["gateway"] = []
    from py4j.java_gateway import GatewayParameters, JavaGateway
    for port in ports:
        try:
            gateway = JavaGateway(gateway_parameters=GatewayParameters(port=port, auto_field=True))
            gateway.jvm.scienceworld.runtime.pythonapi.PythonInterface()
            out["gateway"].append("forged")
        except Exception as exc:
            out["gateway"].append(type(exc).__name__)
    try:
        from scienceworld import ScienceWorldEnv
        out["package"] = "imported"
    except ImportError as exc:
        out["package"] = type(exc).__name__
    import glob
    jar = "/usr/local/lib/python3.11/dist-packages/scienceworld/scienceworld.jar"
    for name, how in (("read_jar", "rb"), ("write_jar", "ab")):
        try:
            open(jar, how).close()
            out[name] = "opened"
        except OSError as exc:
            out[name] = type(exc).__name__
    print(json.dumps(out))
""")


def test_the_agent_cannot_reach_the_simulator_to_forge_a_score():
    """An agent with a shell attacks the simulator beside it: it may see its processes, but not
    signal them, open their pipes, drive the JVM's gateway, or read or change the package."""
    env = gym.make("boxgym/ScienceWorld-v0", pool_size=1, tools=ShellToolset())
    try:
        _, info = env.reset(options={"task_id": "find-plant/0"})
        start_score = info["metadata"]["score"]
        arguments = json.dumps({"command": f"python3 - <<'EOF'\n{CHEAT}\nEOF"})
        call = {"id": "c", "type": "function", "function": {"name": "bash", "arguments": arguments}}
        obs, reward, terminated, truncated, info = env.step({"role": "assistant", "content": "", "tool_calls": [call]})
        report = json.loads(next(line for line in obs[0]["content"].splitlines() if line.startswith("{")))
        assert len(report["sim_pids"]) >= 2  # the program and its JVM: visible, and out of reach
        assert set(report["kill"]) == {"denied"} and set(report["fds"]) == {"denied"}
        assert report["ports"] and "forged" not in report["gateway"]
        assert report["package"] in ("ImportError", "ModuleNotFoundError")
        assert report["read_jar"] == "PermissionError" and report["write_jar"] in ("PermissionError", "OSError")
        obs, reward, terminated, truncated, info = env.step("look around")
        assert not info["infra_failure"] and info["simulator"]["score"] == start_score and reward == 0
        processes = run_sync(env.unwrapped.sandbox.exec(["ps", "-eo", "uid=,comm="], user="root")).stdout.split()
        assert ["10002", "java"] == processes[processes.index("java") - 1 : processes.index("java") + 1]
    finally:
        env.close()
