"""``boxgym tasks check FILE``: the example file passes on Docker, a broken file is reported, bad input is refused."""

from __future__ import annotations

import io
import json
import os

import pytest

from boxgym.cli import main
from boxgym.cli.tasks import ProgressBar
from boxgym.envs.check import SolutionRun, TaskCheck
from boxgym.envs.examples import CODE_TASKS
from boxgym.judges import Verdict

from ..envs.check_cases import BROKEN, GOOD, TESTS_FAIL, write_jsonl

IMAGE = os.environ.get("BOXGYM_TEST_IMAGE", "slim")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        pytest.param(["--env", "boxgym/Nope-v0"], "Nope", id="unknown-env"),
        pytest.param(["--env", "CartPole-v1"], "CartPole-v1 cannot serve a task file: TypeError", id="not-a-boxgym-env"),
        pytest.param(["--concurrency", "0"], "--concurrency must be at least 1", id="no-concurrency"),
    ],
)
def test_bad_options_are_refused(capsys, argv, says):
    assert main(["tasks", "check", str(CODE_TASKS), *argv]) == 2
    assert says in capsys.readouterr().err


def test_a_missing_or_malformed_file_is_refused_with_its_line(capsys, tmp_path):
    assert main(["tasks", "check", str(tmp_path / "nothing.jsonl")]) == 2
    assert "No such file" in capsys.readouterr().err
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD, {**GOOD, "id": "typo", "refrence": []}])
    assert main(["tasks", "check", str(path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"boxgym tasks check: {path}:2: task typo: unknown field(s) refrence; known: answer, answer_mode, difficulty, "
        "files, id, metadata, module, prompt, reference, sql_gold, sql_ordered, sql_setup, tests"
    )


def test_the_progress_bar_counts_tasks_and_failures():
    stream = io.StringIO()
    bar = ProgressBar(4, stream, enabled=True)
    passed = TaskCheck("a", SolutionRun("reference", Verdict(1.0)), SolutionRun("empty", Verdict(0.0)))
    failed = TaskCheck("b", SolutionRun("reference", Verdict(0.0)), SolutionRun("empty", Verdict(0.0)))
    for check in (passed, failed):
        bar.checked(check)
    bar.stop()
    assert stream.getvalue().split("\r")[-1].startswith("[" + "#" * 15 + "." * 15 + "] 2/4 tasks | 1 failed | 0 not checked |")
    quiet = io.StringIO()
    ProgressBar(4, quiet).checked(passed)  # not a terminal: draws nothing
    assert quiet.getvalue() == ""


@pytest.mark.docker
def test_the_example_file_passes_on_docker(capsys):
    assert main(["tasks", "check", str(CODE_TASKS), "--image", IMAGE]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("2 passed, 0 failed, 0 not checked (infrastructure), of 2 tasks in ")


@pytest.mark.docker
def test_a_broken_file_is_reported_on_docker(capsys, tmp_path):
    path = write_jsonl(tmp_path / "broken.jsonl", [row for row, _, _ in BROKEN])
    assert main(["tasks", "check", str(path), "--image", IMAGE, "--concurrency", "3"]) == 1
    out = capsys.readouterr().out
    assert "FAILED       wrong-reference: the reference solution scored 0 (want 1)\n    reference: 0/2 tests passed\n" in out
    assert 'File "<hidden tests>", line 7, in test_add\n        AssertionError: 6 != 5' in out
    assert "FAILED       passes-empty: the empty solution scored 1 (want 0)\n    empty: 1/1 tests passed\n" in out
    assert "FAILED       no-reference: the task has no reference solution\n" in out
    assert f"FAILED       broken-tests: the reference and empty runs failed: {TESTS_FAIL}\n" in out
    assert out.count('\n      File "<hidden tests>", line 2, in <module>\n') == 1
    assert "good" not in out and out.splitlines()[-1].startswith("1 passed, 4 failed, 0 not checked")

    assert main(["tasks", "check", str(path), "--image", IMAGE, "--json"]) == 1
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (report["passed"], report["failed"], report["not_checked"]) == (1, 4, 0)
    assert [(c["task_id"], c["status"], c["problems"]) for c in report["checks"]] == [(r["id"], s, p) for r, s, p in BROKEN]


@pytest.mark.docker
def test_an_image_that_is_not_built_is_an_infrastructure_failure(capsys):
    assert main(["tasks", "check", str(CODE_TASKS), "--image", "boxgym/slim:not-built-anywhere"]) == 3
    assert "infrastructure failure: ImageNotFound" in capsys.readouterr().err


def test_infrastructure_failures_are_reported_as_not_checked_with_their_own_exit_status():
    from boxgym.cli.tasks import _exit_status, _report
    from boxgym.errors import Fault

    broke = SolutionRun("reference", error="SandboxBroken: the container died (exit 137)", fault=Fault.INFRA)
    unchecked = TaskCheck("t", broke, SolutionRun("empty", Verdict(0.0)))
    passed = TaskCheck("u", SolutionRun("reference", Verdict(1.0)), SolutionRun("empty", Verdict(0.0)))
    failed = TaskCheck("v", SolutionRun("reference", Verdict(0.5)), SolutionRun("empty", Verdict(0.0)))
    out = io.StringIO()
    _report([unchecked, passed], 1.0, out)
    assert out.getvalue().splitlines() == [
        "NOT CHECKED  t: infrastructure failure in the reference run: SandboxBroken: the container died (exit 137)",
        "1 passed, 0 failed, 1 not checked (infrastructure), of 2 tasks in 1.0s",
    ]
    assert [_exit_status(c) for c in ([passed], [passed, unchecked], [unchecked, failed])] == [0, 3, 1]
