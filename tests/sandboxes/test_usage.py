"""A sandbox's CPU-seconds and peak memory: found in the cgroup files (v1, v2, another namespace's
pid), and on real Docker moving when the agent burns CPU or allocates memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from boxgym.sandboxes import FakeSandbox, SandboxUsage
from boxgym.sandboxes.cgroups import locate, read_usage
from boxgym.sandboxes.pool import sandbox

CID = "c0ffee" * 10 + "abcd"


def fake_host(tmp_path: Path, cgroup: str, mountinfo: str, files: dict[str, str]) -> Path:
    proc = tmp_path / "proc"
    (proc / "42").mkdir(parents=True)
    (proc / "self").mkdir()
    (proc / "42" / "cgroup").write_text(cgroup)
    (proc / "self" / "mountinfo").write_text(mountinfo.replace("ROOT", str(tmp_path)))
    for path, content in files.items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return proc


V1_MOUNTS = (
    "32 31 0:29 / ROOT/sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
    "35 31 0:32 / ROOT/sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "41 31 0:38 / ROOT/sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
)


def test_cgroup_v1_files_with_combined_controllers(tmp_path):
    proc = fake_host(
        tmp_path,
        f"4:memory:/docker/{CID}\n2:cpu,cpuacct:/docker/{CID}\n0::/docker/{CID}\n",
        V1_MOUNTS,
        {
            f"sys/fs/cgroup/cpu,cpuacct/docker/{CID}/cpuacct.usage": "2500000000\n",
            f"sys/fs/cgroup/memory/docker/{CID}/memory.max_usage_in_bytes": str(300 * 2**20),
        },
    )
    files = locate(42, CID, proc=proc)
    assert files is not None and not files.cpu_v2
    assert read_usage(files) == SandboxUsage(2.5, 300 * 2**20)
    assert read_usage(files).peak_memory_mb == 300.0  # type: ignore[union-attr]


def test_cgroup_v2_files_under_the_systemd_driver(tmp_path):
    scope = f"/system.slice/docker-{CID}.scope"
    proc = fake_host(
        tmp_path,
        f"0::{scope}\n",
        "30 23 0:26 / ROOT/sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n",
        {
            f"sys/fs/cgroup{scope}/cpu.stat": "usage_usec 1250000\nuser_usec 1000000\nsystem_usec 250000\n",
            f"sys/fs/cgroup{scope}/memory.peak": "1048576\n",
        },
    )
    files = locate(42, CID, proc=proc)
    assert files is not None and files.cpu_v2
    assert read_usage(files) == SandboxUsage(1.25, 1048576)


def test_a_pid_whose_cgroup_is_not_the_containers_measures_nothing(tmp_path):
    # boxgym in a container of its own: the engine's pid names another process here.
    proc = fake_host(
        tmp_path,
        "2:cpu,cpuacct:/user.slice\n0::/user.slice\n",
        V1_MOUNTS,
        {"sys/fs/cgroup/cpu,cpuacct/user.slice/cpuacct.usage": "1\n"},
    )
    assert locate(42, CID, proc=proc) is None
    assert locate(43, CID, proc=proc) is None  # no such process


def test_a_removed_containers_files_read_as_none(tmp_path):
    proc = fake_host(
        tmp_path,
        f"2:cpu,cpuacct:/docker/{CID}\n",
        V1_MOUNTS,
        {f"sys/fs/cgroup/cpu,cpuacct/docker/{CID}/cpuacct.usage": "1000\n"},
    )
    files = locate(42, CID, proc=proc)
    assert files is not None and files.peak_memory is None
    assert read_usage(files) == SandboxUsage(1e-6, None)
    files.cpu.unlink()
    assert read_usage(files) is None


async def test_the_fake_sandbox_measures_nothing():
    async with FakeSandbox() as sb:
        assert await sb.usage() is None


BURN = "import time\nwhile time.process_time() < 1.0:\n    pass\n"  # one CPU-second, however loaded the host
ALLOCATE = "import time\nx = bytearray(150 * 2**20)\nx[::4096] = b'x' * len(x[::4096])\ntime.sleep(0.1)\n"


@pytest.mark.docker
async def test_cpu_seconds_and_peak_memory_move_when_the_agent_burns_cpu_and_allocates(spec, engine):
    async with sandbox(spec, engine=engine) as sb:
        start = await sb.usage()
        assert start is not None and start.peak_memory_mb is not None
        assert 0 <= start.cpu_s < 1.0 and start.peak_memory_mb < 100
        burnt = await sb.exec(["python3", "-c", BURN], timeout=60)
        assert burnt.ok
        after_cpu = await sb.usage()
        assert after_cpu is not None and after_cpu.cpu_s - start.cpu_s >= 0.95
        assert after_cpu.peak_memory_mb is not None and after_cpu.peak_memory_mb < 100
        allocated = await sb.exec(["python3", "-c", ALLOCATE], timeout=60)
        assert allocated.ok
        after_memory = await sb.usage()
        assert after_memory is not None and after_memory.peak_memory_mb is not None
        assert after_memory.peak_memory_mb - after_cpu.peak_memory_mb >= 140  # the 150 MiB the agent touched
        assert after_memory.cpu_s >= after_cpu.cpu_s  # a running total
    assert await sb.usage() is None  # closed: the container and its cgroup are gone


@pytest.mark.docker
async def test_an_agents_steps_move_the_figures_its_env_reports(spec, engine):
    """Through BoxEnv, as a trainer sees them: info["usage"] after each of the agent's steps."""
    import json
    import shlex

    from boxgym.envs.make import make_shell
    from boxgym.sandboxes import SandboxPool

    def run_python(code: str) -> dict:
        arguments = json.dumps({"command": f"python3 -c {shlex.quote(code)}", "timeout": 60})
        return {"role": "assistant", "content": "", "tool_calls": [
            {"id": "p", "type": "function", "function": {"name": "bash", "arguments": arguments}}]}  # fmt: skip

    async with SandboxPool(spec, size=1, engine=engine) as pool:
        env = make_shell(provider=pool)
        try:
            await env.areset(options={"task_id": "shell/d0/s0"})
            observations = []
            for code in ("print(1)", BURN, ALLOCATE):
                observation, *_, info = await env.astep(run_python(code))
                assert observation[0]["content"].startswith("exit code: 0"), observation
                observations.append(info)
            idle, burnt, allocated = observations
        finally:
            await env.aclose()
    idle, burnt, allocated = idle["usage"], burnt["usage"], allocated["usage"]
    assert burnt["sandbox_cpu_s"] - idle["sandbox_cpu_s"] >= 0.95
    assert allocated["sandbox_peak_memory_mb"] - burnt["sandbox_peak_memory_mb"] >= 140
    assert idle["tool_s"] < burnt["tool_s"] < allocated["tool_s"]
