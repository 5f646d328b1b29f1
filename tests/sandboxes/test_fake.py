"""The in-process fake keeps the protocol's promises that code around sandboxes relies on."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import pytest

from boxgym.errors import SandboxClosed, SandboxFileNotFound, SandboxRefused
from boxgym.sandboxes import READ_LIMIT, WRITE_LIMIT, FakeProvider, FakeSandbox, Sandbox, SandboxProvider


async def test_fake_satisfies_the_protocols():
    provider = FakeProvider()
    sb = await provider.acquire()
    assert isinstance(sb, Sandbox) and isinstance(provider, SandboxProvider)
    await provider.aclose()
    assert sb.closed
    with pytest.raises(SandboxClosed):
        await provider.acquire()


async def test_fake_exec_files_and_errors():
    async with FakeSandbox(max_output=100) as sb:
        result = await sb.exec("echo hi > f.txt; cat f.txt; exit 4")
        assert (result.exit_code, result.stdout) == (4, "hi\n")
        assert await sb.read_file("f.txt") == b"hi\n"
        flood = await sb.exec("head -c 10000 /dev/zero | tr '\\0' x")
        assert flood.stdout_truncated and "output truncated" in flood.stdout
        slow = await sb.exec("sleep 10", timeout=0.2)
        assert slow.timed_out and slow.exit_code is None
        with pytest.raises(SandboxFileNotFound):
            await sb.stat("missing")
        with pytest.raises(SandboxRefused):
            await sb.call("nope.op")
    with pytest.raises(SandboxClosed):
        await sb.exec("true")


async def test_fake_cancelled_exec_leaves_nothing_running():
    tag = f"boxgymfake{time.monotonic_ns()}"
    async with FakeSandbox() as sb:
        task = asyncio.ensure_future(sb.exec(f"bash -c 'exec -a {tag} sleep 100'", timeout=100))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert subprocess.run(["pgrep", "-f", tag], capture_output=True).stdout == b""


@pytest.mark.parametrize(
    ("setup", "operation", "reason"),
    [
        pytest.param(lambda root: os.mkfifo(root / "pipe"), lambda sb: sb.read_file("pipe"), "not_regular", id="fifo"),
        pytest.param(None, lambda sb: sb.read_file("/dev/zero"), "not_regular", id="dev-zero"),
        pytest.param(lambda root: (root / "big").write_bytes(b"") or os.truncate(root / "big", 2 * READ_LIMIT),
                     lambda sb: sb.read_file("big"), "too_large", id="too-large-to-read"),  # fmt: skip
        pytest.param(None, lambda sb: sb.write_file("big", b"x" * (WRITE_LIMIT + 1)), "too_large", id="too-large-to-write"),
        pytest.param(None, lambda sb: sb.write_file("bad\ud800", "x"), "bad_name", id="surrogate-name"),
        pytest.param(None, lambda sb: sb.write_file("ok", "bad\ud800"), "bad_content", id="surrogate-content"),
        pytest.param(None, lambda sb: sb.exec(["echo", "a\x00b"]), "bad_content", id="nul-command"),
        pytest.param(None, lambda sb: sb.read_file("."), "is_directory", id="a-directory"),
    ],
)
async def test_the_fake_refuses_what_the_real_server_refuses_for_the_same_reason(setup, operation, reason):
    async with FakeSandbox() as sb:
        if setup is not None:
            setup(Path(sb.workdir))
        with pytest.raises(SandboxRefused) as err:
            await operation(sb)
        assert err.value.reason == reason


async def test_the_fake_reads_in_parts_as_the_server_does():
    async with FakeSandbox() as sb:
        await sb.write_file("f", b"0123456789")
        assert await sb.read_file("f", offset=3, max_bytes=4) == b"3456"
        assert await sb.kill_agent_processes() == 0  # not isolated: it kills nothing of the host's
