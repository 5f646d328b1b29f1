"""The ``blackbox`` plugin: a long-lived program speaking JSON lines, started once, answered in
order, and gone with the sandbox; who is at fault when it fails (in the fake sandbox, which runs
the same plugin)."""

from __future__ import annotations

import asyncio
import os
import textwrap

import pytest

from boxgym.errors import Fault, SandboxRefused, ToolServerError, ToolUnavailable, fault_of
from boxgym.sandboxes import FakeSandbox

# A program with a child of its own (as ScienceWorld's starts a JVM), and requests that make it
# misbehave on purpose.
PROGRAM = textwrap.dedent("""
    import json, os, subprocess, sys, time
    child = subprocess.Popen(["sleep", "600"])
    print(json.dumps({"ready": True, "child": child.pid}), flush=True)
    for line in sys.stdin:
        message = json.loads(line)
        if message == "exit":
            print("going away", file=sys.stderr, flush=True)
            sys.exit(3)
        if message == "hang":
            time.sleep(600)
        if message == "garbage":
            print("this is not json", flush=True)
            continue
        print(json.dumps({"echo": message, "pid": os.getpid()}), flush=True)
""")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] not in "ZX"
    except FileNotFoundError:
        return False


async def test_a_program_starts_once_answers_in_order_and_stops_with_the_sandbox():
    sandbox = FakeSandbox()
    first, second = await asyncio.gather(
        sandbox.call("blackbox.open", {"name": "echo", "python": PROGRAM}),
        sandbox.call("blackbox.open", {"name": "echo", "python": PROGRAM}),
    )
    assert sorted([first["started"], second["started"]]) == [False, True]
    assert first["pid"] == second["pid"] and first["hello"]["ready"] is True and first["start_s"] > 0
    child = first["hello"]["child"]
    replies = await asyncio.gather(
        *(sandbox.call("blackbox.request", {"name": "echo", "message": {"n": n, "text": "é\n中"}}) for n in range(20))
    )
    assert [r["reply"]["echo"] for r in replies] == [{"n": n, "text": "é\n中"} for n in range(20)]
    assert {r["reply"]["pid"] for r in replies} == {first["pid"]}
    with pytest.raises(SandboxRefused, match="already runs another command"):
        await sandbox.call("blackbox.open", {"name": "echo", "argv": ["cat"]})
    await sandbox.aclose()
    assert not alive(first["pid"]) and not alive(child)


async def test_closing_a_program_ends_what_it_started_and_the_next_open_starts_it_again():
    async with FakeSandbox() as sandbox:
        opened = await sandbox.call("blackbox.open", {"name": "echo", "python": PROGRAM})
        closed = await sandbox.call("blackbox.close", {"name": "echo"})
        assert closed["closed"] and not alive(opened["pid"]) and not alive(opened["hello"]["child"])
        assert (await sandbox.call("blackbox.close", {"name": "echo"}))["closed"] is False
        with pytest.raises(SandboxRefused, match="not open"):
            await sandbox.call("blackbox.request", {"name": "echo", "message": 1})
        again = await sandbox.call("blackbox.open", {"name": "echo", "python": PROGRAM})
        assert again["started"] and again["pid"] != opened["pid"]


async def test_a_program_that_dies_or_hangs_makes_the_tool_unavailable():
    async with FakeSandbox() as sandbox:
        opened = await sandbox.call("blackbox.open", {"name": "echo", "python": PROGRAM})
        with pytest.raises(ToolUnavailable, match="(?s)exited with status 3.*going away") as died:
            await sandbox.call("blackbox.request", {"name": "echo", "message": "exit"})
        with pytest.raises(ToolUnavailable, match="exited with status 3"):
            await sandbox.call("blackbox.request", {"name": "echo", "message": 1})
        assert fault_of(died.value) is Fault.INFRA
        reopened = await sandbox.call("blackbox.open", {"name": "echo", "python": PROGRAM})
        assert reopened["started"] and not alive(opened["hello"]["child"])
        with pytest.raises(ToolUnavailable, match="did not answer within 0.5s; it was stopped"):
            await sandbox.call("blackbox.request", {"name": "echo", "message": "hang", "timeout": 0.5})
        assert not alive(reopened["pid"]) and not alive(reopened["hello"]["child"])


async def test_a_program_that_never_gets_ready_or_cannot_start_is_unavailable():
    async with FakeSandbox() as sandbox:
        with pytest.raises(ToolUnavailable, match="did not say it was ready within 0.5s"):
            mute = {"name": "mute", "python": "import time; time.sleep(600)", "timeout": 0.5}
            await sandbox.call("blackbox.open", mute)
        with pytest.raises(ToolUnavailable, match="(?s)exited with status 1 before it was ready.*ZeroDivisionError"):
            await sandbox.call("blackbox.open", {"name": "crash", "python": "1/0"})
        with pytest.raises(ToolUnavailable, match="cannot be started"):
            await sandbox.call("blackbox.open", {"name": "missing", "argv": ["/nonexistent/simulator"]})


async def test_a_reply_that_is_not_json_is_a_bug_of_the_program_and_bad_requests_are_refused():
    async with FakeSandbox() as sandbox:
        await sandbox.call("blackbox.open", {"name": "echo", "python": PROGRAM})
        with pytest.raises(ToolServerError, match="not JSON: 'this is not json"):
            await sandbox.call("blackbox.request", {"name": "echo", "message": "garbage"})
        assert (await sandbox.call("blackbox.request", {"name": "echo", "message": 7}))["reply"]["echo"] == 7
        for args, match in [
            ({"name": "../x", "python": "pass"}, "name must match"),
            ({"name": "x"}, "exactly one of"),
            ({"name": "x", "argv": ["a"], "python": "pass"}, "exactly one of"),
            ({"name": "x", "argv": []}, "non-empty list"),
            ({"name": "x", "python": "#" * 200_000}, "put the program in the image"),
            ({"name": "x", "argv": ["cat"], "cwd": "relative"}, "absolute path"),
            ({"name": "x", "argv": ["cat"], "env": {"A": 1}}, "map strings to strings"),
            ({"name": "x", "argv": ["cat"], "timeout": -1}, "positive number"),
        ]:
            with pytest.raises(SandboxRefused, match=match):
                await sandbox.call("blackbox.open", args)
        with pytest.raises(SandboxRefused, match="cannot be sent as JSON"):
            await sandbox.call("blackbox.request", {"name": "echo", "message": float("nan")})


async def test_the_program_gets_a_clean_environment_and_the_given_one():
    program = "import json, os; print(json.dumps({'env': dict(os.environ), 'cwd': os.getcwd()}), flush=True); input()"
    async with FakeSandbox() as sandbox:
        hello = (await sandbox.call("blackbox.open", {"name": "env", "python": program, "env": {"SIM": "1"}}))["hello"]
    assert hello["cwd"] == "/" and hello["env"]["SIM"] == "1" and hello["env"]["HOME"] == "/tmp"
    assert not set(hello["env"]) - {"PATH", "LANG", "HOME", "SIM", "LC_CTYPE"}
    assert os.environ.get("BOXGYM_SESSION") and "BOXGYM_SESSION" not in hello["env"]
