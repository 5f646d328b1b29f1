"""The in-process fake keeps the protocol's promises that code around sandboxes relies on."""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from boxgym.errors import SandboxClosed, SandboxFileNotFound, SandboxRefused
from boxgym.sandboxes import FakeProvider, FakeSandbox, Sandbox, SandboxProvider


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
