"""Starting and stopping the sandbox's Chromium: as the agent, through Playwright, leaving nothing behind.

Playwright's client lives in the tool server (root) and its node driver is the server's child.
Chromium is started through a launcher script (root's, in a directory only root can read) that
records its pid and drops to the agent user with the rules of every agent command
(``boxgym-spawn``: SCHED_IDLE, the OOM killer's first choice, a subreaper so the browser's
process tree stays whole), with a profile directory Chromium makes as the agent. In the image
the binary is executable but not readable by the agent, so the kernel makes the browser's
processes non-dumpable: the agent's shell cannot attach to them or read their memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from . import procs
from .plugins import Unavailable

__all__ = ["CHROMIUM", "Chromium", "launch"]

CHROMIUM = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
LAUNCH_TIMEOUT_S = 30.0

# Chromium's own sandbox needs namespaces and privileges the hardened container does not grant;
# the container is the sandbox (Playwright passes --no-sandbox already).
_ARGS = ("--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check", "--mute-audio")

_LAUNCHER = """#!/bin/sh
# Playwright starts this instead of Chromium: record the pid, drop to the agent, give the
# browser a profile of the agent's own, and become Chromium (exec keeps the pid).
echo $$ > {pidfile}
exec {spawn} {chromium} "$@" --user-data-dir={profile}
"""


@dataclass
class Chromium:
    """One running browser and what it is made of."""

    playwright: Any
    browser: Any
    workdir: str  # root's: the launcher and the pid file
    profile: str  # the agent's: Chromium's profile
    pid: int | None  # Chromium's main process

    async def close(self, blocking: Any) -> None:
        """Close the browser and the driver, then kill what is left of the browser's tree and
        remove its files; ``blocking(fn, *args)`` runs blocking work off the event loop."""
        for step in (self.browser.close, self.playwright.stop):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await step()
        if self.pid is not None and _runs_with(self.pid, self.profile):
            await blocking(procs.kill_tree, self.pid)
        for path in (self.workdir, self.profile):
            await blocking(shutil.rmtree, path, True)


async def launch(ctx: Any) -> Chromium:
    """Start Playwright and Chromium as ``ctx``'s agent user; :class:`Unavailable` if they cannot be."""
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        raise Unavailable(f"playwright is not installed in this image: {exc}") from None
    chromium = next((path for path in CHROMIUM if os.access(path, os.X_OK)), None)
    if chromium is None:
        raise Unavailable(f"no Chromium at {' or '.join(CHROMIUM)}")
    switch = ctx.agent_uid != os.geteuid()
    spawn = f"{procs.SPAWN} {ctx.agent_uid} {ctx.agent_gid}" if switch and procs.HAVE_SPAWN else ""
    if switch and not spawn:
        raise Unavailable("the launcher that runs Chromium as the agent (boxgym-spawn) is not built")
    workdir = tempfile.mkdtemp(prefix="boxgym-browser-")  # root's, mode 0700
    profile = tempfile.mktemp(prefix="boxgym-chromium-", dir="/tmp")  # made by Chromium, as the agent
    launcher = os.path.join(workdir, "chromium")
    with open(launcher, "w") as fh:
        fh.write(_LAUNCHER.format(pidfile=os.path.join(workdir, "pid"), spawn=spawn, chromium=chromium, profile=profile))
    os.chmod(launcher, 0o700)
    env = {"HOME": ctx.agent_home, "PATH": ctx.base_env.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(
            executable_path=launcher, args=list(_ARGS), env=env, timeout=LAUNCH_TIMEOUT_S * 1000,
            handle_sigint=False, handle_sigterm=False, handle_sighup=False,
        )  # fmt: skip
    except BaseException:
        with contextlib.suppress(Exception):
            await playwright.stop()
        shutil.rmtree(workdir, True)
        raise
    pid = None
    with contextlib.suppress(OSError, ValueError), open(os.path.join(workdir, "pid")) as fh:
        pid = int(fh.read().strip())
    return Chromium(playwright, browser, workdir, profile, pid)


def _runs_with(pid: int, marker: str) -> bool:
    """Whether process ``pid`` still is the one started with ``marker`` on its command line (not a reused pid)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return marker.encode() in fh.read()
    except OSError:
        return False
