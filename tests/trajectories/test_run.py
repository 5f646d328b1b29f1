"""RunDir: one run directory read as one run, whether one process wrote it or several shards,
with the episodes of a lost shard that never reached the driver set apart."""

from __future__ import annotations

import json
import time

import pytest

from boxgym.rollout import Completion, EndReason, EpisodeResult, Outcome, TaskRef, to_training, training_to_json
from boxgym.rollout.training import training_from_json
from boxgym.trajectories import EpisodeEnd, EpisodeStart, RunDir, ShardLost, ShardStarted, StepRecord, TrajectoryWriter
from boxgym.trajectories.run import mark_delivered, record_shard, root_episode_id


def _episode(writer: TrajectoryWriter, episode_id: str, end: bool = True) -> None:
    writer.write(EpisodeStart(episode_id, "null", "t", None, None, {}, 1.0))
    writer.write(StepRecord(episode_id, 0, "a"))
    if end:
        writer.write(EpisodeEnd(episode_id, Outcome.TERMINATED, 1.0, 1, EndReason.SUBMITTED, {}, None, {}, 2.0))


@pytest.mark.parametrize(
    ("episode_id", "root"),
    [("a_0-5", "a_0-5"), ("a_0-5.1", "a_0-5"), ("a_0-5~retry2", "a_0-5"), ("a_0-5~retry2.0", "a_0-5")],
)
def test_root_episode_id(episode_id, root):
    assert root_episode_id(episode_id) == root


def test_a_run_of_one_process_is_one_shard(tmp_path):
    with TrajectoryWriter(tmp_path) as writer:
        _episode(writer, "m-0")
        _episode(writer, "m-1")
    run = RunDir(tmp_path)
    assert [s.path for s in run.shards] == [tmp_path]
    assert [e.episode_id for e in run.episodes()] == ["m-0", "m-1"] and not run.lost()
    assert list(run.gateway_records()) == [] and list(run.training()) == []


def test_a_lost_shard_keeps_only_what_reached_the_driver(tmp_path):
    for name in ("a_0", "a_1"):
        record_shard(tmp_path, ShardStarted(name, "node", "host", 1, time.time()))
    with TrajectoryWriter(tmp_path / "shards" / "a_0") as writer:
        for n in range(4):
            _episode(writer, f"a_0-{n}", end=n != 3)  # a_0-3 was running when the actor died
        writer.write(EpisodeStart("a_0-0.0", "null", "t", None, "a_0-0", {}, 1.0))  # a child of a delivered root
    with TrajectoryWriter(tmp_path / "shards" / "a_1") as writer:
        _episode(writer, "a_1-0")
    mark_delivered(tmp_path / "shards" / "a_0", ["a_0-0"])  # acknowledged by the driver's next call
    record_shard(tmp_path, ShardLost("a_0", "died", time.time(), ("a_0-1",)))  # received, never acknowledged
    with (tmp_path / "shards" / "a_0" / "delivered.jsonl").open("a") as fh:
        fh.write('["a_0-2"')  # torn by the crash: not read
    run = RunDir(tmp_path)
    assert {s.name: s.lost is not None for s in run.shards} == {"a_0": True, "a_1": False}
    assert {e.episode_id for e in run.episodes()} == {"a_0-0", "a_0-0.0", "a_0-1", "a_1-0"}
    assert set(run.lost()) == {"a_0-2", "a_0-3"}  # finished but never delivered; still running


def test_training_output_reads_back_from_the_top_and_the_shards(tmp_path):
    completion = Completion({"role": "assistant", "content": "x"}, (1, 2), (3, 4), (-0.5, -0.25), "v1")
    result = EpisodeResult(
        "a_0-0", TaskRef("t", "null"), "a_0-g0", 0, Outcome.TERMINATED, EndReason.SUBMITTED, 1.0, {"judge": 1.0}, 1, 2,
        (), (completion,), {"total": 1.0},
    )
    line = json.dumps(training_to_json(to_training(result))) + "\n"
    (tmp_path / "shards" / "a_0").mkdir(parents=True)
    (tmp_path / "training.jsonl").write_text(line)
    (tmp_path / "shards" / "a_0" / "training.jsonl").write_text(line)
    episodes = list(RunDir(tmp_path).training())
    assert episodes == [to_training(result)] * 2
    with pytest.raises(ValueError, match="training format"):
        training_from_json({**json.loads(line), "format_version": 99})
