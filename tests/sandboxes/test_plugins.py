"""The tool server's plugin seam: lifecycle, typed state, who is at fault, the fake runs the same ops."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

from boxgym.errors import SandboxBusy, SandboxRefused, ToolServerError, ToolUnavailable, fault_of, Fault
from boxgym.sandboxes import FakeSandbox
from boxgym.sandboxes.toolserver import plugins as plugins_module

PLUGIN = textwrap.dedent('''
    import asyncio

    from .files import Refused
    from .plugins import Unavailable

    EVENTS = []


    class Plugin:
        EXCLUSIVE = frozenset({"slow"})

        def __init__(self, ctx):
            self.ctx = ctx
            self.count = 0
            self.started = 0

        async def start(self):
            await asyncio.sleep(0.01)  # concurrent first calls must still start it once
            self.started += 1
            EVENTS.append("start")

        async def stop(self):
            EVENTS.append("stop")

        async def op_add(self, n: int) -> dict:
            self.count += n
            return {"count": self.count, "started": self.started, "workdir": self.ctx.workdir}

        async def op_slow(self) -> dict:
            await asyncio.sleep(0.2)
            return {"ok": True}

        async def op_pick(self, element: str) -> dict:
            raise Refused(f"no element {element!r} on the page", reason="bad_request")

        async def op_cell(self, code: str) -> dict:
            return {"ok": False, "error": "ZeroDivisionError: division by zero"}  # the agent's: an answer

        async def op_dead(self) -> dict:
            raise Unavailable("the kernel died and cannot be restarted")

        async def op_bug(self) -> dict:
            return {}["missing"]
''')


@pytest.fixture
def plugin():
    path = Path(plugins_module.__file__).parent / "ops_seamtest.py"
    path.write_text(PLUGIN)
    try:
        yield "seamtest"
    finally:
        path.unlink()
        sys.modules.pop("boxgym.sandboxes.toolserver.ops_seamtest", None)


async def test_a_plugin_starts_once_keeps_its_state_and_stops_with_the_sandbox(plugin):
    sandbox = FakeSandbox()
    first, second = await asyncio.gather(sandbox.call("seamtest.add", {"n": 2}), sandbox.call("seamtest.add", {"n": 3}))
    assert sorted([first["count"], second["count"]]) == [2, 5] and first["started"] == second["started"] == 1
    assert first["workdir"] == sandbox.workdir
    events = sys.modules["boxgym.sandboxes.toolserver.ops_seamtest"].EVENTS
    assert events == ["start"]
    await sandbox.aclose()
    assert events == ["start", "stop"]


async def test_who_is_at_fault_for_what_a_plugin_says(plugin):
    async with FakeSandbox() as sandbox:
        assert (await sandbox.call("seamtest.cell", {"code": "1/0"}))["ok"] is False  # the agent's failed cell
        with pytest.raises(SandboxRefused, match="no element 'x9'") as refused:
            await sandbox.call("seamtest.pick", {"element": "x9"})
        with pytest.raises(SandboxRefused, match="bad arguments"):
            await sandbox.call("seamtest.add", {"m": 1})
        with pytest.raises(SandboxRefused, match="unknown operation"):
            await sandbox.call("seamtest.nothing")
        with pytest.raises(SandboxRefused, match="unknown operation"):
            await sandbox.call("seamtest._private")
        with pytest.raises(ToolUnavailable, match="cannot be restarted") as dead:
            await sandbox.call("seamtest.dead")
        with pytest.raises(ToolServerError, match="KeyError") as bug:
            await sandbox.call("seamtest.bug")
        slow = asyncio.ensure_future(sandbox.call("seamtest.slow"))
        await asyncio.sleep(0.05)
        with pytest.raises(SandboxBusy):
            await sandbox.call("seamtest.slow")
        assert (await slow)["ok"]
    assert fault_of(refused.value) is Fault.BUG  # a toolset turns a refusal into an observation first
    assert fault_of(dead.value) is Fault.INFRA and fault_of(bug.value) is Fault.BUG


async def test_an_unknown_namespace_is_refused_and_a_missing_dependency_is_unavailable(plugin, tmp_path):
    path = Path(plugins_module.__file__).parent / "ops_seammissing.py"
    path.write_text("import boxgym_no_such_module\n")
    try:
        async with FakeSandbox() as sandbox:
            with pytest.raises(SandboxRefused, match="unknown operation namespace 'nowhere'"):
                await sandbox.call("nowhere.op")
            with pytest.raises(ToolUnavailable, match="not available in this image"):
                await sandbox.call("seammissing.op")
    finally:
        path.unlink()
