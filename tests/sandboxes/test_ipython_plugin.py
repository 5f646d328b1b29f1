"""The ``ipython`` plugin on the fake sandbox, with a real Jupyter kernel on the host.

One kernel per sandbox, started on first use, state kept from cell to cell; what a cell shows
(streams, results, displays, images, HTML, errors without ANSI); timeouts that interrupt and
keep the kernel, interrupts that fail and restart it, kernels that die and come back; and a
closed sandbox leaves no process of its kernel.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import time

import pytest

from boxgym.errors import SandboxBusy, SandboxRefused
from boxgym.sandboxes import FakeSandbox
from boxgym.sandboxes.toolserver import procs

pytest.importorskip("ipykernel")


@pytest.fixture
async def box():
    async with FakeSandbox() as sandbox:
        yield sandbox


async def run(sandbox, code: str, **args) -> dict:
    return await sandbox.call("ipython.execute", {"code": code, **args}, timeout=120)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] not in (b"Z", b"X")


async def test_the_kernel_starts_on_first_use_in_the_work_directory_and_keeps_state(box):
    assert not any(name.startswith(".boxgym") for name in os.listdir(box.workdir))
    first = await run(box, "import os\nx = 41\nprint(os.getcwd())")
    second = await run(box, "x + 1")
    assert first["ok"] and first["stdout"].strip() == os.path.realpath(box.workdir)
    assert second["outputs"] == [{"kind": "result", "text": "42"}] and second["execution_count"] == 2
    status = await box.call("ipython.status")
    assert status["alive"] and status["restarts"] == 0 and status["execution_count"] == 2
    # Its profile and runtime files are in a directory of its own, not in the agent's work or home.
    assert sorted(os.listdir(box.workdir)) == []


async def test_streams_results_and_errors_come_back_apart(box):
    answer = await run(box, "import sys\nprint('out')\nprint('err', file=sys.stderr)\n'value'")
    assert (answer["stdout"], answer["stderr"]) == ("out\n", "err\n")
    assert answer["outputs"] == [{"kind": "result", "text": "'value'"}] and answer["status"] == "ok"
    failed = await run(box, "def f():\n    return 1 / 0\nf()")
    assert not failed["ok"] and failed["status"] == "error"
    assert failed["error"]["ename"] == "ZeroDivisionError"
    trace = failed["error"]["traceback"]
    assert "----> 3 f()" in trace and "return 1 / 0" in trace and "ZeroDivisionError: division by zero" in trace
    assert "\x1b" not in trace


async def test_colours_and_carriage_returns_are_shown_as_a_notebook_shows_them(box):
    answer = await run(box, "print('\\x1b[31mred\\x1b[0m'); print('10%\\r50%\\r100%')\nraise ValueError('\\x1b[1mbold')")
    assert answer["stdout"] == "red\n100%\n"
    assert answer["error"]["evalue"] == "\x1b[1mbold" and "ValueError: bold" in answer["error"]["traceback"]


async def test_images_come_back_as_png_and_html_as_text(box):
    answer = await run(
        box,
        "from PIL import Image\nfrom IPython.display import HTML, display\n"
        "display(Image.new('RGB', (30, 20), 'red'))\n"
        "display(HTML('<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2 &amp; 3</td></tr></table>'))\n"
        "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()",
    )
    texts = [o["text"] for o in answer["outputs"]]
    assert texts[0] == "[image 1: PNG 30x20: <PIL.Image.Image image mode=RGB size=30x20>]"
    assert texts[1] == "a | b\n1 | 2 & 3"
    assert texts[2].startswith("[image 2: PNG ") and "Figure" in texts[2]
    images = [base64.b64decode(data) for data in answer["images_b64"]]
    assert len(images) == 2 and all(image.startswith(b"\x89PNG\r\n\x1a\n") for image in images)


async def test_output_is_capped_with_a_marker_keeping_head_and_tail(box):
    answer = await run(box, "for i in range(20000):\n    print(f'line {i}')", max_output=2000)
    assert answer["truncated"] and "output truncated" in answer["stdout"]
    assert answer["stdout"].startswith("line 0\n") and answer["stdout"].endswith("line 19999\n")
    assert len(answer["stdout"]) < 2200


async def test_a_gigabyte_of_output_is_cut_in_the_kernel_and_counted_exactly(box):
    await run(box, "kept = 1")
    started = time.monotonic()
    answer = await run(box, "import sys\nchunk = 'x' * 2**20\nfor _ in range(1024):\n    sys.stdout.write(chunk)\nprint('END')", max_output=2000)
    assert time.monotonic() - started < 30 and answer["ok"]
    omitted = 2**30 + len("END\n") - 2000
    assert f"output truncated, {omitted} bytes omitted" in answer["stdout"] and answer["stdout"].endswith("END\n")
    assert (await run(box, "kept"))["outputs"][0]["text"] == "1"


async def test_a_message_over_the_limit_is_dropped_and_said_and_the_kernel_goes_on(box):
    # The kernel's cap is in the agent's own process, so an agent can undo it: the server's limit holds.
    undo = "import sys\nfor s in (sys.stdout, sys.stderr):\n    del s.write\n"
    answer = await run(box, undo + "print('x' * 20_000_000)")
    assert answer["ok"] and any("some output was lost" in note for note in answer["notes"])
    assert (await run(box, "print('after')"))["stdout"] == "after\n"


async def test_clear_output_empties_what_the_cell_showed(box):
    answer = await run(box, "from IPython.display import clear_output\nprint('old')\nclear_output()\nprint('new')")
    assert answer["stdout"] == "new\n"


async def test_a_cell_past_its_timeout_is_interrupted_and_the_kernel_keeps_its_state(box):
    await run(box, "kept = 'yes'")
    started = time.monotonic()
    answer = await run(box, "import time\nprint('started', flush=True)\ntime.sleep(60)", timeout=1)
    assert time.monotonic() - started < 10
    assert answer["status"] == "timeout" and answer["interrupted"] and not answer["state_lost"]
    assert answer["error"]["ename"] == "KeyboardInterrupt" and answer["stdout"] == "started\n"
    assert "interrupted" in answer["notices"][0]
    assert (await run(box, "kept"))["outputs"][0]["text"] == "'yes'"


async def test_a_cell_that_ignores_the_interrupt_gets_a_new_kernel_and_is_told_state_was_lost(box):
    await run(box, "x = 1")
    pid = (await box.call("ipython.status"))["pid"]
    answer = await run(box, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass", timeout=1)
    assert answer["status"] == "timeout" and answer["state_lost"] and answer["restarted"]
    assert "did not stop" in answer["notices"][0] and "restarted" in answer["notices"][0]
    assert not alive(pid)
    after = await run(box, "x")
    assert after["error"]["ename"] == "NameError"
    assert (await box.call("ipython.status"))["restarts"] == 1


async def test_a_kernel_that_exits_in_a_cell_is_restarted_with_a_clear_notice(box):
    answer = await run(box, "import os\nos._exit(3)")
    assert answer["status"] == "died" and answer["state_lost"]
    assert "exited with status 3" in answer["notices"][0] and "restarted" in answer["notices"][0]
    assert (await run(box, "1 + 1"))["outputs"][0]["text"] == "2"


async def test_a_kernel_killed_between_cells_is_found_dead_and_restarted(box):
    await run(box, "x = 1")
    pid = (await box.call("ipython.status"))["pid"]
    os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.2)
    answer = await run(box, "print('again')")
    assert answer["ok"] and answer["stdout"] == "again\n"
    assert "had died since the last cell" in answer["notices"][0] and "signal 9 (SIGKILL)" in answer["notices"][0]


async def test_a_second_cell_while_one_runs_is_busy(box):
    slow = asyncio.ensure_future(run(box, "import time; time.sleep(1)"))
    await asyncio.sleep(0.3)
    with pytest.raises(SandboxBusy):
        await run(box, "1")
    assert (await slow)["ok"]


async def test_a_cell_the_host_gives_up_on_is_interrupted_and_the_next_one_runs(box):
    with pytest.raises(TimeoutError):
        await box.call("ipython.execute", {"code": "import time; time.sleep(60)", "timeout": 100}, timeout=1)
    answer = await run(box, "print('next')")
    assert answer["ok"] and answer["stdout"] == "next\n"


@pytest.mark.parametrize(
    "args",
    [{"code": 3}, {"code": "1", "timeout": -1}, {"code": "1", "max_output": 0}, {"code": "1", "shell": True}],
    ids=["code-not-str", "negative-timeout", "zero-output", "unknown-argument"],
)
async def test_bad_arguments_are_refused(box, args):
    with pytest.raises(SandboxRefused):
        await box.call("ipython.execute", args)


async def test_closing_the_sandbox_stops_the_kernel_and_everything_it_started(box):
    answer = await run(
        box,
        "import os, subprocess, time\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        "daemon = subprocess.Popen(['setsid', 'sh', '-c', 'sleep 300 & echo $!'], stdout=subprocess.PIPE, text=True)\n"
        "grandchild = int(daemon.stdout.readline())\n"
        "forked = os.fork()\n"
        "if forked == 0:\n"
        "    time.sleep(300)\n"
        "    os._exit(0)\n"
        "print(child.pid, grandchild, forked)",
    )
    pids = [int(p) for p in answer["stdout"].split()]
    kernel = (await box.call("ipython.status"))["pid"]
    tree = procs.process_tree(kernel)
    assert set(pids) <= set(tree) and all(alive(p) for p in pids)
    await box.aclose()
    deadline = time.monotonic() + 5
    while any(alive(p) for p in [kernel, *tree]) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not [p for p in [kernel, *tree] if alive(p)]


async def test_ready_starts_the_kernel_ahead_of_the_first_cell(box):
    ready = await box.call("ipython.ready")
    assert ready["ok"] and ready["alive"] and ready["notices"] == []
    started = time.monotonic()
    assert (await run(box, "1"))["ok"]
    assert time.monotonic() - started < 0.5  # no kernel start on the first cell


@pytest.fixture
def kernel_program(monkeypatch, tmp_path):
    """Replace the kernel's program with a script (a broken image, a kernel killed as it starts)."""
    from boxgym.sandboxes.toolserver import ops_ipython

    def use(script: str) -> None:
        program = tmp_path / "kernel"
        program.write_text(f"#!/bin/sh\n{script}\n")
        program.chmod(0o755)
        real = ops_ipython.Launch
        monkeypatch.setattr(ops_ipython, "Launch", lambda *args: real(*args, python=str(program)))

    return use


async def test_a_kernel_that_cannot_start_on_its_own_is_unavailable(box, kernel_program):
    from boxgym.errors import Fault, ToolUnavailable, fault_of

    kernel_program("echo 'No module named ipykernel_launcher' >&2; exit 1")
    with pytest.raises(ToolUnavailable, match="exited while starting: it exited with status 1") as raised:
        await run(box, "1")
    assert fault_of(raised.value) is Fault.INFRA


async def test_a_kernel_killed_as_it_starts_is_the_agents_and_is_said(box, kernel_program):
    kernel_program("kill -9 $$")
    answer = await run(box, "1")
    assert not answer["ok"] and answer["status"] == "died"
    assert "could not be started" in answer["notices"][0] and "signal 9" in answer["notices"][0]
