"""The python tool in real sandboxes (the jupyter image), attacked as an agent would.

The kernel runs as the agent, SCHED_IDLE, first to die on OOM; a warm sandbox has it before the
first call; a cell that fills memory, forks without end, never returns, prints a gigabyte, kills
its parent or reads the server's files is an observation and the next cell works; closing leaves
no process of the kernel.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from boxgym.sandboxes import SandboxSpec
from boxgym.sandboxes.engine import DockerEngine
from boxgym.sandboxes.pool import sandbox
from boxgym.toolsets import IPythonToolset, ToolCall

pytestmark = pytest.mark.docker

IMAGE = os.environ.get("BOXGYM_TEST_JUPYTER_IMAGE", "jupyter")


def small(**changes) -> SandboxSpec:
    base = SandboxSpec(image=IMAGE, **changes)
    return replace(base, limits=replace(base.limits, memory_mb=512, pids=128, workdir_mb=64))


@pytest.fixture
async def engine():
    async with DockerEngine() as eng:
        yield eng


@pytest.fixture
async def sb(engine):
    async with sandbox(small(), engine=engine) as box:
        yield box


async def cell(box, code: str, timeout: int = 20):
    return await IPythonToolset().run(ToolCall("c", "python", {"code": code, "timeout": timeout}), box)


async def test_the_kernel_is_the_agent_idle_and_the_oom_killers_first_choice(sb):
    result = await cell(sb, "import os\nprint(os.getuid(), os.getgid(), os.getcwd())")
    assert result.content == "[stdout]\n10001 10001 /workspace\n"
    pid = (await sb.call("ipython.status"))["pid"]
    facts = await sb.exec(f"ps -o user=,cls= -p {pid}; cat /proc/{pid}/oom_score_adj", user="root")
    assert facts.stdout.split() == ["agent", "IDL", "1000"]


async def test_a_warm_sandbox_has_its_kernel_before_the_first_call(engine):
    async with sandbox(small(warm=("ipython.ready",)), engine=engine) as box:
        status = await box.call("ipython.status")
        assert status["alive"] and status["execution_count"] == 0
        result = await cell(box, "21 * 2")
        assert result.content == "Out[1]: 42" and result.duration_s < 1.0


async def test_a_plot_comes_back_as_an_image_and_html_as_text(sb):
    result = await cell(
        sb,
        "import pandas as pd, matplotlib.pyplot as plt\ndf = pd.DataFrame({'a': [1, 2], 'b': [3, 4]})\n"
        "df.plot(); plt.show()\nfrom IPython.display import HTML\nHTML(df.to_html())",
    )
    assert result.ok and len(result.images) == 1 and result.images[0].data.startswith(b"\x89PNG")
    assert "Out[1]:\n| a | b\n0 | 1 | 3\n1 | 2 | 4" in result.content


async def test_a_cell_that_fills_memory_gets_a_new_kernel_and_says_it_was_the_oom_killer(sb):
    await cell(sb, "kept = 1")
    result = await cell(sb, "hog = bytearray(2 * 1024**3)")
    assert not result.ok and result.detail["status"] == "died" and result.detail["restarted"]
    assert "out-of-memory killer" in result.content and "512 MiB" in result.content
    assert (await cell(sb, "'kept' in dir()")).content == "Out[1]: False"


async def test_a_cell_that_never_returns_is_interrupted_and_the_kernel_survives(sb):
    await cell(sb, "kept = 'yes'")
    result = await cell(sb, "while True:\n    pass", timeout=2)
    assert result.detail["status"] == "timeout" and not result.detail["restarted"]
    assert "KeyboardInterrupt" in result.content
    assert (await cell(sb, "kept")).content == "Out[3]: 'yes'"


async def test_a_shell_command_a_cell_waits_for_is_interrupted_too(sb):
    result = await cell(sb, "!sleep 60", timeout=2)
    assert result.detail["status"] == "timeout" and not result.detail["restarted"]
    assert "sleep" not in (await sb.exec("ps -eo comm")).stdout


async def test_a_fork_bomb_in_a_cell_is_contained_and_the_next_cell_runs(sb):
    result = await cell(sb, "import os\nwhile True:\n    os.fork()", timeout=3)
    assert not result.ok and result.detail["status"] in ("timeout", "died")
    # Which limit stops it depends on the host's load (the kernel is idle-scheduled): the interrupt
    # (a timeout), half the pids (the tree is killed), or the memory its copies fill (the OOM killer).
    if result.detail["restarted"]:
        assert any(why in result.content for why in ("held over half of the sandbox's process limit", "out-of-memory killer"))
    usage = await sb.call("health")
    assert usage["pids"] < 60, usage
    assert (await cell(sb, "print('after')")).content == "[stdout]\nafter\n"


async def test_a_cell_that_prints_a_gigabyte_gets_a_capped_answer_and_keeps_its_kernel(sb):
    await cell(sb, "kept = 'yes'")
    code = "import sys\nchunk = 'x' * 2**20\nfor _ in range(1024):\n    sys.stdout.write(chunk)\nprint('END')"
    result = await cell(sb, code, timeout=60)
    assert result.ok and len(result.content) <= 16_200 and result.content.rstrip().endswith("END")
    assert "output truncated, 10737" in result.content  # about a gigabyte omitted, and said
    health = await sb.call("health")
    assert health["ok"] and health["memory_bytes"] < 400 * 2**20, health
    assert (await cell(sb, "kept")).content == "Out[3]: 'yes'"


async def test_a_cell_cannot_kill_the_server_or_read_its_files(sb):
    result = await cell(sb, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)")
    assert "PermissionError" in result.content
    for path in ("/run/boxgym", "/proc/1/environ", "/root"):
        denied = await cell(sb, f"import os\nos.listdir({path!r}) if os.path.isdir({path!r}) else open({path!r}).read()")
        assert "PermissionError" in denied.content, denied.content
    assert (await sb.call("health"))["ok"]
    assert (await cell(sb, "print('still here')")).content == "[stdout]\nstill here\n"


async def test_closing_stops_the_kernel_and_everything_it_started(sb):
    await cell(sb, "import subprocess, os\nsubprocess.Popen(['setsid', 'sleep', '300'])\nif os.fork() == 0:\n    import time; time.sleep(300)")
    before = await sb.exec("ps -u agent -o comm=")
    assert "sleep" in before.stdout and "python3" in before.stdout
    assert await sb.call("stop_plugins") == {"failed": {}}
    after = await sb.exec("ps -u agent -o comm=")
    assert set(after.stdout.split()) <= {"bash", "ps"}, after.stdout


async def test_a_warm_up_that_fails_is_the_infrastructures_and_leaves_no_container(engine):
    import subprocess

    from boxgym.errors import ToolUnavailable

    from ..conftest import SESSION
    from ..sandboxes.conftest import slim_image

    def containers() -> set[str]:
        out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=boxgym.session={SESSION}"],
                             capture_output=True, text=True, check=True)  # fmt: skip
        return set(out.stdout.split())

    before = containers()
    with pytest.raises(ToolUnavailable, match="not available in this image"):
        async with sandbox(replace(small(warm=("ipython.ready",)), image=slim_image()), engine=engine):
            pass
    assert containers() <= before
