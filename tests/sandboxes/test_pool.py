"""The warm pool and the lifecycle backstops against the real engine."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from boxgym.errors import EngineUnavailable, SandboxClosed
from boxgym.sandboxes.engine import DockerEngine
from boxgym.sandboxes.ownership import LABEL_RUN, current_run, gc, socket_base
from boxgym.sandboxes.pool import SandboxPool

from .conftest import slim_image

pytestmark = pytest.mark.docker


def containers(run_id: str | None = None) -> list[str]:
    label = LABEL_RUN if run_id is None else f"{LABEL_RUN}={run_id}"
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True)
    return out.stdout.split()


async def test_pool_fills_hands_out_fresh_sandboxes_once_and_cleans_up(spec, engine):
    async with SandboxPool(spec, size=2, engine=engine) as pool:
        await pool.wait_ready(timeout=60)
        seen = set()
        for _ in range(4):
            sb = await pool.acquire()
            assert sb.id not in seen
            seen.add(sb.id)
            assert (await sb.exec("ls -A")).stdout == ""  # fresh: nothing from an earlier episode
            await sb.write_file("mark", "used")
            await sb.aclose()
        await pool.wait_ready(timeout=60)
        stats = pool.statistics()
        assert stats.handed_out == 4 and stats.ready == 2
        held = [c for c in containers() if any(c.startswith(s[:12]) for s in seen)]
        assert held == []
    assert containers(current_run().run_id) == []


async def test_acquire_skips_a_ready_sandbox_that_died(spec, engine):
    async with SandboxPool(spec, size=1, engine=engine) as pool:
        await pool.wait_ready(timeout=60)
        victim = pool._ready[0]
        subprocess.run(["docker", "kill", victim.id], capture_output=True, check=True)
        sb = await pool.acquire()
        try:
            assert sb.id != victim.id
            assert (await sb.exec("echo ok")).stdout == "ok\n"
            assert pool.statistics().discarded_dead == 1
        finally:
            await sb.aclose()


async def test_closed_pool_refuses(spec, engine):
    pool = SandboxPool(spec, size=0, engine=engine)
    await pool.aclose()
    with pytest.raises(SandboxClosed):
        await pool.acquire()


async def test_engine_down_is_a_clear_error(spec):
    async with DockerEngine(socket_path="/nonexistent/docker.sock") as dead:
        pool = SandboxPool(spec, size=0, engine=dead)
        with pytest.raises(EngineUnavailable, match="no Docker engine answers"):
            await pool.acquire()
        await pool.aclose()


def _child(body: str) -> subprocess.Popen:
    code = textwrap.dedent(
        f"""
        import asyncio, os, signal, sys, time
        from boxgym.sandboxes import SandboxSpec
        from boxgym.sandboxes.pool import SandboxPool
        from boxgym.sandboxes.ownership import current_run
        async def main():
            pool = SandboxPool(SandboxSpec(image={slim_image()!r}), size=2)
            await pool.start()
            await pool.wait_ready(timeout=60)
            print(current_run().run_id, flush=True)
        {textwrap.indent(textwrap.dedent(body), '    ')}
        asyncio.run(main())
        """
    )
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("    time.sleep(60)", id="sigterm"),
        pytest.param("    raise KeyboardInterrupt", id="ctrl-c"),
        pytest.param("    raise RuntimeError('crash')", id="crash"),
    ],
)
async def test_backstop_removes_the_run_s_containers_when_the_process_dies(body):
    proc = _child(body)
    run_id = (await asyncio.to_thread(proc.stdout.readline)).strip()
    assert run_id.startswith("r"), "child did not start its pool"
    if "sleep" in body:
        assert len(containers(run_id)) == 2
        proc.terminate()
    await asyncio.to_thread(proc.wait, 60)
    proc.stdout.close()
    assert containers(run_id) == []


async def test_gc_removes_containers_of_an_owner_killed_with_sigkill(engine):
    proc = _child("    time.sleep(60)")
    run_id = (await asyncio.to_thread(proc.stdout.readline)).strip()
    assert len(containers(run_id)) == 2
    proc.kill()
    await asyncio.to_thread(proc.wait, 30)
    proc.stdout.close()
    assert len(containers(run_id)) == 2  # SIGKILL runs no handler: only gc (or the TTL) can help
    removed = await gc(engine)
    assert {r["run"] for r in removed} == {run_id}
    assert containers(run_id) == []
    assert not (socket_base() / run_id).exists()  # its socket directories went with it


async def test_gc_spares_containers_of_a_living_owner(spec, engine):
    async with SandboxPool(spec, size=1, engine=engine) as pool:
        await pool.wait_ready(timeout=60)
        assert await gc(engine) == []
        assert len(containers(current_run().run_id)) == 1
