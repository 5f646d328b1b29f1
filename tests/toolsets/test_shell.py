"""The shell/file toolset against the in-process fake sandbox."""

from __future__ import annotations

import pytest

from boxgym.errors import SandboxBroken
from boxgym.sandboxes import FakeSandbox
from boxgym.toolsets import ShellToolset, ToolCall


@pytest.fixture
async def sandbox():
    async with FakeSandbox() as sb:
        yield sb


def call(name, **arguments):
    return ToolCall("id1", name, arguments)


async def test_schemas_are_openai_functions_and_fresh_each_time():
    tools = ShellToolset()
    schemas = tools.schemas()
    assert [s["function"]["name"] for s in schemas] == [
        "bash",
        "read_file",
        "write_file",
        "str_replace",
        "list_dir",
        "submit",
    ]
    assert all(s["type"] == "function" and s["function"]["parameters"]["type"] == "object" for s in schemas)
    schemas[0]["function"]["name"] = "changed"
    assert tools.schemas()[0]["function"]["name"] == "bash"


async def test_bash_reports_exit_code_and_both_streams(sandbox):
    result = await ShellToolset().run(call("bash", command="echo out; echo err >&2; exit 3"), sandbox)
    assert result.ok and not result.submitted
    assert result.content == "exit code: 3\n[stdout]\nout\n\n[stderr]\nerr\n"
    assert result.to_message() == {"role": "tool", "tool_call_id": "id1", "content": result.content}


async def test_bash_timeout_kills_and_says_so(sandbox):
    result = await ShellToolset().run(call("bash", command="sleep 30", timeout=1), sandbox)
    assert "timed out after 1s" in result.content
    assert result.duration_s < 10


async def test_bash_timeout_is_capped_by_the_episode_budget(sandbox):
    result = await ShellToolset().run(call("bash", command="sleep 30", timeout=60), sandbox, timeout=1.0)
    assert "timed out after 1s" in result.content


async def test_write_read_replace_list(sandbox):
    tools = ShellToolset()
    assert (await tools.run(call("write_file", path="pkg/a.py", content="x = 1\ny = 2\nz = 3\n"), sandbox)).ok
    assert (await tools.run(call("read_file", path="pkg/a.py"), sandbox)).content == "x = 1\ny = 2\nz = 3\n"
    part = await tools.run(call("read_file", path="pkg/a.py", start_line=2, end_line=2), sandbox)
    assert part.content == "y = 2\n"
    assert (await tools.run(call("str_replace", path="pkg/a.py", old_str="y = 2", new_str="y = 20"), sandbox)).ok
    assert (await sandbox.read_file("pkg/a.py")).decode() == "x = 1\ny = 20\nz = 3\n"
    listing = await tools.run(call("list_dir"), sandbox)
    assert listing.content == "pkg/"


@pytest.mark.parametrize(("old", "count"), [pytest.param("nothing", 0, id="absent"), pytest.param("a", 2, id="twice")])
async def test_str_replace_needs_exactly_one_match(sandbox, old, count):
    await sandbox.write_file("f.txt", "a a")
    result = await ShellToolset().run(call("str_replace", path="f.txt", old_str=old, new_str="b"), sandbox)
    assert not result.ok and f"occurs {count} times" in result.content
    assert (await sandbox.read_file("f.txt")) == b"a a"


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        pytest.param(call("rm_rf"), "unknown tool 'rm_rf'", id="unknown-tool"),
        pytest.param(call("bash"), "missing required argument 'command'", id="missing"),
        pytest.param(call("bash", command=["ls"]), "must be a string", id="wrong-type"),
        pytest.param(call("bash", command="ls", timeout="soon"), "must be an integer", id="bad-int"),
        pytest.param(call("bash", command="ls", shell="zsh"), "unexpected argument(s) shell", id="extra"),
        pytest.param(call("read_file", path="missing.txt"), "no such file or directory", id="no-file"),
        pytest.param(call("read_file", path="."), "it is a directory (list it with list_dir)", id="a-directory"),
    ],
)
async def test_agent_mistakes_become_error_results(sandbox, bad, says):
    result = await ShellToolset().run(bad, sandbox)
    assert not result.ok
    assert result.content.startswith("error:") and says in result.content


async def test_text_form_integer_arguments_are_accepted(sandbox):
    result = await ShellToolset().run(call("bash", command="echo hi", timeout="5"), sandbox)
    assert result.ok and "hi" in result.content


async def test_output_is_capped_and_marked(sandbox):
    result = await ShellToolset(max_output=1000).run(call("bash", command="seq 1 100000"), sandbox)
    assert len(result.content) < 1300
    assert "output truncated" in result.content or "characters omitted" in result.content


async def test_submit_carries_the_answer(sandbox):
    result = await ShellToolset().run(call("submit", answer="42"), sandbox)
    assert result.submitted and result.submission == "42"
    assert (await ShellToolset().run(call("submit"), sandbox)).submission is None


async def test_infrastructure_errors_propagate():
    class Dead(FakeSandbox):
        async def exec(self, *args, **kwargs):
            raise SandboxBroken("container died")

    async with Dead() as sb:
        with pytest.raises(SandboxBroken):
            await ShellToolset().run(call("bash", command="ls"), sb)
