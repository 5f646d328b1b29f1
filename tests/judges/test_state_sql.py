"""File-state and SQL judges on the fake sandbox."""

from __future__ import annotations

import types

import pytest

from boxgym.judges import FinishedEpisode, FileState, FileStateJudge, GitCheck, PathCheck, SqlJudge, SqlOracle
from boxgym.sandboxes import FakeSandbox


@pytest.fixture
async def sandbox():
    async with FakeSandbox() as sb:
        yield sb


def task(oracle):
    return types.SimpleNamespace(id="t", oracle=oracle)


STATE = FileState(
    (
        PathCheck("a/b.txt", content="hello\n"),
        PathCheck("run.sh", mode=0o755, contains="echo"),
        PathCheck("gone.txt", "absent"),
        PathCheck("dir", "dir"),
    )
)


async def test_state_passes_when_every_check_passes(sandbox):
    await sandbox.write_file("a/b.txt", "hello\n")
    await sandbox.write_file("run.sh", "echo hi\n", mode=0o755)
    await sandbox.exec("mkdir dir")
    score = await FileStateJudge().score(FinishedEpisode(task(STATE), sandbox))
    assert score.passed and score.reward == 1.0 and len(score.checks) == 4


async def test_state_fails_on_any_difference_and_says_which(sandbox):
    await sandbox.write_file("a/b.txt", "hello")  # no newline
    await sandbox.write_file("run.sh", "echo hi\n", mode=0o644)
    await sandbox.write_file("gone.txt", "")
    score = await FileStateJudge().score(FinishedEpisode(task(STATE), sandbox))
    assert score.reward == 0.0
    assert [c.passed for c in score.checks] == [False, False, False, False]
    assert "mode is 0o644" in score.checks[1].detail
    partial = await FileStateJudge(partial=True).score(FinishedEpisode(task(STATE), sandbox))
    assert partial.reward == 0.0


async def test_state_reports_symlinks_instead_of_following_them(sandbox):
    await sandbox.write_file("real.txt", "hello\n")
    await sandbox.exec("mkdir a && ln -s ../real.txt a/b.txt")
    score = await FileStateJudge().score(FinishedEpisode(task(FileState((PathCheck("a/b.txt", content="hello\n"),))), sandbox))
    assert not score.passed and "symlink" in score.checks[0].detail


GIT = "git -c user.name=t -c user.email=t@t"


async def test_git_state(sandbox):
    check = GitCheck(
        "repo", branch="main", head_message="second", commits=2, files={"f": "2\n"}, branches=("x",), clean=True
    )
    oracle = FileState(git=(check,))
    await sandbox.exec(
        f"git init -q -b main repo && cd repo && echo 1 > f && git add f && {GIT} commit -qm first "
        f"&& echo 2 > f && {GIT} commit -qam second && git branch x"
    )
    assert (await FileStateJudge().score(FinishedEpisode(task(oracle), sandbox))).passed
    await sandbox.write_file("repo/untracked", "")
    dirty = await FileStateJudge().score(FinishedEpisode(task(oracle), sandbox))
    assert not dirty.passed and [c.name for c in dirty.checks if not c.passed] == ["git repo clean"]


async def test_a_repository_that_configures_filters_is_not_trusted(sandbox):
    await sandbox.exec(
        f"git init -q -b main repo && cd repo && echo 1 > f && git add f && {GIT} commit -qm first "
        "&& git config filter.lie.clean cat && echo 'f filter=lie' > .gitattributes"
    )
    score = await FileStateJudge().score(FinishedEpisode(task(FileState(git=(GitCheck("repo", commits=1),))), sandbox))
    assert not score.passed and "filter.lie.clean" in score.checks[0].detail


async def test_not_a_repository(sandbox):
    await sandbox.exec("mkdir repo")
    score = await FileStateJudge().score(FinishedEpisode(task(FileState(git=(GitCheck("repo"),))), sandbox))
    assert not score.passed


SETUP = "CREATE TABLE t (x INTEGER, y TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (2, 'c');"


@pytest.mark.parametrize(
    ("query", "ordered", "ok"),
    [
        pytest.param("SELECT y FROM t WHERE x = 2", False, True, id="same"),
        pytest.param("SELECT y FROM t WHERE x > 1 ORDER BY y DESC", False, True, id="any-order"),
        pytest.param("SELECT y FROM t WHERE x = 2 ORDER BY y DESC", True, False, id="wrong-order"),
        pytest.param("SELECT y FROM t", False, False, id="too-many"),
        pytest.param("SELECT 'b' UNION ALL SELECT 'c'", False, True, id="constant-right-answer"),
        pytest.param("SELECT y FROM nowhere", False, False, id="error"),
        pytest.param("DELETE FROM t", False, False, id="write"),
        pytest.param("ATTACH DATABASE '/tmp/x.db' AS x", False, False, id="attach"),
        pytest.param("PRAGMA table_info(t)", False, False, id="pragma"),
        pytest.param("SELECT y FROM t WHERE x = 2; DROP TABLE t", False, False, id="two-statements"),
    ],
)
async def test_sql_execution_match(sandbox, query, ordered, ok):
    oracle = SqlOracle(SETUP, "SELECT y FROM t WHERE x = 2 ORDER BY y", ordered=ordered)
    score = await SqlJudge().score(FinishedEpisode(task(oracle), sandbox, submitted=True, submission=query))
    assert score.passed is ok and score.reward == float(ok), score


async def test_sql_numbers_compare_by_value(sandbox):
    oracle = SqlOracle(SETUP, "SELECT AVG(x) FROM t")
    score = await SqlJudge().score(FinishedEpisode(task(oracle), sandbox, submission="SELECT 5.0 / 3"))
    assert score.passed


async def test_sql_runaway_query_is_stopped(sandbox):
    oracle = SqlOracle(SETUP, "SELECT 1", seconds=1.0)
    query = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT COUNT(*) FROM c"
    score = await SqlJudge().score(FinishedEpisode(task(oracle), sandbox, submission=query))
    assert not score.passed and "interrupted" in score.checks[0].detail


async def test_sql_without_a_query_scores_zero(sandbox):
    score = await SqlJudge().score(FinishedEpisode(task(SqlOracle(SETUP, "SELECT 1")), sandbox, submission=None))
    assert score.reward == 0.0 and "no query" in score.messages[0]


async def test_sql_huge_values_fail_the_query_not_the_judge(sandbox):
    oracle = SqlOracle(SETUP, "SELECT 1")
    score = await SqlJudge().score(FinishedEpisode(task(oracle), sandbox, submission="SELECT zeroblob(1000000000)"))
    assert not score.passed and "too big" in score.checks[0].detail


async def test_a_file_where_a_directory_should_be_fails_the_check(sandbox):
    await sandbox.write_file("a", "not a directory")
    score = await FileStateJudge().score(FinishedEpisode(task(FileState((PathCheck("a/b.txt", content="x"),))), sandbox))
    assert not score.passed and "cannot be inspected" in score.checks[0].detail
