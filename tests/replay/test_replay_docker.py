"""``boxgym replay`` on a real demo run: Docker sandboxes, the real suites and judges, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from boxgym.trajectories import RunDir

from .cli import boxgym, demo, resume_wrong

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo(tmp_path_factory.mktemp("replay") / "demo")


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_rescore_judges_sql_in_a_checker_and_re_executes_the_rest(demo_run: Path, tmp_path: Path) -> None:
    done = boxgym("replay", "rescore", str(demo_run), "--out", str(tmp_path / "r.jsonl"), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = last_json(done.stdout)
    assert summary["by_how"] == {"record": 0, "checker": 1, "re-executed": 2, "skipped": 0, "failed": 0}
    assert summary["changed"] == 0 and summary["new_mean"] == 1.0
    assert "sql/d0/s0" in done.stdout and "checker" in done.stdout


def test_redrive_reproduces_the_demo_step_by_step(demo_run: Path, tmp_path: Path) -> None:
    done = boxgym("replay", "redrive", str(demo_run), "--out", str(tmp_path / "again"), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = last_json(done.stdout)
    assert summary["replayed"] == 3 and summary["identical"] == 3 and summary["reward_reproduced"] == 3
    replays = list(RunDir(tmp_path / "again").episodes())
    originals = {e.episode_id: e for e in RunDir(demo_run).episodes()}
    for replay in replays:
        original = originals[replay.branch_of["episode_id"]]
        assert [s.action for s in replay.steps] == [s.action for s in original.steps]


def test_resume_from_step_one_with_another_model(demo_run: Path, tmp_path: Path) -> None:
    sql = next(e for e in RunDir(demo_run).episodes() if e.env_id == "boxgym/SQL-v0")
    out = tmp_path / "resumed"
    done = resume_wrong(demo_run, sql.episode_id, out, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    [episode] = RunDir(out).episodes()
    assert episode.branch_of["shared_steps"] == 1 and episode.branch_of["episode_id"] == sql.episode_id
    assert episode.steps[0].action == sql.steps[0].action and episode.steps[0].call_id is None
    assert episode.reward == 0.0 and sql.reward == 1.0
    [call] = RunDir(out).calls(episode.episode_id)  # the live call, recorded with the engine's tokens
    assert call.completion_token_ids and episode.steps[1].call_id in (call.call_id, call.response["id"])
