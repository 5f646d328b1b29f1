"""Bombs an agent can start: the tool server outlives each, kills it within a bounded time, and the
next command runs, as the agent and as root (the judges run as root)."""

from __future__ import annotations

import asyncio
import time

import pytest

from boxgym.errors import SandboxBroken, SandboxRefused, SandboxWrecked

from .conftest import call, docker, server_pid

pytestmark = pytest.mark.docker

BOMB = "bomb() { bomb | bomb & }; bomb"
# Detached, and holding what it takes: every process waits for its children, so the pids stay
# used (the classic bomb's processes also die and are replaced, which lets a command slip in).
DETACHED = "setsid bash -c 'b() { b & b & wait; }; b' </dev/null >/dev/null 2>&1 &"


async def wait_exhausted(sb, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not (await sb.health()).problems:
        assert time.monotonic() < deadline, "the bomb never filled the pids limit"
        await asyncio.sleep(0.05)


async def first_refusal(attempt) -> SandboxRefused:
    """The refusal a full pids limit gives. The bomb's own processes die and are replaced all the
    time, so a command may slip into a pid just freed: try until one meets the full limit."""
    for _ in range(50):
        try:
            await attempt()
        except SandboxRefused as exc:
            return exc
        await asyncio.sleep(0.02)
    raise AssertionError("no command met the full pids limit")


async def next_commands_run(sb) -> None:
    assert (await sb.exec("echo agent", timeout=10)).stdout == "agent\n"
    assert (await sb.exec("echo root", timeout=10, user="root")).stdout == "root\n"
    assert (await sb.health()).ok


async def test_a_detached_fork_bomb_is_named_killed_in_bounded_time_and_the_sandbox_recovers(sb):
    await sb.exec(DETACHED, timeout=10)
    await wait_exhausted(sb)
    health = await sb.health()
    assert not health.ok and "pids exhausted" in health.problems[0] and health.pids >= health.pids_max - 2
    for user in ("agent", "root"):
        refusal = await first_refusal(lambda: sb.exec("true", user=user, timeout=5))
        assert refusal.reason == "pids_exhausted" and "process limit" in str(refusal)
    started = time.monotonic()
    killed = await sb.kill_agent_processes()
    assert time.monotonic() - started < 3 and killed > 50
    await next_commands_run(sb)


@pytest.mark.parametrize("trial", range(3))
async def test_a_foreground_fork_bomb_dies_at_its_timeout_and_the_next_command_runs(sb, trial):
    started = time.monotonic()
    result = await sb.exec(f"{BOMB}; sleep 60", timeout=3)
    assert result.timed_out and time.monotonic() - started < 6
    # The health check answers quickly even while a bomb runs: the agent's processes run at SCHED_IDLE.
    await next_commands_run(sb)
    assert int((await sb.exec("ps -e --no-headers | wc -l", user="root")).stdout) < 10


async def test_the_server_answers_promptly_during_a_bomb(sb):
    await sb.exec(DETACHED, timeout=10)
    await wait_exhausted(sb)
    await asyncio.sleep(1)
    for _ in range(10):
        started = time.monotonic()
        await sb.health()
        assert time.monotonic() - started < 0.5
    await sb.kill_agent_processes()
    await next_commands_run(sb)


async def test_agent_processes_cannot_take_back_a_normal_cpu_policy(sb):
    policy = await sb.exec("chrt -p $$; chrt -o -p 0 $$ 2>&1; renice -n 0 -p $$ 2>&1; nice -n -1 true 2>&1")
    lines = policy.stdout.splitlines()
    assert "SCHED_IDLE" in lines[0]
    assert "Operation not permitted" in policy.stdout and "Permission denied" in policy.stdout
    assert "SCHED_OTHER" in (await sb.exec("chrt -p $$", user="root")).stdout


async def test_through_the_toolset_a_bomb_is_an_observation(sb, tools):
    result = await tools.run(call("bash", command=DETACHED), sb)
    assert result.ok
    await wait_exhausted(sb)
    for _ in range(50):  # as in first_refusal: until a call meets the full limit
        result = await tools.run(call("bash", command="echo hi"), sb)
        if not result.ok:
            break
    assert not result.ok and "process limit" in result.content and result.detail["reason"] == "pids_exhausted"
    await sb.kill_agent_processes()
    assert (await tools.run(call("bash", command="echo hi"), sb)).ok


async def test_a_memory_bomb_loses_its_own_process_not_the_server(sb):
    bomb = await sb.exec(["python3", "-c", "x = []\nwhile True: x.append(bytearray(50 * 2**20))"], timeout=30)
    assert bomb.exit_code in (-9, 137)
    health = await sb.health()
    assert health.ok and health.oom_kills >= 1


async def test_memory_filled_with_files_wrecks_the_sandbox_and_says_the_agent_did_it(spec, engine):
    from dataclasses import replace

    from boxgym.sandboxes.pool import sandbox

    tight = replace(spec, limits=replace(spec.limits, memory_mb=96, tmp_mb=256))
    async with sandbox(tight, engine=engine) as sb:
        await sb.exec("head -c 200M /dev/zero > /tmp/fill", timeout=30)  # killed at the limit; the file stays
        with pytest.raises(SandboxWrecked) as err:
            for _ in range(50):  # the server dies as soon as it needs a page it cannot get
                await sb.exec("python3 -c 'x = bytearray(32 * 2**20)'", timeout=10, user="root")
        assert "ran out of memory" in str(err.value) and "agent" in str(err.value)
        with pytest.raises(SandboxWrecked):
            await sb.health()


async def test_docker_kill_is_the_infrastructures_even_after_the_agent_hit_the_memory_limit(sb):
    await sb.exec(["python3", "-c", "x = []\nwhile True: x.append(bytearray(50 * 2**20))"], timeout=30)
    assert (await sb.health()).oom_kills >= 1
    docker("kill", sb.id)
    with pytest.raises(SandboxBroken) as err:
        await sb.exec("true")
    assert not isinstance(err.value, SandboxWrecked) and "from outside" in str(err.value)


async def test_the_tool_server_killed_from_outside_is_the_infrastructures(sb):
    docker("exec", sb.id, "kill", "-9", server_pid(sb.id))
    with pytest.raises(SandboxBroken) as err:
        await sb.exec("true")
    assert not isinstance(err.value, SandboxWrecked)
    assert "killed from outside" in str(err.value) and "not by the memory limit" in str(err.value)
