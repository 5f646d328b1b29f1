"""The Docker sandbox against the real engine: isolation, limits and failure reporting."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from dataclasses import replace

import pytest

from boxgym.errors import SandboxBroken, SandboxClosed, SandboxFileNotFound
from boxgym.sandboxes.config import AGENT_UID
from boxgym.sandboxes.docker import DockerSandbox
from boxgym.sandboxes.pool import sandbox

pytestmark = pytest.mark.docker


def inspect(container_id: str) -> dict:
    out = subprocess.run(["docker", "inspect", container_id], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]


async def test_inspect_shows_every_hardening_setting(spec, engine):
    async with sandbox(spec, engine=engine) as sb:
        info = inspect(sb.id)
    host = info["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["CapDrop"] == ["ALL"]
    assert set(host["CapAdd"]) == {"DAC_OVERRIDE", "KILL", "SETUID", "SETGID"}
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["ReadonlyRootfs"] is True
    assert host["PidsLimit"] == 128
    assert host["Memory"] == 256 * 1024 * 1024 and host["MemorySwap"] == host["Memory"]
    assert host["NanoCpus"] == 1_000_000_000
    assert host["Init"] is False and host["AutoRemove"] is True  # boxgym-init is PID 1, not Docker's tini
    assert {"Name": "nice", "Soft": 0, "Hard": 0} in host["Ulimits"]
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "1", "max-size": "1m"}}
    assert "size=64m" in host["Tmpfs"]["/workspace"]
    assert info["Config"]["Labels"]["boxgym.sandbox"].startswith("r")
    assert info["Config"]["Cmd"][0].endswith("/boxgym-init") and "--ttl" in info["Config"]["Cmd"]


async def test_commands_run_as_the_agent_in_the_workdir_and_the_root_is_read_only(spec, engine):
    async with sandbox(spec, engine=engine) as sb:
        who = await sb.exec("id -u; pwd; touch /etc/x 2>&1; ls /run/boxgym 2>&1")
        assert who.stdout.splitlines()[:2] == [str(AGENT_UID), "/workspace"]
        assert "Read-only file system" in who.stdout
        assert "Permission denied" in who.stdout  # the agent cannot reach the tool server's socket
        root = await sb.exec(["id", "-u"], user="root")
        assert root.stdout.strip() == "0"
        caps = await sb.exec("grep CapEff /proc/self/status")
        assert caps.stdout.split()[1] == "0000000000000000"  # the agent has no capabilities at all
        await sb.write_file("notes/a.txt", "hello")
        assert (await sb.stat("notes/a.txt")).size == 5
        assert (await sb.exec("stat -c %u notes/a.txt")).stdout.strip() == str(AGENT_UID)
        with pytest.raises(SandboxFileNotFound):
            await sb.read_file("/etc/shadow-nope")


async def test_network_probe_from_inside_fails(spec, engine):
    async with sandbox(spec, engine=engine) as sb:
        probe = "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=3)\n    print('CONNECTED')\nexcept OSError as e:\n    print('BLOCKED', e)"  # fmt: skip
        result = await sb.exec(["python3", "-c", probe], timeout=15)
        assert result.stdout.startswith("BLOCKED")
        ifaces = await sb.exec("cat /proc/net/dev")
        assert [line.split(":")[0].strip() for line in ifaces.stdout.splitlines()[2:]] == ["lo"]


async def test_fork_bomb_is_contained_and_killed_at_its_timeout(spec, engine):
    async with sandbox(spec, engine=engine) as sb:
        started = time.monotonic()
        bomb = await sb.exec("bomb() { bomb | bomb & }; bomb; sleep 60", timeout=3)
        assert bomb.timed_out
        assert time.monotonic() - started < 20
        await asyncio.sleep(0.5)
        after = await sb.exec("ps -e --no-headers | wc -l")
        assert after.ok and int(after.stdout) < 10


async def test_memory_bomb_is_killed_and_the_sandbox_survives(spec, engine):
    async with sandbox(spec, engine=engine) as sb:
        # The OOM killer's order: every command first, the tool server last.
        assert (await sb.exec("cat /proc/self/oom_score_adj")).stdout.strip() == "1000"
        server = await sb.exec("cat /proc/$(pgrep -xo python3)/oom_score_adj", user="root")
        assert server.stdout.strip() == "0"
        bomb = await sb.exec(["python3", "-c", "x = []\nwhile True: x.append(bytearray(50 * 2**20))"], timeout=30)
        assert bomb.exit_code == -9 or bomb.exit_code == 137  # SIGKILL from the OOM killer
        assert (await sb.exec("echo alive")).stdout == "alive\n"


async def test_output_flood_is_capped(spec, engine):
    async with sandbox(spec, engine=engine) as sb:
        flood = await sb.exec("yes boxgym", timeout=2)
        assert flood.timed_out and flood.stdout_truncated
        assert len(flood.stdout) < 8192 + 200 and "output truncated" in flood.stdout


async def test_disk_fill_of_the_workdir_stops_at_its_size(spec, engine):
    async with sandbox(spec, engine=engine) as sb:
        fill = await sb.exec("dd if=/dev/zero of=big bs=1M count=500", timeout=30)
        assert fill.exit_code != 0 and "No space left" in fill.stderr
        used = await sb.exec("du -m big | cut -f1")
        assert int(used.stdout) <= 64
        assert (await sb.exec("rm big && echo ok")).stdout == "ok\n"


async def test_infinite_loop_and_sigterm_ignoring_process_die_at_the_timeout(spec, engine):
    async with sandbox(spec, engine=engine) as sb:
        started = time.monotonic()
        loop = await sb.exec("trap '' TERM INT; while :; do :; done", timeout=1.5)
        assert loop.timed_out and loop.exit_code is None
        assert time.monotonic() - started < 6
        procs = await sb.exec(["ps", "-eo", "args", "--no-headers"])
        assert "while" not in procs.stdout and "bash" not in procs.stdout


async def test_double_forked_and_setsid_children_die_with_a_timed_out_command(spec, engine):
    async with sandbox(spec, engine=engine) as sb:
        cmd = "(setsid sleep 1000 &) ; ( (sleep 1001 &) & ) ; sleep 1002"
        result = await sb.exec(cmd, timeout=1)
        assert result.timed_out
        await asyncio.sleep(0.3)
        procs = await sb.exec(["ps", "-eo", "args", "--no-headers"])
        assert "sleep 10" not in procs.stdout


async def test_killing_the_container_mid_command_is_a_broken_error_within_seconds(spec, engine):
    async with sandbox(spec, engine=engine) as sb:
        call = asyncio.ensure_future(sb.exec("sleep 60", timeout=120))
        await asyncio.sleep(0.3)
        subprocess.run(["docker", "kill", sb.id], capture_output=True, check=True)
        started = time.monotonic()
        with pytest.raises(SandboxBroken) as err:
            await asyncio.wait_for(call, 10)
        assert time.monotonic() - started < 5
        assert sb.name in str(err.value)
        with pytest.raises(SandboxBroken):
            await sb.exec("true")


async def test_closed_sandbox_refuses_calls_and_close_is_idempotent(spec, engine):
    sb = await DockerSandbox.create(spec, engine=engine)
    await sb.aclose()
    await sb.aclose()
    with pytest.raises(SandboxClosed):
        await sb.exec("true")
    assert await engine.inspect_container(sb.id) is None


async def test_ttl_ends_the_container_even_with_no_host_action(spec, engine):
    short = replace(spec, deadlines=replace(spec.deadlines, ttl=1.0))
    sb = await DockerSandbox.create(short, engine=engine)
    try:
        deadline = time.monotonic() + 15
        while await engine.inspect_container(sb.id) is not None:
            assert time.monotonic() < deadline, "container outlived its TTL"
            await asyncio.sleep(0.2)
    finally:
        await sb.aclose()


async def test_a_start_cancelled_while_its_create_call_is_in_flight_leaves_nothing(spec, engine):
    # A cancelled caller does not stop the daemon: it finishes the create it was sent. Removing by
    # name at once can come before the daemon knows the name, and the container lands afterwards,
    # created and never started, where no TTL ever ends it.
    from boxgym.sandboxes.docker import resolve_image_ref
    from boxgym.sandboxes.ownership import LABEL_RUN, Run

    run = Run.new()
    spec = replace(spec, image=await resolve_image_ref(spec.image))
    create = engine.create_container
    daemon: list[asyncio.Future[str]] = []

    async def busy_daemon(config, *, name=None):
        await asyncio.sleep(0.3)  # the daemon is busy; the name is not known yet
        return await create(config, name=name)

    async def create_container(config, *, name=None):  # the caller's request; the daemon's work goes on
        daemon.append(asyncio.ensure_future(busy_daemon(config, name=name)))
        return await asyncio.shield(daemon[0])

    engine.create_container = create_container
    started = asyncio.ensure_future(DockerSandbox.create(spec, engine=engine, run=run))
    while not daemon:
        await asyncio.sleep(0.001)
    started.cancel()
    with pytest.raises(asyncio.CancelledError):
        await started
    await asyncio.gather(*daemon, return_exceptions=True)
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={LABEL_RUN}={run.run_id}"], capture_output=True, text=True)
    assert out.stdout.split() == []
