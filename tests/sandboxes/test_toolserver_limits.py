"""The tool server's limits and refusals, run as a host process (no Docker needed).

What can be shown without a container: nothing an agent plants blocks a thread,
nothing it asks for floods memory or the frame, every refusal is named; and the
pieces the container relies on (the cgroup counters, boxgym-init) behave.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from boxgym.errors import SandboxRefused
from boxgym.sandboxes import READ_LIMIT, WRITE_LIMIT
from boxgym.sandboxes.toolserver import cgroup, files, protocol
from boxgym.sandboxes.toolserver.threads import Workers

TOOLSERVER = Path(files.__file__).parent


async def refused(server, op: str, args: dict, reason: str) -> str:
    with pytest.raises(SandboxRefused) as err:
        await server.request(op, args, timeout=10)
    assert err.value.reason == reason, err.value
    return str(err.value)


async def test_fifos_and_devices_are_refused_without_blocking(server):
    os.mkfifo(server.workdir / "pipe")
    started = time.monotonic()
    calls = [server.request("read_file", {"path": "pipe", "user": u}, timeout=5) for u in ("agent", "root") * 6]
    calls += [server.request("write_file", {"path": "pipe", "data_b64": "eA==", "user": u}, timeout=5) for u in ("agent", "root") * 3]  # fmt: skip
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, SandboxRefused) and r.reason == "not_regular" for r in results), results
    assert time.monotonic() - started < 3
    assert "FIFO" in str(results[0])
    await refused(server, "read_file", {"path": "/dev/zero"}, "not_regular")
    await refused(server, "write_file", {"path": "/dev/null", "data_b64": ""}, "not_regular")
    assert (await server.request("health", {}, timeout=5))["ok"]


async def test_reads_stop_at_the_limit_and_say_how_to_read_in_parts(server):
    with open(server.workdir / "sparse", "wb") as fh:
        fh.truncate(3 * READ_LIMIT)
    message = await refused(server, "read_file", {"path": "sparse"}, "too_large")
    assert f"offset={READ_LIMIT}" in message and f"max_bytes={READ_LIMIT}" in message
    part = await server.request("read_file", {"path": "sparse", "offset": 2 * READ_LIMIT, "max_bytes": 10}, timeout=10)
    assert base64.b64decode(part["data_b64"]) == b"\0" * 10 and part["truncated"] is True
    tail = await server.request("read_file", {"path": "sparse", "offset": 3 * READ_LIMIT - 5}, timeout=10)
    assert base64.b64decode(tail["data_b64"]) == b"\0" * 5 and tail["truncated"] is False
    await refused(server, "read_file", {"path": "sparse", "offset": -1}, "bad_request")


async def test_writes_over_the_limit_and_frames_over_the_maximum_are_refused(server):
    too_big = base64.b64encode(b"x" * (WRITE_LIMIT + 3)).decode()
    await refused(server, "write_file", {"path": "f", "data_b64": too_big}, "too_large")
    await refused(server, "exec", {"cmd": "x" * (protocol.MAX_FRAME + 1)}, "too_large")  # refused before it is sent
    await refused(server, "exec", {"cmd": "cat", "stdin_b64": too_big}, "too_large")
    assert (await server.request("health", {}, timeout=5))["ok"]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        pytest.param({"path": "bad\ud800"}, "bad_name", id="lone-surrogate"),
        pytest.param({"path": "a\x00b"}, "bad_name", id="nul"),
        pytest.param({"path": "n" * 300}, "name_too_long", id="too-long"),
        pytest.param({"path": "file/below"}, "not_directory", id="file-as-dir"),
    ],
)
async def test_bad_names_are_named_refusals(server, args, reason):
    (server.workdir / "file").write_text("x")
    await refused(server, "write_file", {**args, "data_b64": ""}, reason)


async def test_commands_that_cannot_start_are_named_refusals(server):
    await refused(server, "exec", {"argv": ["echo", "a\x00b"]}, "bad_content")
    await refused(server, "exec", {"cmd": "echo \udcff\ud800"}, "bad_content")
    message = await refused(server, "exec", {"cmd": "echo " + "x" * 200_000}, "too_large")
    assert "write it to a file" in message
    await refused(server, "exec", {"cmd": "true", "max_output": "lots"}, "bad_request")


async def test_stdin_a_command_never_reads_ties_nothing_up(server):
    started = time.monotonic()
    data = base64.b64encode(b"x" * (4 * 2**20)).decode()  # far more than a pipe holds
    calls = [server.request("exec", {"cmd": "sleep 30 & exit 0", "stdin_b64": data, "timeout": 5}, timeout=20) for _ in range(12)]  # fmt: skip
    results = await asyncio.gather(*calls)
    assert all(r["exit_code"] == 0 for r in results) and time.monotonic() - started < 10
    assert (await server.request("exec", {"cmd": "echo still"}, timeout=5))["stdout"] == "still\n"
    subprocess.run(["pkill", "-f", "^sleep 30$"], capture_output=True)


async def test_output_kept_per_stream_is_capped_whatever_the_caller_asks(server):
    result = await server.request("exec", {"cmd": f"head -c {protocol.OUTPUT_LIMIT + 2**20} /dev/zero", "max_output": 10**12}, timeout=30)  # fmt: skip
    assert result["stdout_truncated"] and len(result["stdout"]) < protocol.OUTPUT_LIMIT + 200


async def test_a_listing_over_the_limit_is_refused(server):
    many = server.workdir / "many"
    many.mkdir()
    for n in range(files.LIST_LIMIT + 1):
        (many / str(n)).touch()
    await refused(server, "list_dir", {"path": "many"}, "too_large")
    shutil.rmtree(many)


async def test_names_that_are_not_utf8_travel_and_round_trip(server):
    (server.workdir / os.fsdecode(b"x\xff")).write_bytes(b"data")
    [entry] = await server.request("list_dir", {"path": "."}, timeout=5)
    assert entry["name"] == "x\udcff"
    got = await server.request("read_file", {"path": entry["name"]}, timeout=5)
    assert base64.b64decode(got["data_b64"]) == b"data"


def test_every_errno_of_a_file_operation_becomes_a_named_refusal():
    for code in (1, 13, 17, 20, 21, 28, 30, 36, 40, 6, 19, 27, 39, 122, 5, 24):
        exc = files.refusal(OSError(code, os.strerror(code)), "p", "write", ["/workspace"])
        assert isinstance(exc, files.Refused) and exc.reason in protocol.REFUSALS, (code, exc)
    assert isinstance(files.refusal(FileNotFoundError(2, "x"), "p", "read"), FileNotFoundError)
    assert files.refusal(OSError(30, "x"), "p", "write", ["/tmp", "/workspace"]).args[0].endswith("/tmp, /workspace")


def test_cgroup_counters_are_read_from_v1_and_v2_layouts(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    for name, text in {"pids.current": "510\n", "pids.max": "512\n", "memory.current": "1000\n", "memory.max": "max\n",
                       "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n"}.items():  # fmt: skip
        (v2 / name).write_text(text)
    use = cgroup.usage(str(v2))
    assert (use.pids, use.pids_max, use.memory, use.memory_max, use.oom_kills) == (510, 512, 1000, None, 2)
    assert use.pids_exhausted
    v1 = tmp_path / "v1"
    (v1 / "pids").mkdir(parents=True)
    (v1 / "memory").mkdir()
    (v1 / "pids" / "pids.current").write_text("3\n")
    (v1 / "pids" / "pids.max").write_text("max\n")
    (v1 / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (v1 / "memory" / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 4\n")
    use = cgroup.usage(str(v1))
    assert (use.pids, use.pids_max, use.memory_max, use.oom_kills) == (3, None, None, 4)
    assert not use.pids_exhausted


def test_workers_exist_before_work_arrives_and_never_hold_up_an_exit():
    before = len(os.listdir(f"/proc/{os.getpid()}/task"))
    Workers(3, "test-workers")
    assert len(os.listdir(f"/proc/{os.getpid()}/task")) == before + 3

    async def stuck_then_free() -> str:
        workers = Workers(1, "test-stuck")
        blocked = asyncio.ensure_future(workers.run(time.sleep, 0.3))
        blocked.cancel()  # the caller stops waiting; the thread finishes its call and serves on
        return await workers.run(lambda: "served")

    assert asyncio.run(stuck_then_free()) == "served"


@pytest.fixture(scope="module")
def init_binary(tmp_path_factory) -> Path:
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        pytest.skip("no C compiler to build boxgym-init with")
    binary = tmp_path_factory.mktemp("init") / "boxgym-init"
    subprocess.run([compiler, "-O2", "-Wall", "-o", str(binary), str(TOOLSERVER / "init.c")], check=True)
    return binary


def _note(path: Path) -> dict[str, str]:
    return dict(part.split("=", 1) for part in path.read_text().split())


def test_init_ends_a_wedged_child_at_its_ttl_and_leaves_a_note(init_binary, tmp_path):
    note = tmp_path / "exit"
    started = time.monotonic()
    done = subprocess.run([init_binary, "--ttl", "0.5", "--note", note, "--", "sleep", "30"], timeout=10)
    assert done.returncode == 124 and time.monotonic() - started < 3
    assert _note(note)["reason"] == "ttl" and _note(note)["server"] == "running"


def test_init_reports_how_its_child_ended(init_binary, tmp_path):
    note = tmp_path / "exit"
    done = subprocess.run([init_binary, "--ttl", "30", "--note", note, "--", "sh", "-c", "kill -9 $$"], timeout=10)
    assert done.returncode == 137
    assert _note(note) == {"reason": "server-exited", "server": "signal:9", "oom_kills": "0",
                           "memory_limit_reached": _note(note)["memory_limit_reached"], "pids_max_hits": "0"}  # fmt: skip
    done = subprocess.run([init_binary, "--note", note, "--", "sh", "-c", "exit 3"], timeout=10)
    assert done.returncode == 3 and _note(note)["server"] == "exit:3"


def test_init_passes_a_stop_on_and_kills_a_child_that_ignores_it(init_binary, tmp_path):
    note = tmp_path / "exit"
    proc = subprocess.Popen([init_binary, "--ttl", "30", "--note", note, "--", "sh", "-c", "trap '' TERM; sleep 30 & wait"])
    time.sleep(0.3)
    started = time.monotonic()
    proc.terminate()
    assert proc.wait(10) == 143 and 1.5 < time.monotonic() - started < 5  # its 2 s of grace, then the kill
    assert _note(note)["reason"] == "stopped"
