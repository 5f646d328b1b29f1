"""A recorded run to replay, made for real: boxgym's Code env on a task file of three kinds
(an answer, a SQL query, a function with hidden tests), fake sandboxes, the rollout manager."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from boxgym.envs import EnvFactory
from boxgym.rollout import Completion, RolloutManager, TaskRef
from boxgym.sandboxes import FakeProvider

ENV = "boxgym/Code-v0"
TESTS = "import unittest\nfrom solution import add\nclass T(unittest.TestCase):\n    def test(self):\n        self.assertEqual(add(2, 3), {want})\n"  # fmt: skip


def tasks(answer: str = "42", gold: str = "SELECT COUNT(*) FROM t", want: int = 5) -> list[dict[str, Any]]:
    """The task file's lines; change an oracle to make a judge change."""
    return [
        {"id": "answer", "prompt": "What is 6 * 7?", "answer": answer, "answer_mode": "numeric"},
        {"id": "sql", "prompt": "How many rows has t?", "sql_setup": "CREATE TABLE t(x); INSERT INTO t VALUES (1),(2),(3);",
         "sql_gold": gold},  # fmt: skip
        {"id": "code", "prompt": "Write add(a, b) in solution.py.", "tests": TESTS.format(want=want)},
    ]


def write_tasks(path: Path, **oracles: Any) -> Path:
    path.write_text("".join(json.dumps(t) + "\n" for t in tasks(**oracles)))
    return path


def call(name: str, call_id: str, **arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


SCRIPTS: dict[str, list[dict[str, Any]]] = {
    "answer": [call("submit", "a0", answer="42")],
    "sql": [call("bash", "s0", command="echo rows; date +%H:%M:%S; echo pid=$$"), call("submit", "s1", answer="SELECT COUNT(*) FROM t")],
    "code": [call("write_file", "c0", path="solution.py", content="def add(a, b):\n    return a + b\n"),
             call("bash", "c1", command="python3 -c 'import solution; print(solution.add(2, 3))'"), call("submit", "c2")],
}  # fmt: skip


class ScriptedAgent:
    """Answers each task's turn n with its script's call n."""

    async def __call__(self, episode: Any) -> Completion:
        script = SCRIPTS[episode.task.task_id]
        return Completion({"role": "assistant", "content": f"turn {episode.turn}", "tool_calls": [script[episode.turn]]})


async def record(run_dir: Path, task_file: Path) -> Path:
    provider = FakeProvider()
    factory = EnvFactory(tasks=str(task_file), provider=provider)
    try:
        async with RolloutManager(factory, ScriptedAgent(), run_dir=run_dir, progress=False, name="rec") as manager:
            results = await manager.collect([TaskRef(t, ENV) for t in ("answer", "sql", "code")])
    finally:
        await provider.aclose()
    assert [r.reward for r in results] == [1.0, 1.0, 1.0], [(r.reason, r.error) for r in results]
    return run_dir
