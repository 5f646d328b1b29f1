"""The tool server's own behaviour, run as a host process (no Docker needed).

The server runs as the test's own user with the agent uid set to that user,
so no identity switching happens here; the Docker tests cover that.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from boxgym.errors import SandboxBroken, SandboxBusy, SandboxFileNotFound, SandboxRefused, ToolUnavailable


def _alive(pattern: str) -> list[str]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return out.stdout.split()


async def test_exec_returns_exit_code_and_both_streams(server):
    result = await server.request("exec", {"cmd": "echo out; echo err >&2; exit 3"}, timeout=10)
    assert result["exit_code"] == 3
    assert result["stdout"] == "out\n"
    assert result["stderr"] == "err\n"
    assert result["timed_out"] is False
    assert result["duration_s"] > 0


async def test_exec_argv_cwd_env_and_stdin(server):
    (server.workdir / "sub").mkdir()
    result = await server.request(
        "exec",
        {"argv": ["bash", "-c", 'pwd; echo "$GREETING"; cat'], "cwd": "sub", "env": {"GREETING": "hi"},
         "stdin_b64": "aW5wdXQ="},  # "input"
        timeout=10,
    )  # fmt: skip
    assert result["stdout"] == f"{server.workdir / 'sub'}\nhi\ninput"


async def test_missing_program_is_a_result_not_an_error(server):
    result = await server.request("exec", {"argv": ["no-such-program-xyz"]}, timeout=10)
    assert result["exit_code"] == 127
    assert "no-such-program-xyz" in result["stderr"]


async def test_output_is_capped_with_a_marker_keeping_head_and_tail(server):
    result = await server.request("exec", {"cmd": "echo START; head -c 1000000 /dev/zero | tr '\\0' x; echo; echo END"}, timeout=30)  # fmt: skip
    out = result["stdout"]
    assert result["stdout_truncated"] is True
    assert out.startswith("START\n") and out.rstrip().endswith("END")
    assert "output truncated" in out and "bytes omitted" in out
    assert len(out) < 4096 + 200


async def test_timeout_kills_the_whole_tree_including_setsid_and_double_fork(server, tmp_path):
    tag = f"boxgymtest{time.monotonic_ns()}"
    started = time.monotonic()
    # `exec -a` names each process after the tag so that pgrep finds every one of them.
    cmd = (
        f"(setsid bash -c 'exec -a {tag}a sleep 1000' &) ; "
        f"( (bash -c 'exec -a {tag}b sleep 1000' &) & ) ; "
        f"bash -c 'trap \"\" TERM; exec -a {tag}c sleep 1000'"
    )
    result = await server.request("exec", {"cmd": cmd, "timeout": 1.0}, timeout=20)
    assert result["timed_out"] is True and result["exit_code"] is None
    assert time.monotonic() - started < 5
    await asyncio.sleep(0.2)
    assert _alive(tag) == []


async def test_background_child_holding_stdout_does_not_block_the_answer(server):
    tag = f"boxgymbg{time.monotonic_ns()}"
    started = time.monotonic()
    result = await server.request("exec", {"cmd": f"bash -c 'exec -a {tag} sleep 3' & echo done"}, timeout=20)
    assert result["exit_code"] == 0 and result["stdout"].startswith("done")
    assert time.monotonic() - started < 2
    subprocess.run(["pkill", "-f", tag])


async def test_cancelled_call_kills_its_command(server):
    tag = f"boxgymcancel{time.monotonic_ns()}"
    task = asyncio.ensure_future(server.request("exec", {"cmd": f"bash -c 'exec -a {tag} sleep 100'", "timeout": 100}, timeout=100))  # fmt: skip
    await asyncio.sleep(0.5)
    assert _alive(tag)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.5)
    assert _alive(tag) == []


async def test_concurrent_calls_on_one_connection_do_not_mix(server):
    async def one(i: int) -> None:
        result = await server.request("exec", {"cmd": f"sleep 0.0{i % 10}; printf '%s' {i}-{'y' * 500}"}, timeout=30)
        assert result["stdout"] == f"{i}-{'y' * 500}"

    await asyncio.gather(*(one(i) for i in range(40)))


async def test_file_operations_round_trip_bytes(server):
    payload = bytes(range(256)) * 10
    import base64

    await server.request("write_file", {"path": "d/e/f.bin", "data_b64": base64.b64encode(payload).decode(), "mode": 0o600}, timeout=10)  # fmt: skip
    got = await server.request("read_file", {"path": "d/e/f.bin"}, timeout=10)
    assert base64.b64decode(got["data_b64"]) == payload and got["size"] == len(payload)
    head = await server.request("read_file", {"path": "d/e/f.bin", "max_bytes": 10}, timeout=10)
    assert base64.b64decode(head["data_b64"]) == payload[:10] and head["truncated"] is True
    info = await server.request("stat", {"path": "d/e/f.bin"}, timeout=10)
    assert info["kind"] == "file" and info["size"] == len(payload) and info["mode"] == 0o600
    listing = await server.request("list_dir", {"path": "d"}, timeout=10)
    assert [(e["name"], e["kind"]) for e in listing] == [("e", "dir")]


@pytest.mark.parametrize(
    ("op", "args", "error"),
    [
        pytest.param("no_such_op", {}, SandboxRefused, id="unknown-op"),
        pytest.param("nosuch.op", {}, SandboxRefused, id="unknown-namespace"),
        pytest.param("exec", {"cmd": "true", "bogus": 1}, SandboxRefused, id="unknown-argument"),
        pytest.param("exec", {}, SandboxRefused, id="neither-cmd-nor-argv"),
        pytest.param("exec", {"argv": "ls"}, SandboxRefused, id="argv-not-a-list"),
        pytest.param("exec", {"cmd": "true", "timeout": -1}, SandboxRefused, id="negative-timeout"),
        pytest.param("read_file", {"path": "missing.txt"}, SandboxFileNotFound, id="missing-file"),
        pytest.param("read_file", {"path": "."}, SandboxRefused, id="read-a-directory"),
        pytest.param("write_file", {"path": "x", "data_b64": "%%%"}, SandboxRefused, id="bad-base64"),
        pytest.param("stat", {"path": "a", "user": "nobody"}, SandboxRefused, id="unknown-user"),
    ],
)
async def test_bad_requests_are_refused_and_the_server_keeps_serving(server, op, args, error):
    with pytest.raises(error):
        await server.request(op, args, timeout=10)
    assert (await server.request("health", {}, timeout=10))["ok"] is True


async def test_plugin_operations_load_on_demand_and_exclusive_ones_refuse_overlap(server):
    assert await server.request("testing.echo", {"value": 5}, timeout=10) == {"value": 5}
    first = asyncio.ensure_future(server.request("testing.hold", {"seconds": 0.5}, timeout=10))
    await asyncio.sleep(0.1)
    with pytest.raises(SandboxBusy):
        await server.request("testing.hold", {"seconds": 0.1}, timeout=10)
    assert await first == "held"
    assert await server.request("testing.hold", {"seconds": 0.01}, timeout=10) == "held"
    health = await server.request("health", {}, timeout=10)
    assert "testing.*" in health["operations"] and "stop_plugins" in health["operations"]
    assert await server.request("stop_plugins", {}, timeout=10) == {"failed": {}}
    assert (server.workdir / "plugin-stopped").read_text() == "stopped"
    with pytest.raises(ToolUnavailable, match="stopping"):
        await server.request("testing.echo", {"value": 1}, timeout=10)


async def test_server_death_fails_pending_calls_as_broken(server):
    pending = asyncio.ensure_future(server.request("exec", {"cmd": "sleep 30", "timeout": 60}, timeout=60))
    await asyncio.sleep(0.2)
    server.proc.kill()
    with pytest.raises(SandboxBroken):
        await asyncio.wait_for(pending, 5)
    with pytest.raises(SandboxBroken):
        await server.request("health", {}, timeout=5)


async def test_the_server_stops_its_plugins_when_it_stops(server):
    assert await server.request("testing.echo", {"value": 1}, timeout=10) == {"value": 1}
    server.proc.terminate()
    assert await asyncio.to_thread(server.proc.wait, 10) == 0
    assert (server.workdir / "plugin-stopped").read_text() == "stopped"
