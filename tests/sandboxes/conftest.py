from __future__ import annotations

import os
from dataclasses import replace

import pytest

from boxgym.sandboxes import SandboxSpec
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
