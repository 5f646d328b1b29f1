"""docs/blackbox.md's worked example, run as the page has it: its files are cut out of the page's
``python title=FILE`` blocks (several blocks of one file are its parts, in order), then the env
is played in the fake sandbox and, from the page's own recipe, in Docker."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import re
import sys
from pathlib import Path

import gymnasium as gym
import pytest

from boxgym.blackbox import ProgramSpec
from boxgym.sandboxes import FakeProvider
from boxgym.sandboxes.images import build_image, get_recipe, unregister_recipe

DOC = Path(__file__).resolve().parents[2] / "docs" / "blackbox.md"
FILE_BLOCK = re.compile(r"```python title=(\S+)\n(.*?)```", re.DOTALL)
RUN_BLOCK = re.compile(r"### Running it\n.*?```python\n(.*?)```", re.DOTALL)


@pytest.fixture
def hanoi(tmp_path, monkeypatch):
    """The page's files written out, its env module imported (registering its id and recipe)."""
    files: dict[str, str] = {}
    for name, code in FILE_BLOCK.findall(DOC.read_text(encoding="utf-8")):
        files[name] = files.get(name, "") + code + "\n"
    assert set(files) == {"hanoi.py", "hanoi_env.py"}
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    try:
        yield importlib.import_module("hanoi_env"), tmp_path
    finally:
        gym.registry.pop("demo/Hanoi-v0", None)
        unregister_recipe("hanoi")
        sys.modules.pop("hanoi_env", None)


def test_the_example_runs_in_the_fake_sandbox(hanoi):
    module, folder = hanoi
    blackbox = module.Hanoi(ProgramSpec("hanoi", argv=(sys.executable, str(folder / "hanoi.py"))))
    env = gym.make("demo/Hanoi-v0", provider=FakeProvider(), blackbox=blackbox)
    try:
        obs, info = env.reset(seed=1, options={"disks": 3})
        assert info["task_id"] == "hanoi/3" and "A: 3 2 1" in obs[1]["content"]
        obs, reward, terminated, _, _ = env.step("move A B")
        obs, reward, terminated, _, _ = env.step("move A B")  # a larger disk onto a smaller one
        assert obs[0]["content"] == "That move is not allowed." and reward == 0 and not terminated
        call = {"id": "v", "type": "function", "function": {"name": "valid_actions", "arguments": "{}"}}
        obs, *_ = env.step({"role": "assistant", "content": "", "tool_calls": [call]})
        assert obs[0]["content"].splitlines()[1:] == ["move A C", "move B A", "move B C"]
        _, info = env.reset(options={"task_id": "hanoi/4"})
        total = 0.0
        for command in env.unwrapped.reference_actions():
            obs, reward, terminated, truncated, info = env.step(command)
            total += reward
        assert (total, terminated, truncated) == (1.0, True, False) and obs[0]["content"].endswith("Solved!")
        assert env.reset(seed=5)[1]["task_id"] == env.reset(seed=5)[1]["task_id"]
    finally:
        env.close()


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_example_runs_in_docker_from_its_own_recipe(hanoi):
    asyncio.run(build_image(get_recipe("hanoi")))
    code = RUN_BLOCK.search(DOC.read_text(encoding="utf-8")).group(1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "docs/blackbox.md", "exec"), {})
    assert printed.getvalue().split() == ["1.0", "True"]
