"""The gui plugin on the fake sandbox (the host's X server): a display started on first use at the
asked size and stopped with the sandbox, screenshots that are the screen, a Tk app that registers
clicks and keys, and the agent's code whose failures are answers."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import signal
import subprocess
import sys

import pytest

from boxgym.errors import SandboxRefused, ToolServerError
from boxgym.sandboxes import FakeSandbox
from boxgym.sandboxes.toolserver.gui_screen import Framebuffer, FramebufferError

from ..display import APP, DISPLAY, png_size

pytestmark = DISPLAY


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


async def act(sb, code: str, **args) -> dict:
    return await sb.call("gui.act", {"code": code, **args}, timeout=60)


async def test_the_display_starts_on_first_use_at_the_asked_size_and_stops_with_the_sandbox():
    sb = FakeSandbox()
    assert (await sb.call("gui.info"))["display"] is None  # nothing runs before it is used
    shot = await sb.call("gui.screenshot", {"screen": [800, 600]}, timeout=60)
    assert png_size(base64.b64decode(shot["png_b64"])) == (800, 600) == (shot["width"], shot["height"])
    with pytest.raises(SandboxRefused, match="cannot change to 1024x768"):
        await sb.call("gui.screenshot", {"screen": [1024, 768]})
    await act(sb, "pyautogui.click(10, 10)")
    info = await sb.call("gui.info")
    assert info["screen"] == [800, 600] and set(info["processes"]) == {"xvfb", "wm", "worker"}
    assert all(alive(pid) for pid in info["processes"].values())
    await sb.aclose()
    assert not [name for name, pid in info["processes"].items() if alive(pid)]


async def test_without_a_size_the_screen_is_1280_by_800():
    async with FakeSandbox() as sb:
        shot = await sb.call("gui.screenshot", timeout=60)
        assert png_size(base64.b64decode(shot["png_b64"])) == (1280, 800)


async def test_clicks_and_keys_reach_a_tk_app_and_the_screenshot_shows_it():
    from PIL import Image

    async with FakeSandbox() as sb:
        opened = await sb.call("gui.open_app", {"spec": APP}, timeout=60)
        assert opened["state"]["layout"]["go"] == [40, 100, 160, 40]  # where the description says
        await act(sb, "pyautogui.click(120, 120)")
        await act(sb, "pyautogui.click(190, 186)\npyautogui.write('Hello, World!')")
        await act(sb, "pyautogui.click(60, 245)")
        result = await act(sb, "pyautogui.moveTo(480, 142)\npyautogui.dragTo(700, 300, duration=0.3)")
        state = (await sb.call("gui.app_state"))["state"]
        assert [e["kind"] for e in state["events"]] == ["press", "drop"]
        assert state["values"] == {"name": "Hello, World!", "agree": True, "board": {"apple": "fruit"}}
        image = Image.open(io.BytesIO(base64.b64decode(result["png_b64"])))
        # The red item, dropped with its centre at (700, 300), is red there in the screenshot.
        assert image.getpixel((700, 290))[:3] == (255, 0, 0)
        assert image.getpixel((5, 5))[:3] == (217, 217, 217)  # Tk's grey, not a channel swapped


async def test_the_agents_failures_are_answers_and_the_worker_comes_back():
    async with FakeSandbox() as sb:
        syntax = await act(sb, "pyautogui.click(1,\n")
        assert syntax["ok"] is False and syntax["error"].startswith("SyntaxError") and syntax["png_b64"]
        raised = await act(sb, "x = 1\ny = x / 0")
        assert raised["ok"] is False and raised["error"] == "ZeroDivisionError: division by zero" and raised["line"] == 2
        refused = await act(sb, "import os")
        assert refused["ok"] is False and refused["error"].startswith("refused: import os")
        slow = await act(sb, "while True:\n    pass", timeout=1)
        assert slow["ok"] is False and slow["timed_out"] is True and slow["png_b64"]
        assert (await act(sb, "print(pyautogui.size().width)"))["output"] == "1280\n"
        worker = (await sb.call("gui.info"))["processes"]["worker"]
        running = asyncio.ensure_future(act(sb, "time.sleep(5)"))
        await asyncio.sleep(0.5)
        os.kill(worker, signal.SIGKILL)  # dies under the agent's code: said so, and started again
        died = await running
        assert died["ok"] is False and "ended (killed by signal 9)" in died["error"] and died["png_b64"]
        assert (await act(sb, "pyautogui.click(5, 5)"))["ok"] is True
        assert (await sb.call("gui.info"))["processes"]["worker"] != worker


async def test_an_app_that_exits_on_its_description_is_a_bug_and_bad_requests_are_refused():
    async with FakeSandbox() as sb:
        with pytest.raises(ToolServerError, match="the app exited"):
            await sb.call("gui.open_app", {"spec": {"widgets": [{"type": "nonsense"}]}}, timeout=60)
        with pytest.raises(SandboxRefused, match="no app is open"):
            await sb.call("gui.app_state")
        with pytest.raises(SandboxRefused, match="'screen' must be"):
            await sb.call("gui.screenshot", {"screen": [10, "x"]})
        with pytest.raises(SandboxRefused, match="'code' must be a string"):
            await sb.call("gui.act", {"code": 3})
        with pytest.raises(SandboxRefused, match="'pause'"):
            await sb.call("gui.act", {"code": "x = 1", "pause": -1})


def test_the_framebuffer_reader_takes_only_xvfbs_screen_file(tmp_path):
    (tmp_path / "short").write_bytes(b"\x00" * 10)
    with pytest.raises(FramebufferError, match="no screen"):
        Framebuffer(str(tmp_path / "short"))
    (tmp_path / "link").symlink_to(tmp_path / "short")
    with pytest.raises(OSError):
        Framebuffer(str(tmp_path / "link"))  # never followed
    header = bytearray(100)
    header[12:16] = (8).to_bytes(4, "big")  # an 8-bit screen
    (tmp_path / "eight").write_bytes(bytes(header) + b"\x00" * 400)
    with pytest.raises(FramebufferError, match="8-bit"):
        Framebuffer(str(tmp_path / "eight"))


def test_a_process_that_ends_without_closing_its_fake_sandbox_leaves_no_display(tmp_path):
    script = (
        "import asyncio, json\nfrom boxgym.sandboxes import FakeSandbox\n"
        "async def main():\n    sb = FakeSandbox()\n    await sb.call('gui.act', {'code': 'x = 1'}, timeout=60)\n"
        "    print(json.dumps((await sb.call('gui.info'))['processes']), flush=True)\n    raise SystemExit(3)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    pids = json.loads(done.stdout)
    assert set(pids) == {"xvfb", "wm", "worker"} and not [name for name, pid in pids.items() if alive(pid)]


async def test_a_slow_app_settles_before_the_screenshot_and_before_its_state_is_read():
    """The app is stopped at each step and let go 0.3 s later: a click's dialog is in that step's
    screenshot, the next click answers it, and the judge's read sees the press (without settling,
    the second click reaches the window behind a dialog not yet shown, and the press is lost)."""
    from PIL import Image

    confirm = {"text": "Really go?", "x": 500, "y": 300, "w": 420, "h": 170,
               "ok": {"text": "Yes", "x": 308, "y": 124, "w": 100, "h": 34},
               "cancel": {"text": "Cancel", "x": 198, "y": 124, "w": 100, "h": 34}}  # fmt: skip
    spec = {**APP, "widgets": [{**w, "confirm": confirm} if w.get("id") == "go" else w for w in APP["widgets"]]}
    loop = asyncio.get_running_loop()
    async with FakeSandbox() as sb:
        await sb.call("gui.open_app", {"spec": spec}, timeout=60)
        group = (await sb.call("gui.info"))["processes"]["app"]

        def held(call):
            os.killpg(group, signal.SIGSTOP)
            loop.call_later(0.3, os.killpg, group, signal.SIGCONT)
            return call

        shown = await held(act(sb, "pyautogui.click(120, 120)", pause=0))
        dialog = Image.open(io.BytesIO(base64.b64decode(shown["png_b64"]))).convert("L").crop((512, 312, 690, 340))
        assert dialog.getextrema()[0] < 100  # the dialog's text, over the white board behind it
        await held(act(sb, "pyautogui.click(858, 441)", pause=0))
        state = (await held(sb.call("gui.app_state")))["state"]
        assert [e["kind"] for e in state["events"]] == ["press"] and state["events"][0]["id"] == "go"
