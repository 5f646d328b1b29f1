from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

import boxgym.sandboxes.toolserver as toolserver_pkg
from boxgym.sandboxes import SandboxSpec
from boxgym.sandboxes.client import ToolClient
from boxgym.sandboxes.engine import DockerEngine


def slim_image() -> str:
    """The image Docker tests run: the built slim recipe, or BOXGYM_TEST_IMAGE."""
    return os.environ.get("BOXGYM_TEST_IMAGE", "slim")


@pytest.fixture
async def engine():
    async with DockerEngine() as eng:
        yield eng


@pytest.fixture
def spec() -> SandboxSpec:
    base = SandboxSpec(image=slim_image())
    # Small limits keep the resource tests quick without changing what they prove.
    return replace(base, limits=replace(base.limits, memory_mb=256, pids=128, workdir_mb=64, max_output_bytes=8192))


# -- the tool server as a host process (no Docker) ----------------------------------------

SOURCE = Path(toolserver_pkg.__file__).parent

# An extra plugin, as a toolset would add one: an exclusive op and a normal one, and a stop that
# leaves a mark in the work directory (the server's stop must reach it).
OPS_TESTING = '''
import asyncio
import os


class Plugin:
    EXCLUSIVE = frozenset({"hold"})

    def __init__(self, ctx):
        self.workdir = ctx.workdir

    async def stop(self):
        with open(os.path.join(self.workdir, "plugin-stopped"), "w") as fh:
            fh.write("stopped")

    async def op_hold(self, seconds=0.5):
        await asyncio.sleep(seconds)
        return "held"

    async def op_echo(self, value=None):
        return {"value": value}
'''


@pytest.fixture
async def server(tmp_path: Path):
    root = tmp_path / "ts"
    shutil.copytree(SOURCE, root / "toolserver", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "toolserver" / "ops_testing.py").write_text(OPS_TESTING)
    work = tmp_path / "work"
    work.mkdir()
    sock_dir = tmp_path / "sock"
    sock_dir.mkdir(mode=0o700)
    sock = sock_dir / "tool.sock"
    proc = subprocess.Popen(
        [sys.executable, "-I", str(root / "toolserver" / "main.py"), "--socket", str(sock),
         "--workdir", str(work), "--agent-uid", str(os.getuid()), "--max-output", "4096", "--ttl", "120"],
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not sock.exists():
        assert proc.poll() is None, "tool server exited at start"
        assert time.monotonic() < deadline, "tool server did not create its socket"
        await asyncio.sleep(0.01)
    client = await ToolClient.connect(str(sock))
    client.workdir = work
    client.proc = proc
    yield client
    await client.aclose()
    proc.terminate()
    proc.wait(10)
