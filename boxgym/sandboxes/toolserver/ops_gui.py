"""The ``gui`` plugin: an X display with a window manager, the agent's pyautogui code, screenshots,
and small Tk apps described as data (see plugins.py for the plugin shape).

Operations (``sandbox.call("gui.<op>", args)``):

=============  =====================================================================================
``act``        run the agent's pyautogui code (``gui_worker.py``), then take a screenshot: ``ok``,
               ``error``, ``line``, ``output``, ``timed_out``, ``duration_s`` (the code's) and
               ``png_b64``, ``width``, ``height``, ``screenshot_s``
``screenshot`` the screen as a PNG
``open_app``   start a Tk app from its description (``gui_app.py``), close the one before
``app_state``  what the open app wrote, once it has settled: ``{"running": bool, "state": {...}}``
``info``       the display and the processes the plugin runs (for tests and debugging)
=============  =====================================================================================

Every op takes ``screen=[width, height]``: the display starts on the first op, at that size
(1280x800 when none is given), and a later op that asks for another size is refused.

Who runs what. Xvfb (``-fbdir``: its screen is a file, read here for screenshots, so that no X
client runs as root), openbox and the apps run as :data:`DISPLAY_UID`, a user that is neither
root nor the agent, in a directory only that user (and root) may enter: the agent cannot kill the
display or an app, and cannot write the file where an app keeps its state, which is where the
judge reads it. The agent's code runs as the agent, in a long-lived worker process with pyautogui
imported (a step costs a pipe round trip, not an interpreter start); a step that passes its
timeout kills the worker and the next step starts another. Every process is started like an
agent command (``procs.start``: subreaper, OOM killer's first choice, SCHED_IDLE) and killed with
its whole tree when the sandbox stops.

The screenshot after an act, a ``screenshot`` and ``app_state`` first let the open app settle
(``gui_app.py``): it has handled every event before them and the X server has drawn it. Everything
of the display runs at the lowest CPU priority, so on a busy machine a click's effect may come
later than any fixed pause; waiting for the app makes what the agent sees and what the judge reads
follow from its actions, not from the machine's load. An app that does not settle within
:data:`SETTLE_WITHIN_S` is shown and read as it is.

Who is at fault: the code's syntax errors, exceptions, refusals and timeouts, and a worker that
died or answered garbage, are answers (``ok: false``); a display that will not start is
:class:`~.plugins.Unavailable`; an app that exits on its own description is a bug (an exception).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from typing import Any

from . import procs
from .files import Refused
from .gui_pipes import Pipe, Worker, an_answer
from .gui_screen import Framebuffer
from .plugins import Unavailable

#: The display's user: Xvfb, the window manager and the apps under test.
DISPLAY_UID = 10002
DEFAULT_SCREEN = (1280, 800)
#: How long the X server, the window manager, the worker and an app may take to come up.
START_WITHIN_S = 20.0
HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "gui_worker.py")
APP = os.path.join(HERE, "gui_app.py")
#: The longest an act, a screenshot or the judge waits for the open app to settle.
SETTLE_WITHIN_S = 5.0
#: The longest answer line the worker may write (its output is capped at 8 KiB inside).
MAX_ANSWER = 64 * 1024

# No title bars or borders: a window asked for at (x, y) has its content at (x, y), so that an app
# described with absolute positions is where its description says. New windows get the focus.
OPENBOX_RC = """<?xml version="1.0" encoding="UTF-8"?>
<openbox_config xmlns="http://openbox.org/3.4/rc">
  <focus><focusNew>yes</focusNew><followMouse>no</followMouse></focus>
  <placement><policy>Smart</policy></placement>
  <desktops><number>1</number></desktops>
  <theme><keepBorder>no</keepBorder></theme>
  <margins><top>0</top><bottom>0</bottom><left>0</left><right>0</right></margins>
  <applications><application class="*"><decor>no</decor></application></applications>
</openbox_config>
"""


class Plugin:
    EXCLUSIVE = frozenset({"act", "screenshot", "open_app"})

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        isolated = ctx.agent_uid != os.geteuid()
        # In the fake sandbox every process is the host user's: there is no other user to be.
        self.display_ids: tuple[int | None, int | None] = (DISPLAY_UID, DISPLAY_UID) if isolated else (None, None)
        self.agent_ids = ctx.identity("agent")
        self.dir: str | None = None
        self.screen: tuple[int, int] | None = None
        self.display: str | None = None
        self.xvfb: subprocess.Popen | None = None
        self.wm: subprocess.Popen | None = None
        self.app: subprocess.Popen | None = None
        self.app_errors: Pipe | None = None
        self.app_settled: Pipe | None = None  # the app's answers to settle requests
        self._app_asks = -1  # where settle requests are written (the app's stdin)
        self._settles = 0
        self._settling = asyncio.Lock()  # one request at a time: each waits for its own answer
        self.worker: Worker | None = None
        self.framebuffer: Framebuffer | None = None
        self._starting = asyncio.Lock()
        self._log: int = -1  # the display's log file (Xvfb's and openbox's stderr)
        _LIVE.add(self)

    # -- the display ------------------------------------------------------------------------

    def _env(self, home: str) -> dict[str, str]:
        assert self.display is not None
        return {**self.ctx.base_env, "DISPLAY": self.display, "HOME": home}

    async def _ready(self, screen: Any) -> None:
        size = _screen(screen)
        async with self._starting:
            if self.xvfb is None:
                try:
                    await self._start_display(size or DEFAULT_SCREEN)
                except BaseException:
                    await self._stop_display()  # the next op starts it again from nothing
                    raise
        if self.xvfb is not None and self.xvfb.poll() is not None:
            raise Unavailable(f"the X server has exited (status {self.xvfb.returncode}): {self._log_tail()}")
        if size is not None and size != self.screen:
            raise Refused(f"the display is {self.screen[0]}x{self.screen[1]}; it cannot change to {size[0]}x{size[1]}")

    async def _start_display(self, size: tuple[int, int]) -> None:
        uid, gid = self.display_ids
        path = os.path.join(tempfile.gettempdir(), f".boxgym-display-{secrets.token_hex(8)}")
        # Made by the display's user itself (the server has no CAP_CHOWN): 0700, theirs.
        made = await procs.run(["mkdir", "-m", "0700", path], cwd="/", env=dict(self.ctx.base_env), stdin=None,
                               timeout=10, max_output=4096, uid=uid, gid=gid)  # fmt: skip
        if made["exit_code"] != 0:
            raise Unavailable(f"cannot make the display's directory {path}: {made['stderr'].strip()}")
        self.dir = path
        with open(os.path.join(path, "openbox.xml"), "w") as fh:
            fh.write(OPENBOX_RC)
        self._log = os.open(os.path.join(path, "display.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        _x11_socket_dir()
        read_fd, write_fd = os.pipe()
        try:
            self.xvfb = procs.start(
                ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{size[0]}x{size[1]}x24", "-nolisten", "tcp",
                 "-noreset", "-fbdir", path, "-dpi", "96"],
                cwd=path, env={**self.ctx.base_env, "HOME": path}, uid=uid, gid=gid, stdout=self._log,
                stderr=self._log, pass_fds=(write_fd,),
            )  # fmt: skip
        except FileNotFoundError:
            os.close(read_fd)
            raise Unavailable("Xvfb is not installed in this image (the desktop image has it)") from None
        finally:
            os.close(write_fd)
        number = Pipe(read_fd, 64)
        line = await number.line(time.monotonic() + START_WITHIN_S)
        number.close()
        if line is None or not line.strip().isdigit():
            raise Unavailable(f"the X server did not start within {START_WITHIN_S:g}s: {self._log_tail()}")
        self.display, self.screen = f":{int(line)}", size
        self.framebuffer = Framebuffer(os.path.join(path, "Xvfb_screen0"))
        ready = os.path.join(path, "wm-ready")
        try:
            self.wm = procs.start(
                ["openbox", "--config-file", os.path.join(path, "openbox.xml"), "--startup", f"touch {ready}"],
                cwd=path, env=self._env(path), uid=uid, gid=gid, stdout=self._log, stderr=self._log,
            )  # fmt: skip
        except FileNotFoundError:
            raise Unavailable("openbox is not installed in this image (the desktop image has it)") from None
        if not await _appears(ready, self.wm):
            raise Unavailable(f"the window manager did not start within {START_WITHIN_S:g}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            with open(os.path.join(self.dir or "/nonexistent", "display.log"), "rb") as fh:
                return fh.read()[-1500:].decode("utf-8", "replace").strip() or "(nothing logged)"
        except OSError:
            return "(no log)"

    # -- the agent's code -------------------------------------------------------------------

    async def _worker(self) -> Worker:
        if self.worker is not None and self.worker.proc.poll() is None:
            return self.worker
        if self.worker is not None:
            self.worker.kill()
            self.worker = None
        uid, gid = self.agent_ids
        stdin_r, stdin_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            proc = procs.start(
                [sys.executable, "-I", WORKER], cwd=self.ctx.agent_home, env=self._env(self.ctx.agent_home),
                uid=uid, gid=gid, stdin=stdin_r, stdout=out_w, stderr=err_w,
            )  # fmt: skip
        except BaseException:
            for fd in (stdin_w, out_r, err_r):
                os.close(fd)
            raise
        finally:
            for fd in (stdin_r, out_w, err_w):
                os.close(fd)
        os.set_blocking(stdin_w, False)
        worker = Worker(proc, stdin_w, Pipe(out_r, MAX_ANSWER), Pipe(err_r, 8192))
        line = await worker.answers.line(time.monotonic() + START_WITHIN_S)
        try:
            ready = json.loads(line) if line is not None else None
        except ValueError:
            ready = None
        if not (isinstance(ready, dict) and ready.get("ready") is True):
            await asyncio.sleep(0.05)
            tail = worker.errors.tail()
            worker.kill()
            raise Unavailable(f"the pyautogui worker did not start: {tail or 'no answer'}")
        self.worker = worker
        return worker

    async def _run_code(self, code: str, pause: float, timeout: float) -> dict:
        worker = await self._worker()
        answer, why = await worker.ask({"code": code, "pause": pause}, timeout)
        if why == "timeout":
            worker.kill()
            self.worker = None
            return {"ok": False, "timed_out": True, "error": f"the code did not finish within {timeout:g}s and was stopped"}
        if answer is None or not an_answer(answer):
            worker.kill()  # a process that answers garbage is not asked again
            self.worker = None
            return {"ok": False, "error": f"the code's process stopped answering: {why or 'an answer of the wrong shape'}"}
        return {"ok": answer["ok"], "error": answer.get("error"), "line": answer.get("line"), "output": answer.get("output", "")}

    # -- screenshots ------------------------------------------------------------------------

    async def _shot(self) -> dict:
        assert self.framebuffer is not None
        workers = self.ctx.workers.get("root")
        # A few milliseconds of CPU: on one of the server's own threads (the fake has none).
        if workers is not None:
            png = await workers.run(self.framebuffer.png)
        else:
            png = await asyncio.to_thread(self.framebuffer.png)
        return {"png_b64": base64.b64encode(png).decode("ascii"), "width": self.framebuffer.width,
                "height": self.framebuffer.height}  # fmt: skip

    # -- operations -------------------------------------------------------------------------

    async def op_act(self, code: str, timeout: float = 30.0, pause: float = 0.1, screen: Any = None,
                     screenshot: bool = True) -> dict:  # fmt: skip
        if not isinstance(code, str):
            raise Refused("'code' must be a string")
        _positive(timeout, "timeout")
        if isinstance(pause, bool) or not isinstance(pause, (int, float)) or not 0 <= pause <= 10:
            raise Refused("'pause' must be a number of seconds from 0 to 10")
        await self._ready(screen)
        start = time.monotonic()
        result = await self._run_code(code, float(pause), float(timeout))
        result.setdefault("timed_out", False)
        result["duration_s"] = time.monotonic() - start
        if screenshot:
            start = time.monotonic()
            await self._settle()
            result.update(await self._shot())
            result["screenshot_s"] = time.monotonic() - start
        return result

    async def op_screenshot(self, screen: Any = None) -> dict:
        await self._ready(screen)
        await self._settle()
        return await self._shot()

    async def op_open_app(self, spec: dict, screen: Any = None, timeout: float = START_WITHIN_S) -> dict:
        if not isinstance(spec, dict):
            raise Refused("'spec' must be an object (an app description)")
        _positive(timeout, "timeout")
        await self._ready(screen)
        assert self.dir is not None
        self._close_app()
        spec_path, state_path = os.path.join(self.dir, "app.json"), os.path.join(self.dir, "app-state.json")
        with open(spec_path, "w", encoding="utf-8") as fh:
            json.dump(spec, fh)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(state_path)
        uid, gid = self.display_ids
        err_r, err_w = os.pipe()
        ask_r, ask_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            self.app = procs.start([sys.executable, "-I", APP, spec_path, state_path], cwd=self.dir,
                                   env=self._env(self.dir), uid=uid, gid=gid, stdin=ask_r, stdout=out_w,
                                   stderr=err_w)  # fmt: skip
        except BaseException:
            for fd in (err_r, ask_w, out_r):
                os.close(fd)
            raise
        finally:
            for fd in (err_w, ask_r, out_w):
                os.close(fd)
        self.app_errors = Pipe(err_r, 8192)
        self.app_settled = Pipe(out_r, 64)
        os.set_blocking(ask_w, False)
        self._app_asks = ask_w
        deadline = time.monotonic() + float(timeout)
        while time.monotonic() < deadline:
            state = _read_state(state_path)
            if state is not None and state.get("ready"):
                return {"pid": self.app.pid, "state": state}
            if self.app.poll() is not None:
                await asyncio.sleep(0.05)  # the rest of what it said on its way out
                status, said = self.app.returncode, self.app_errors.tail()
                self._close_app()
                raise RuntimeError(f"the app exited with status {status}: {said}")
            await asyncio.sleep(0.02)
        said = self.app_errors.tail()
        self._close_app()
        raise Unavailable(f"the app did not show its window within {timeout:g}s: {said}")

    async def op_app_state(self) -> dict:
        if self.app is None or self.dir is None:
            raise Refused("no app is open (open one with gui.open_app)")
        await self._settle()
        state = _read_state(os.path.join(self.dir, "app-state.json"))
        return {"running": self.app.poll() is None, "state": state}

    async def _settle(self) -> bool:
        """Waits for the open app to settle (module docstring); False when it did not in time or
        there is none. The app is ours, not the agent's: its answers are only compared."""
        if self.app is None or self.app_settled is None or self.app.poll() is not None:
            return False
        async with self._settling:
            self._settles += 1
            token, answers = str(self._settles).encode(), self.app_settled
            answers.lines.clear()  # late answers to requests that timed out
            try:
                os.write(self._app_asks, token + b"\n")
            except (BlockingIOError, BrokenPipeError):
                return False  # it has not read the last ones (stuck) or it has gone
            deadline = time.monotonic() + SETTLE_WITHIN_S
            while (line := await answers.line(deadline)) is not None:
                if line == token:
                    return True
            return False

    async def op_info(self) -> dict:
        processes = {name: proc.pid for name, proc in (("xvfb", self.xvfb), ("wm", self.wm), ("app", self.app),
                     ("worker", self.worker.proc if self.worker else None)) if proc is not None and proc.poll() is None}  # fmt: skip
        return {"display": self.display, "screen": list(self.screen) if self.screen else None, "processes": processes}

    # -- the end ----------------------------------------------------------------------------

    def _close_app(self) -> None:
        if self.app is not None:
            procs.kill_tree(self.app.pid)
            self.app.wait()
            self.app = None
        for pipe in (self.app_errors, self.app_settled):
            if pipe is not None:
                pipe.close()
        self.app_errors = self.app_settled = None
        if self._app_asks >= 0:
            os.close(self._app_asks)
            self._app_asks = -1

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.kill()
            self.worker = None
        self._close_app()
        await self._stop_display()

    async def _stop_display(self) -> None:
        if self.framebuffer is not None:
            self.framebuffer.close()
            self.framebuffer = None
        if self.wm is not None:
            procs.kill_tree(self.wm.pid)
            self.wm.wait()
            self.wm = None
        if self.xvfb is not None:
            # Asked first, so that it removes its lock file and socket; then killed whatever it did.
            with contextlib.suppress(ProcessLookupError):
                self.xvfb.send_signal(signal.SIGTERM)
            for _ in range(100):
                if self.xvfb.poll() is not None:
                    break
                await asyncio.sleep(0.01)
            procs.kill_tree(self.xvfb.pid)
            self.xvfb.wait()
            self.xvfb = None
        if self._log >= 0:
            os.close(self._log)
            self._log = -1
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)  # a few small files and the framebuffer, in tmpfs
            self.dir = None
        self.display = self.screen = None


# -- helpers -------------------------------------------------------------------------------

#: The plugins of this process, for the exit backstop below.
_LIVE: weakref.WeakSet[Plugin] = weakref.WeakSet()


@atexit.register
def _kill_left() -> None:
    """A process that ends without stopping its plugins (a fake sandbox never closed, a test that
    crashed) takes their displays, apps and workers with it. The tool server stops its plugins
    itself and leaves by ``os._exit``, which runs no atexit hook."""
    for plugin in list(_LIVE):
        for proc in (plugin.worker.proc if plugin.worker else None, plugin.app, plugin.wm, plugin.xvfb):
            if proc is not None and proc.poll() is None:
                if proc is plugin.xvfb:
                    proc.terminate()  # its lock file and socket go with a TERM
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(0.5)
                procs.kill_tree(proc.pid)
        if plugin.dir is not None:
            shutil.rmtree(plugin.dir, ignore_errors=True)



def _screen(screen: Any) -> tuple[int, int] | None:
    if screen is None:
        return None
    if (not isinstance(screen, (list, tuple)) or len(screen) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 64 <= v <= 8192 for v in screen)):  # fmt: skip
        raise Refused(f"'screen' must be [width, height] in pixels (64 to 8192), not {screen!r}")
    return int(screen[0]), int(screen[1])


def _positive(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e6:
        raise Refused(f"'{name}' must be a positive number of seconds")


def _read_state(path: str) -> dict | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    try:
        data = os.read(fd, 4 << 20)
    finally:
        os.close(fd)
    try:
        state = json.loads(data)
    except ValueError:
        return None  # written by rename, so never half: only a file that is not the app's
    return state if isinstance(state, dict) else None


async def _appears(path: str, proc: subprocess.Popen) -> bool:
    deadline = time.monotonic() + START_WITHIN_S
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        if proc.poll() is not None:
            return False
        await asyncio.sleep(0.01)
    return False


def _x11_socket_dir() -> None:
    """Xvfb puts its socket in /tmp/.X11-unix: made here, root's and sticky, when it is missing,
    so that the display's user does not own the directory every display's socket is in."""
    path = "/tmp/.X11-unix"
    if os.geteuid() != 0 or os.path.lexists(path):
        return
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o1777)
        os.chmod(path, 0o1777)

