"""rescore, redrive and resume on a recorded run of boxgym's env (fake sandboxes, real judges and manager)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from boxgym.errors import ReplayError
from boxgym.replay import DEFAULT_NORMALISERS, ReplayConfig, redrive, rescore, resume
from boxgym.trajectories import RunDir
from boxgym.rollout import Completion
from boxgym.sandboxes import FakeProvider

from .recorded import ENV, call, record, write_tasks


@pytest.fixture
async def run(tmp_path: Path) -> RunDir:
    task_file = write_tasks(tmp_path / "tasks.jsonl")
    return RunDir(await record(tmp_path / "run", task_file))


@pytest.fixture
async def provider() -> Any:
    p = FakeProvider()
    yield p
    await p.aclose()


def config(tmp_path: Path, provider: FakeProvider, task_file: str = "tasks.jsonl") -> ReplayConfig:
    return ReplayConfig(concurrency=4, env_kwargs={"tasks": str(tmp_path / task_file), "provider": provider}, progress=False)


def digest(path: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(path.iterdir()) if p.is_file())).hexdigest()


async def test_rescore_takes_the_cheapest_way_each_judge_allows(run: RunDir, tmp_path: Path, provider: FakeProvider) -> None:
    summary = await rescore(run, out=tmp_path / "rescored.jsonl", config=config(tmp_path, provider))
    rows = {r.task_id: r for r in summary.rows}
    assert {t: r.how for t, r in rows.items()} == {"answer": "record", "sql": "checker", "code": "re-executed"}
    assert all(r.old_reward == r.new_reward == 1.0 and not r.changed for r in rows.values())
    assert rows["code"].verdict["messages"] == ["1/1 tests passed"]
    # the answer was judged with no sandbox at all; the SQL check ran in one clean sandbox; the
    # code episode was re-executed in a fresh one
    assert len(provider.handed_out) == 2
    lines = [json.loads(x) for x in (tmp_path / "rescored.jsonl").read_text().splitlines()]
    assert sorted(line["task_id"] for line in lines) == ["answer", "code", "sql"]
    replayed = next(RunDir(summary.reexecuted_run).episodes())
    assert replayed.branch_of == {"run": str(run.path.resolve()), "episode_id": rows["code"].episode_id,
                                  "shared_steps": 3, "mode": "rescore"}  # fmt: skip


async def test_a_judge_change_shows_in_old_against_new(run: RunDir, tmp_path: Path, provider: FakeProvider) -> None:
    before = digest(run.path)
    write_tasks(tmp_path / "changed.jsonl", answer="41", gold="SELECT COUNT(*) + 1 FROM t", want=6)
    summary = await rescore(run, out=tmp_path / "r.jsonl", config=config(tmp_path, provider, "changed.jsonl"))
    rows = {r.task_id: r for r in summary.rows}
    assert all(r.changed and r.old_reward == 1.0 and r.new_reward == 0.0 for r in rows.values())
    assert summary.to_json()["down"] == 3 and summary.to_json()["new_mean"] == 0.0
    assert "3 rows, gold has 1" not in rows["sql"].verdict["checks"][0]["detail"]  # the agent's query returned 1 row
    assert digest(run.path) == before  # the recorded run is only read


async def test_rescore_skips_what_has_no_verdict_and_says_why(tmp_path: Path, provider: FakeProvider) -> None:
    from boxgym.trajectories import EndReason, EpisodeEnd, EpisodeStart, Outcome, TrajectoryWriter

    with TrajectoryWriter(tmp_path / "run") as w:
        w.write(EpisodeStart("e1", ENV, "answer"))
        w.write(EpisodeEnd("e1", Outcome.INFRA_FAILURE, None, 0, EndReason.INFRA, error="sandbox died"))
        w.write(EpisodeStart("e2", ENV, "answer", parent_episode_id="e1"))
        w.write(EpisodeStart("e3", "boxgym/Nope-v0", "x"))
        w.write(EpisodeEnd("e3", Outcome.TERMINATED, 1.0, 1, EndReason.SUBMITTED))
        w.write(EpisodeStart("e4", ENV, "no-such-task"))
        w.write(EpisodeEnd("e4", Outcome.TERMINATED, 1.0, 1, EndReason.SUBMITTED))
    write_tasks(tmp_path / "tasks.jsonl")
    summary = await rescore(RunDir(tmp_path / "run"), out=tmp_path / "r.jsonl", config=config(tmp_path, provider))
    why = {r.episode_id: r.why for r in summary.rows}
    assert all(r.how == "skipped" for r in summary.rows)
    assert "no verdict was recorded (outcome infra_failure)" in why["e1"]
    assert "sub-agent of e1" in why["e2"]
    assert "cannot" in why["e3"] and "Nope" in why["e3"]
    assert "no task with id 'no-such-task'" in why["e4"]


async def test_redrive_reproduces_every_episode_after_normalisation(run: RunDir, tmp_path: Path, provider: FakeProvider) -> None:
    summary = await redrive(run, out=tmp_path / "again", config=config(tmp_path, provider))
    assert summary.to_json()["replayed"] == 3 and summary.to_json()["identical"] == 3
    assert all(r.reward_reproduced and r.steps_recorded == r.steps_replayed for r in summary.rows)
    report = [json.loads(x) for x in (tmp_path / "again" / "redrive.jsonl").read_text().splitlines()]
    assert {r["task_id"] for r in report} == {"answer", "sql", "code"}
    for episode in RunDir(tmp_path / "again").episodes():
        assert episode.branch_of["mode"] == "redrive" and all(s.call_id is None for s in episode.steps)


async def test_without_the_pid_and_clock_normalisers_the_sql_episode_diverges(
    run: RunDir, tmp_path: Path, provider: FakeProvider
) -> None:
    keep = [n for n in DEFAULT_NORMALISERS if n.name not in ("pid", "clock")]
    sql = next(e for e in run.episodes() if e.task_id == "sql")
    summary = await redrive(run, out=tmp_path / "again", only=[sql.episode_id], config=config(tmp_path, provider),
                            normalisers=keep)  # fmt: skip
    [row] = summary.rows
    assert row.first_divergence is not None and row.first_divergence.index == 0
    assert row.first_divergence.where == "[0].content" and "pid=" in row.first_divergence.diff
    assert row.reward_reproduced  # what differs is not what the judge reads


async def test_resume_replays_k_steps_then_the_live_policy_is_recorded_as_a_branch(
    run: RunDir, tmp_path: Path, provider: FakeProvider
) -> None:
    sql = next(e for e in run.episodes() if e.task_id == "sql")
    asked: list[int] = []

    async def live(episode: Any) -> Completion:
        asked.append(episode.turn)
        return Completion({"role": "assistant", "content": None,
                           "tool_calls": [call("submit", "x1", answer="SELECT 7")]})  # fmt: skip

    summary = await resume(run, [sql.episode_id], at=1, policy=live, out=tmp_path / "resumed", samples=2,
                           config=config(tmp_path, provider))  # fmt: skip
    assert asked == [1, 1]  # step 0 was replayed, the policy took over at step 1, in each sample
    assert [(r.old_reward, r.new_reward) for r in summary.rows] == [(1.0, 0.0), (1.0, 0.0)]
    [a, b] = list(RunDir(tmp_path / "resumed").episodes())
    assert a.branch_of == {"run": str(run.path.resolve()), "episode_id": sql.episode_id, "shared_steps": 1, "mode": "resume"}
    assert a.steps[0].action == sql.steps[0].action and a.steps[1].action["tool_calls"][0]["id"] == "x1"
    assert a.start.meta["group_id"] == b.start.meta["group_id"]  # two samples of one group
    with pytest.raises(ReplayError, match="resume at 0..2"):
        await resume(run, [sql.episode_id], at=5, policy=live, out=tmp_path / "x", config=config(tmp_path, provider))
    with pytest.raises(ReplayError, match="no episode nope"):
        await resume(run, ["nope"], at=0, policy=live, out=tmp_path / "x", config=config(tmp_path, provider))


async def test_a_replay_never_writes_into_an_existing_run(run: RunDir, tmp_path: Path, provider: FakeProvider) -> None:
    with pytest.raises(ReplayError, match="already holds a run"):
        await redrive(run, out=run.path, config=config(tmp_path, provider))
