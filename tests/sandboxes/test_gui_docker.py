"""The gui plugin in the desktop image: a real Tk app registers clicks and keys, every process runs
as its own user (the agent cannot kill the display or write an app's state), and stopping the
plugins leaves no process of the display behind."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from boxgym.sandboxes import SandboxSpec
from boxgym.sandboxes.config import AGENT_UID
from boxgym.sandboxes.pool import sandbox
from boxgym.sandboxes.toolserver.ops_gui import DISPLAY_UID

from ..display import APP

pytestmark = [pytest.mark.docker, pytest.mark.display]


@pytest.fixture
def desktop() -> SandboxSpec:
    base = SandboxSpec(image="desktop")
    return replace(base, limits=replace(base.limits, memory_mb=1024, pids=256))


def processes(ps: str) -> list[tuple[int, int, str]]:
    rows = []
    for line in ps.splitlines():
        uid, pid, args = line.split(None, 2)
        rows.append((int(uid), int(pid), args))
    return rows


async def test_a_tk_app_registers_clicks_and_keys_and_each_process_runs_as_its_user(desktop, engine):
    async with sandbox(desktop, engine=engine) as sb:
        opened = await sb.call("gui.open_app", {"spec": APP}, timeout=90)
        assert opened["state"]["layout"]["name"] == [40, 170, 300, 32]
        clicked = await sb.call("gui.act", {"code": "pyautogui.click(120, 120)"}, timeout=60)
        typed = await sb.call("gui.act", {"code": "pyautogui.click(190, 186)\npyautogui.write('typed in Docker')"}, timeout=60)
        assert clicked["ok"] and typed["ok"], (clicked, typed)
        state = (await sb.call("gui.app_state"))["state"]
        assert [e["kind"] for e in state["events"]] == ["press"] and state["values"]["name"] == "typed in Docker"

        ps = processes((await sb.exec(["ps", "-eo", "uid=,pid=,args="], user="root")).stdout)
        by_program = {re.sub(r"^\S*/", "", args.split()[0] if "python3" not in args else args.split()[2]): (uid, pid)
                      for uid, pid, args in ps}  # fmt: skip
        assert by_program["Xvfb"][0] == by_program["openbox"][0] == by_program["gui_app.py"][0] == DISPLAY_UID
        assert by_program["gui_worker.py"][0] == AGENT_UID
        xvfb = by_program["Xvfb"][1]
        app_dir = re.search(r"-fbdir (\S+)", next(a for _, _, a in ps if a.startswith("Xvfb"))).group(1)
        # What an agent that got out of its code checks could do, as the agent: none of it works.
        kill = await sb.exec(f"kill -9 {xvfb}")
        write = await sb.exec(f"echo '{{\"ready\": true, \"events\": []}}' > {app_dir}/app-state.json")
        read = await sb.exec(f"cat {app_dir}/app-state.json")
        assert kill.exit_code != 0 and "not permitted" in kill.stderr
        assert write.exit_code != 0 and "Permission denied" in write.stderr
        assert read.exit_code != 0 and "Permission denied" in read.stderr
        assert (await sb.call("gui.app_state"))["state"]["values"]["name"] == "typed in Docker"

        assert (await sb.call("stop_plugins")) == {"failed": {}}
        left = processes((await sb.exec(["ps", "-eo", "uid=,pid=,args="], user="root")).stdout)
        assert [args for uid, _, args in left if uid != 0] == []
        assert not [args for _, _, args in left if "Xvfb" in args or "openbox" in args or "gui_" in args]
        listing = await sb.exec(["ls", "-A", "/tmp"], user="root")
        assert listing.stdout.split() == [".X11-unix"]  # the display's directory and lock file are gone
