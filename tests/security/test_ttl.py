"""The TTL is absolute: the container ends by it even when its tool server is wedged."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from boxgym.errors import SandboxBroken, SandboxWrecked
from boxgym.sandboxes.docker import TTL_GRACE_S, DockerSandbox

from .conftest import docker, server_pid

pytestmark = pytest.mark.docker


async def wait_gone(engine, container_id: str, within: float) -> float:
    started = time.monotonic()
    while await engine.inspect_container(container_id) is not None:
        assert time.monotonic() - started < within, "the container outlived its TTL"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_a_wedged_server_cannot_keep_its_container_past_the_ttl(spec, engine):
    ttl = 3.0
    sb = await DockerSandbox.create(replace(spec, deadlines=replace(spec.deadlines, ttl=ttl)), engine=engine)
    try:
        started = time.monotonic()
        docker("exec", sb.id, "kill", "-STOP", server_pid(sb.id))  # wedged: it answers nothing, ever
        # Gone by the TTL plus the init's grace, plus Docker's own removal.
        await wait_gone(engine, sb.id, ttl + TTL_GRACE_S + 8 - (time.monotonic() - started))
        with pytest.raises(SandboxBroken) as err:
            await sb.exec("true")
        assert not isinstance(err.value, SandboxWrecked) and "TTL" in str(err.value)
    finally:
        await sb.aclose()


async def test_the_ttl_ends_a_busy_server_and_says_so(spec, engine):
    sb = await DockerSandbox.create(replace(spec, deadlines=replace(spec.deadlines, ttl=2.0)), engine=engine)
    try:
        with pytest.raises(SandboxBroken) as err:
            await sb.exec("sleep 60", timeout=60)
        assert not isinstance(err.value, SandboxWrecked) and "TTL" in str(err.value)
        await wait_gone(engine, sb.id, 10)
    finally:
        await sb.aclose()


async def test_a_planted_fifo_does_not_delay_the_end(spec, engine):
    sb = await DockerSandbox.create(replace(spec, deadlines=replace(spec.deadlines, ttl=3.0)), engine=engine)
    try:
        await sb.exec("mkfifo p; (cat p > /dev/null &); sleep 0.1")
        await asyncio.gather(*(sb.read_file("p") for _ in range(8)), return_exceptions=True)
        # The server ends at 3 s and its container follows at once, not after the grace period.
        elapsed = await wait_gone(engine, sb.id, 10)
        assert elapsed < 3.0 + TTL_GRACE_S + 3
    finally:
        await sb.aclose()
