"""Fixtures of the security suite: a fresh, small sandbox per test, and the agent's toolset.

The limits are small (256 MiB of memory, 128 pids, a 64 MiB work directory) so that
every bomb and flood here is over in seconds and the host (2 shared cores) stays
responsive; what each test proves does not depend on the sizes.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace

import pytest

from boxgym.sandboxes import SandboxSpec
from boxgym.sandboxes.engine import DockerEngine
from boxgym.sandboxes.pool import sandbox
from boxgym.toolsets import ShellToolset, ToolCall

from ..sandboxes.conftest import slim_image


@pytest.fixture
async def engine():
    async with DockerEngine() as eng:
        yield eng


@pytest.fixture
def spec() -> SandboxSpec:
    base = SandboxSpec(image=slim_image())
    return replace(base, limits=replace(base.limits, memory_mb=256, pids=128, workdir_mb=64, max_output_bytes=8192))


@pytest.fixture
async def sb(spec, engine):
    async with sandbox(spec, engine=engine) as box:
        yield box


@pytest.fixture
def tools() -> ShellToolset:
    return ShellToolset()


def call(name: str, **arguments) -> ToolCall:
    return ToolCall("call_1", name, arguments)


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=60).stdout


#: Matches the tool server's command line, not boxgym-init's (which names it as an argument).
SERVER = "^python3 -I /opt/boxgym/toolserver/main.py"


def server_pid(container_id: str) -> str:
    """The tool server's pid inside the container (PID 1 is boxgym-init, the server its child)."""
    return docker("exec", container_id, "pgrep", "-f", SERVER).strip()
