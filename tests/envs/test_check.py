"""The task-set check on the fake sandbox: what passes, what fails and why, and what is not checked."""

from __future__ import annotations

import pytest

from boxgym.envs import StaticTaskSet, task_from_json
from boxgym.envs.check import CheckStatus, SolutionRun, TaskCheck, check_tasks
from boxgym.envs.examples import CODE_TASKS
from boxgym.errors import EngineUnavailable, Fault
from boxgym.judges import Verdict
from boxgym.sandboxes import FakeProvider

from .check_cases import BROKEN, GOOD, writes


class CountingProvider(FakeProvider):
    """Fakes, remembering the most it had out at once."""

    most = 0

    async def acquire(self):
        sandbox = await super().acquire()
        self.most = max(self.most, sum(not sb.closed for sb in self.handed_out))
        return sandbox


class DownProvider:
    async def acquire(self):
        raise EngineUnavailable("no engine answers at /var/run/docker.sock")

    async def aclose(self):
        pass


async def test_the_example_file_passes():
    checks = await check_tasks(StaticTaskSet.from_jsonl(CODE_TASKS), provider=FakeProvider())
    assert [(c.task_id, c.status) for c in checks] == [("fizzbuzz", CheckStatus.PASSED), ("word-count", CheckStatus.PASSED)]
    for check in checks:
        assert [(run.solution, run.reward, run.end_reason) for run in check.runs] == [
            ("reference", 1.0, "submitted"),
            ("empty", 0.0, "submitted"),
        ]


async def test_each_broken_task_is_reported_with_its_verdict_and_the_rest_pass():
    heard = []
    tasks = StaticTaskSet([task_from_json(row) for row, _, _ in BROKEN])
    checks = await check_tasks(tasks, provider=CountingProvider(), concurrency=2, on_checked=heard.append)
    assert [(c.task_id, c.status.value, list(c.problems)) for c in checks] == [(r["id"], s, p) for r, s, p in BROKEN]
    assert sorted(c.task_id for c in heard) == sorted(c.task_id for c in checks)
    wrong = checks[1].reference
    assert wrong is not None and wrong.wrong and wrong.verdict is not None
    assert wrong.verdict.messages == ("0/2 tests passed",)
    assert "AssertionError: 6 != 5" in wrong.verdict.checks[0].detail
    assert checks[2].empty.wrong and checks[2].empty.verdict.messages == ("1/1 tests passed",)


async def test_at_most_concurrency_episodes_run_at_once():
    provider = CountingProvider()
    tasks = StaticTaskSet([task_from_json({**GOOD, "id": f"t{i}"}) for i in range(6)])
    checks = await check_tasks(tasks, provider=provider, concurrency=3)
    assert all(c.status is CheckStatus.PASSED for c in checks)
    assert len(provider.handed_out) == 12 and provider.most == 3


async def test_a_reference_longer_than_the_turn_budget_or_without_submit_still_runs_to_its_end():
    steps = [{"name": "bash", "arguments": {"command": "true"}}] * 40
    long = task_from_json({**GOOD, "id": "long", "reference": steps + writes("def add(a, b):\n    return a + b\n")})
    unsubmitted = task_from_json({**GOOD, "id": "unsubmitted", "reference": writes("def add(a, b):\n    return a + b\n")[:1]})
    checks = await check_tasks(StaticTaskSet([long, unsubmitted]), provider=FakeProvider())
    assert [c.status for c in checks] == [CheckStatus.PASSED, CheckStatus.PASSED], [c.to_json() for c in checks]


async def test_infrastructure_failures_leave_tasks_not_checked_never_failed():
    checks = await check_tasks(StaticTaskSet([task_from_json(GOOD)]), provider=DownProvider())
    (check,) = checks
    assert check.status is CheckStatus.NOT_CHECKED and check.problems == ()
    for run in check.runs:
        assert run.verdict is None and run.fault is Fault.INFRA and "EngineUnavailable" in run.error


@pytest.mark.parametrize(
    ("empty_reward", "status"),
    [pytest.param(0.0, CheckStatus.NOT_CHECKED, id="nothing-wrong-seen"), pytest.param(1.0, CheckStatus.FAILED, id="empty-passes")],
)
def test_a_problem_found_by_one_run_counts_even_when_the_other_broke(empty_reward, status):
    broke = SolutionRun("reference", error="SandboxBroken: the container died", fault=Fault.INFRA)
    check = TaskCheck("t", broke, SolutionRun("empty", verdict=Verdict(empty_reward), end_reason="submitted"))
    assert check.status is status
    assert check.to_json()["runs"][0] == {
        "solution": "reference", "reward": None, "verdict": None, "error": "SandboxBroken: the container died",
        "fault": "infra", "end_reason": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("env_id", "row"),
    [
        pytest.param(
            "boxgym/SQL-v0",
            {"id": "sql", "prompt": "How many rows?", "sql_setup": "CREATE TABLE t (x); INSERT INTO t VALUES (1), (2);",
             "sql_gold": "SELECT COUNT(*) FROM t", "reference": [{"name": "submit", "arguments": {"answer": "SELECT COUNT(x) FROM t"}}]},
            id="sql",
        ),
        pytest.param(
            "boxgym/Shell-v0",
            {"id": "q", "prompt": "How many lines has a.txt?", "files": {"a.txt": "1\n2\n3\n"}, "answer": "3",
             "answer_mode": "numeric", "reference": [{"name": "bash", "arguments": {"command": "wc -l a.txt"}},
                                                     {"name": "submit", "arguments": {"answer": "3"}}]},
            id="answer",
        ),
    ],
)  # fmt: skip
async def test_sql_and_answer_task_files_check_in_their_envs(env_id, row):
    (check,) = await check_tasks(StaticTaskSet([task_from_json(row)]), provider=FakeProvider(), env_id=env_id)
    assert check.status is CheckStatus.PASSED, check.to_json()
