"""The shell/file tools attacked as an agent would: every result is an observation, none raises."""

from __future__ import annotations

import time

import pytest

from boxgym.toolsets import ShellToolset

from .conftest import call

pytestmark = pytest.mark.docker


@pytest.mark.parametrize(
    ("tool", "args", "says"),
    [
        pytest.param("read_file", {"path": ""}, "non-empty", id="empty-path"),
        pytest.param("read_file", {"path": "a\x00b"}, "NUL", id="nul-path"),
        pytest.param("write_file", {"path": "x\ud800", "content": "y"}, "not valid Unicode", id="surrogate-path"),
        pytest.param("write_file", {"path": "ok.txt", "content": "y\udfff"}, "not valid Unicode", id="surrogate-content"),
        pytest.param("read_file", {"path": "/dev/zero"}, "character device", id="dev-zero"),
        pytest.param("str_replace", {"path": "/dev/zero", "old_str": "a", "new_str": "b"}, "character device", id="str-replace-dev-zero"),
        pytest.param("read_file", {"path": "/proc/1/mem"}, "permission denied", id="init-memory"),
        pytest.param("read_file", {"path": "/etc/shadow"}, "permission denied", id="shadow"),
        pytest.param("write_file", {"path": "/usr/local/bin/x", "content": "y"}, "read-only", id="read-only"),
        pytest.param("write_file", {"path": "../../etc/x", "content": "y"}, "read-only", id="dot-dot"),
        pytest.param("write_file", {"path": "n" * 5000, "content": "y"}, "name too long", id="long-name"),
        pytest.param("list_dir", {"path": "/root"}, "permission denied", id="root-home"),
        pytest.param("read_file", {"path": "/workspace"}, "directory", id="a-directory"),
        pytest.param("write_file", {"path": "big", "content": "x" * (17 * 2**20)}, "more than", id="huge-write"),
        pytest.param("bash", {"command": "echo " + "x" * 200_000}, "128 KiB", id="command-over-arg-max"),
        pytest.param("bash", {"command": "x" * (70 * 2**20)}, "too large", id="command-over-frame"),
        pytest.param("bash", {"command": "echo a\x00b"}, "cannot start", id="nul-command"),
    ],
)
async def test_odd_and_huge_requests_are_observations(sb, tools, tool, args, says):
    result = await tools.run(call(tool, **args), sb)
    assert not result.ok and result.content.startswith("error:"), result.content[:300]
    assert says in result.content, result.content[:300]
    assert len(result.content) <= tools.max_output + 200
    assert (await sb.health()).ok  # and the server keeps serving


async def test_a_planted_fifo_is_an_observation_for_every_file_tool(sb, tools):
    await sb.exec("mkfifo trap")
    for tool, args in [("read_file", {}), ("write_file", {"content": "x"}), ("str_replace", {"old_str": "a", "new_str": "b"})]:
        started = time.monotonic()
        result = await tools.run(call(tool, path="trap", **args), sb)
        assert not result.ok and "FIFO" in result.content and time.monotonic() - started < 2


async def test_a_call_that_never_returns_ends_at_its_timeout(sb, tools):
    started = time.monotonic()
    result = await tools.run(call("bash", command="sleep infinity", timeout=10**12), sb, timeout=2)
    assert result.ok and "timed out after 2s" in result.content and time.monotonic() - started < 8
    result = await tools.run(call("bash", command="(sleep infinity &) ; exec >&- 2>&-; sleep infinity", timeout=2), sb)
    assert "timed out" in result.content
    assert "sleep" not in (await sb.exec("ps -eo args --no-headers")).stdout


async def test_a_large_file_is_shown_in_part_and_says_how_to_see_the_rest(sb, tools):
    await sb.exec("seq 1 200000 > lines.txt; head -c 12M /dev/zero > zeros")
    result = await tools.run(call("read_file", path="lines.txt", start_line=2, end_line=3), sb)
    assert result.ok and result.content.startswith("2\n3\n") and "sed -n" in result.content
    result = await tools.run(call("str_replace", path="zeros", old_str="a", new_str="b"), sb)
    assert not result.ok and "read it in parts" in result.content


async def test_binary_and_non_utf8_names_are_readable_observations(sb, tools):
    await sb.exec("printf '\\xff\\xfe' > bin.dat; touch $'name\\xff'")
    result = await tools.run(call("read_file", path="bin.dat"), sb)
    assert not result.ok and "not UTF-8" in result.content
    listing = await tools.run(call("list_dir"), sb)
    assert listing.ok and "name\\udcff" in listing.content
    listing.content.encode("utf-8")  # valid text for the model, the trajectory and the gateway


async def test_the_toolsets_own_budget_caps_what_a_tool_may_take(sb):
    tools = ShellToolset(max_output=2000)
    result = await tools.run(call("bash", command="yes boxgym | head -c 5000000"), sb)
    assert result.ok and len(result.content) < 2300 and "truncated" in result.content
