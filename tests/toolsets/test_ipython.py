"""The ``python`` tool on the fake sandbox (a real kernel on the host): what the model reads,
images as images, the agent's mistakes as observations, infrastructure failures raised, and
composition with the shell tools in an env."""

from __future__ import annotations

import pytest

from boxgym.errors import SandboxBusy, ToolServerError, ToolUnavailable
from boxgym.sandboxes import FakeSandbox
from boxgym.toolsets import IPythonToolset, ShellToolset, ToolCall, compose
from boxgym.toolsets.ipython import render_cell

pytest.importorskip("ipykernel")


def python(code: str, **extra) -> ToolCall:
    return ToolCall("c1", "python", {"code": code, **extra})


@pytest.fixture
async def box():
    async with FakeSandbox() as sandbox:
        yield sandbox


async def test_the_observation_reads_like_a_notebook_cell(box):
    tools = IPythonToolset()
    await tools.run(python("import sys\nx = 6"), box)
    result = await tools.run(python("print('hi'); print('careful', file=sys.stderr)\nx * 7"), box)
    assert result.ok and result.name == "python"
    assert result.content == "[stdout]\nhi\n\n[stderr]\ncareful\n\nOut[2]: 42"
    assert result.detail["status"] == "ok" and result.detail["execution_count"] == 2
    quiet = await tools.run(python("y = 1"), box)
    assert quiet.content == "(no output)"


async def test_an_error_is_a_readable_traceback_and_not_ok(box):
    result = await IPythonToolset().run(python("[1, 2][5]"), box)
    assert not result.ok and result.detail["status"] == "error"
    assert result.content.startswith("[error]\n") and "IndexError: list index out of range" in result.content
    assert "\x1b" not in result.content


async def test_plots_and_pil_images_are_attached_as_images(box):
    result = await IPythonToolset().run(
        python("import matplotlib.pyplot as plt\nfrom PIL import Image\ndisplay(Image.new('L', (8, 8)))\nplt.plot([1, 2]); plt.show()"),
        box,
    )
    assert result.ok and [image.mime for image in result.images] == ["image/png", "image/png"]
    assert "[image 1: PNG 8x8" in result.content and "[image 2: PNG" in result.content
    assert result.detail["images"] == 2


async def test_a_timeout_is_an_observation_that_says_what_happened_to_the_kernel(box):
    tools = IPythonToolset()
    result = await tools.run(python("import time; time.sleep(30)", timeout=1), box)
    assert not result.ok and result.detail["status"] == "timeout" and not result.detail["restarted"]
    assert result.content.startswith("[kernel] The cell ran past its 1s timeout and was interrupted")
    assert "KeyboardInterrupt" in result.content
    budget = await tools.run(python("import time; time.sleep(30)", timeout=20), box, timeout=1.0)
    assert budget.detail["status"] == "timeout"  # the episode's time left caps the cell's own timeout


async def test_a_dead_kernel_is_an_observation_and_the_next_cell_runs(box):
    tools = IPythonToolset()
    died = await tools.run(python("import os; os._exit(1)"), box)
    assert not died.ok and died.detail["restarted"]
    assert died.content.startswith("[kernel] The kernel died during the cell: it exited with status 1")
    assert "every variable, import and definition" in died.content
    assert (await tools.run(python("2 + 2"), box)).content == "Out[1]: 4"


async def test_long_output_is_cut_with_a_marker(box):
    result = await IPythonToolset(max_output=500).run(python("print('a' * 5000 + 'END')"), box)
    assert len(result.content) < 700 and "output truncated" in result.content and result.content.rstrip().endswith("END")


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({}, "missing required argument 'code'"),
        ({"code": 1}, "missing required argument 'code'"),
        ({"code": "1", "timeout": "soon"}, "argument 'timeout' must be a positive integer"),
        ({"code": "1", "timeout": 0}, "argument 'timeout' must be a positive integer"),
        ({"code": "1", "cwd": "/"}, "unexpected argument(s) cwd"),
    ],
    ids=["no-code", "code-not-str", "timeout-text", "timeout-zero", "unknown-argument"],
)
async def test_malformed_calls_are_observations(box, arguments, says):
    result = await IPythonToolset().run(ToolCall("c", "python", arguments), box)
    assert not result.ok and result.content.startswith(f"error: python: {says}")


async def test_a_timeout_given_as_text_is_read_as_a_number(box):
    result = await IPythonToolset().run(python("1", timeout="5"), box)
    assert result.ok and result.content == "Out[1]: 1"


async def test_a_busy_kernel_is_an_observation():
    async def busy(args):
        raise SandboxBusy("ipython.execute cannot run while another ipython operation is running")

    async with FakeSandbox(handlers={"ipython.execute": busy}) as sandbox:
        result = await IPythonToolset().run(python("1"), sandbox)
    assert not result.ok and "another python cell is still running" in result.content


@pytest.mark.parametrize("error", [ToolUnavailable("the kernel cannot start"), ToolServerError("KeyError: 'x'")])
async def test_a_kernel_that_cannot_run_and_a_plugin_bug_end_the_episode(error):
    async def fail(args):
        raise error

    async with FakeSandbox(handlers={"ipython.execute": fail}) as sandbox:
        with pytest.raises(type(error)):
            await IPythonToolset().run(python("1"), sandbox)


def test_rendering_puts_what_happened_first_and_notes_last():
    text = render_cell(
        {
            "notices": ["The kernel had died."],
            "stdout": "a\n",
            "outputs": [{"kind": "display", "text": "[image 1: PNG 2x2]"}, {"kind": "result", "text": "x\ny"}],
            "execution_count": 3,
            "error": None,
            "notes": ["some output was lost"],
        }
    )
    assert text == "[kernel] The kernel had died.\n[stdout]\na\n\n[image 1: PNG 2x2]\nOut[3]:\nx\ny\n[boxgym] some output was lost"


async def test_shell_and_python_compose_and_share_the_work_directory(box):
    tools = compose(ShellToolset(), IPythonToolset())
    names = [schema["function"]["name"] for schema in tools.schemas()]
    assert names == ["bash", "read_file", "write_file", "str_replace", "list_dir", "submit", "python"]
    await tools.run(ToolCall("1", "write_file", {"path": "data.csv", "content": "a,b\n1,2\n3,4\n"}), box)
    read = await tools.run(python("import pandas as pd\nint(pd.read_csv('data.csv').b.sum())"), box)
    assert read.content == "Out[1]: 6"
    await tools.run(python("open('made.txt', 'w').write('by python')"), box)
    shown = await tools.run(ToolCall("2", "bash", {"command": "cat made.txt"}), box)
    assert shown.content == "exit code: 0\n[stdout]\nby python"
