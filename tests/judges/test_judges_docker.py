"""The judges on real Docker: every cheat scores 0, the real solution 1, no agent process survives."""

from __future__ import annotations

import os

import pytest
import pytest_asyncio

from boxgym.judges import FinishedEpisode, FileState, FileStateJudge, PathCheck, UnitTestJudge, kill_agent_processes
from boxgym.sandboxes import AGENT_UID, SandboxSpec

from .cheats import CHEATS, SOLUTION, TASK
from .user_tasks import DEEP_ERROR, HARNESS_MARKS, STAR_RIGHT, STAR_TASK, STAR_WRONG

pytestmark = [pytest.mark.docker, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool():
    from boxgym.sandboxes import SandboxPool

    async with SandboxPool(SandboxSpec(image=os.environ.get("BOXGYM_TEST_IMAGE", "slim")), size=1) as pool:
        yield pool


@pytest_asyncio.fixture(loop_scope="module")
async def sandbox(pool):
    sb = await pool.acquire()
    try:
        yield sb
    finally:
        await sb.aclose()


async def agent_processes(sandbox) -> list[str]:
    result = await sandbox.exec(["pgrep", "-a", "-u", str(AGENT_UID)], user="root")
    return result.stdout.splitlines()


async def test_the_real_solution_scores_one(sandbox):
    await sandbox.write_file("solution.py", SOLUTION)
    score = await UnitTestJudge().score(FinishedEpisode(TASK, sandbox, submitted=True))
    assert score.reward == 1.0 and score.passed, score


@pytest.mark.parametrize("cheat", [pytest.param(c, id=c.name) for c in CHEATS])
async def test_cheats_score_zero(sandbox, cheat):
    for path, content in cheat.files.items():
        await sandbox.write_file(path, content)
    if cheat.command:
        await sandbox.exec(cheat.command, timeout=10)
        if "daemon.sh" in cheat.files:
            assert await agent_processes(sandbox), "the cheat's daemon did not start"
    score = await UnitTestJudge().score(FinishedEpisode(TASK, sandbox, submitted=True))
    assert score.reward == 0.0 and not score.passed, score
    assert await agent_processes(sandbox) == []


async def test_a_daemon_cannot_spoil_the_real_solution(sandbox):
    daemon = next(c for c in CHEATS if c.command)
    await sandbox.write_file("daemon.sh", daemon.files["daemon.sh"])
    await sandbox.write_file("solution.py", SOLUTION)
    await sandbox.exec(daemon.command, timeout=10)
    score = await UnitTestJudge().score(FinishedEpisode(TASK, sandbox, submitted=True))
    assert score.passed, score


async def test_a_fork_bomb_is_killed_before_judging(sandbox):
    await sandbox.exec("(setsid bash -c 'while true; do sleep 5 & sleep 0.01; done' &) ; sleep 0.3", timeout=10)
    assert await agent_processes(sandbox)
    await kill_agent_processes(sandbox)
    assert await agent_processes(sandbox) == []


async def test_state_judge_does_not_follow_planted_symlinks(sandbox):
    await sandbox.exec("ln -s /etc/hostname answer.txt")
    state = FileState((PathCheck("answer.txt", content=(await sandbox.read_file("/etc/hostname")).decode()),))
    task = type(TASK)(id="t", prompt="", oracle=state)
    score = await FileStateJudge().score(FinishedEpisode(task, sandbox))
    assert not score.passed and "symlink" in score.checks[0].detail


@pytest.mark.parametrize(("solution", "reward"), [pytest.param(STAR_RIGHT, 1.0, id="right"), pytest.param(STAR_WRONG, 0.0, id="wrong")])
async def test_star_import_in_hidden_tests(sandbox, solution, reward):
    await sandbox.write_file("solution.py", solution)
    score = await UnitTestJudge().score(FinishedEpisode(STAR_TASK, sandbox, submitted=True))
    assert (score.reward, score.passed, len(score.checks)) == (reward, reward == 1.0, 2), score


async def test_failure_details_show_the_tests_and_the_solution_only(sandbox):
    await sandbox.write_file("solution.py", DEEP_ERROR)
    score = await UnitTestJudge().score(FinishedEpisode(STAR_TASK, sandbox, submitted=True))
    assert score.reward == 0.0
    for check in score.checks:
        assert not [mark for mark in HARNESS_MARKS if mark in check.detail], check.detail
        frames = [line.strip() for line in check.detail.splitlines() if line.startswith("  File")]
        assert frames[1:] == ['File "/workspace/solution.py", line 6, in add', 'File "/workspace/solution.py", line 2, in helper']
        assert frames[0].startswith('File "<hidden tests>"'), check.detail
        assert check.detail.splitlines()[-1] in ("KeyError: '2'", "KeyError: '-2'"), check.detail
