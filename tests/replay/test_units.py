"""The parts of replay: reading runs, what judges need, normalising, images, the replay policy."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from boxgym.errors import ReplayError
from boxgym.judges import AnswerJudge, FileStateJudge, Gate, HiddenTests, OracleJudge, SqlJudge, UnitTestJudge, WeightedSum
from boxgym.judges.answer import ExpectedAnswer
from boxgym.judges.sql import SqlOracle
from boxgym.replay import DEFAULT_NORMALISERS, Needs, Normaliser, ReplayPolicy, compare_steps, needs_of, submission_of
from boxgym.replay.rundir import open_run, recorded_episode
from boxgym.trajectories import RunDir
from boxgym.replay.images import decode_png, perceptual_distance
from boxgym.replay.judging import NeedsSandbox, SealedSandbox
from boxgym.rollout import Completion, RolloutManager, TaskRef
from boxgym.trajectories import EndReason, EpisodeEnd, EpisodeStart, Outcome, StepRecord, TrajectoryWriter

from ..rollout.testing_env import Script, factory

# -- reading a run ---------------------------------------------------------------------------------


def _step(eid: str, i: int, **kw: Any) -> StepRecord:
    return StepRecord(eid, i, {"role": "assistant", "content": f"{eid}:{i}"}, observation=[], **kw)


def test_episodes_stream_as_they_end_paused_ones_go_on_and_open_ones_come_last(tmp_path: Path) -> None:
    with TrajectoryWriter(tmp_path) as w:
        for record in (
            EpisodeStart("a", "boxgym/Code-v0", "t1"), EpisodeStart("b", "boxgym/Code-v0", "t2"),
            _step("a", 0), _step("b", 0),
            EpisodeEnd("a", Outcome.PAUSED, None, 1, EndReason.PAUSED),
            EpisodeEnd("b", Outcome.TERMINATED, 1.0, 1, EndReason.SUBMITTED),
            EpisodeStart("a", "boxgym/Code-v0", "t1", meta={"resumed_at_step": 1}), _step("a", 1),
            EpisodeEnd("a", Outcome.TERMINATED, 0.0, 2, EndReason.SUBMITTED),
            EpisodeStart("c", "boxgym/Code-v0", "t3"), _step("c", 0),
        ):  # fmt: skip
            w.write(record)
    with (tmp_path / "trajectories.jsonl").open("a") as fh:
        fh.write('{"episode_id": "c", "index": 1, "act')  # a torn last line: a crash mid-write
    order = [(e.episode_id, len(e.steps), e.end is not None) for e in RunDir(tmp_path).episodes()]
    assert order == [("b", 1, True), ("a", 2, True), ("c", 1, False)]
    assert RunDir(tmp_path).episode("a").steps[1].action["content"] == "a:1"
    assert RunDir(tmp_path).episode("zz") is None
    with pytest.raises(ReplayError, match="no episode 'zz'"):
        recorded_episode(open_run(tmp_path), "zz")
    with pytest.raises(ReplayError, match="not a run directory"):
        open_run(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReplayError, match="has no trajectories.jsonl"):
        open_run(tmp_path / "empty")


# -- what a judge needs, and the submission ---------------------------------------------------------


def test_needs_follow_the_oracle_and_the_costliest_part() -> None:
    from boxgym.envs import Task

    answer = Task("a", "?", ExpectedAnswer("1"))
    sql = Task("s", "?", SqlOracle("CREATE TABLE t(x);", "SELECT 1"))
    code = Task("c", "?", HiddenTests("..."))
    assert [needs_of(OracleJudge(), t) for t in (answer, sql, code)] == [Needs.RECORD, Needs.CHECKER, Needs.FINAL_STATE]
    assert needs_of(WeightedSum((("a", AnswerJudge(), 1.0), ("s", SqlJudge(), 1.0))), answer) is Needs.CHECKER
    assert needs_of(Gate(AnswerJudge(), FileStateJudge()), answer) is Needs.FINAL_STATE
    assert needs_of(UnitTestJudge(), code) is Needs.FINAL_STATE

    class MyJudge:  # unknown: always re-executed, which is never wrong
        async def score(self, episode: Any) -> Any: ...

    assert needs_of(MyJudge(), answer) is Needs.FINAL_STATE


async def test_the_sealed_sandbox_refuses_every_use() -> None:
    with pytest.raises(NeedsSandbox, match="re-executed"):
        await SealedSandbox().exec("ls")
    with pytest.raises(NeedsSandbox):
        await SealedSandbox().read_file("x")


def test_the_submission_is_the_first_submit_that_ran() -> None:
    def submit(cid: str, ok: bool, **args: Any) -> StepRecord:
        calls = [{"id": cid, "type": "function", "function": {"name": "submit", "arguments": json.dumps(args)}}]
        return StepRecord("e", 0, {}, tool_calls=calls, events=[{"call_id": cid, "tool": "submit", "ok": ok}])

    assert submission_of([]) == (False, None)
    assert submission_of([submit("x", False, answer=3), submit("y", True, answer="42"), submit("z", True, answer="7")]) == (True, "42")
    assert submission_of([submit("y", True)]) == (True, None)


# -- normalising and comparing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "a", "b"),
    [
        pytest.param("iso-time", "at 2026-11-30T10:01:02.5Z ok", "at 2026-12-01 23:59:59+01:00 ok", id="iso"),
        pytest.param("date", "-rw-r--r-- 1 a a 3 Dec  1 02:05 x", "-rw-r--r-- 1 a a 3 Nov 30 11:45 x", id="ls-date"),
        pytest.param("clock", "now 10:01:02", "now 23:59:59.123", id="clock"),
        pytest.param("duration", "Ran 3 tests in 0.001s", "Ran 3 tests in 0.014s", id="duration"),
        pytest.param("pid", "started pid 4242", "started pid 7", id="pid"),
        pytest.param("job", "[1] 4242", "[1] 99", id="job"),
        pytest.param("tmp", "wrote /tmp/tmpab12_xy/out", "wrote /tmp/tmpZZ99qq/out", id="tmp"),
        pytest.param("address", "<Foo object at 0x7f3a2b1c9d00>", "<Foo object at 0x7f00aa11bb22>", id="address"),
        pytest.param("hex", "[main (root-commit) 1a2b3c4] init", "[main (root-commit) 9f8e7d6] init", id="git"),
    ],
)
def test_each_normaliser_hides_what_differs_run_to_run(name: str, a: str, b: str) -> None:
    assert compare_steps([[{"content": a}]], [[{"content": b}]]).first_divergence is None
    without = [n for n in DEFAULT_NORMALISERS if n.name != name]
    found = compare_steps([[{"content": a}]], [[{"content": b}]], normalisers=without).first_divergence
    assert found is not None and found.index == 0 and found.where == "[0].content"


def test_real_differences_are_found_and_shown_at_their_first_step() -> None:
    recorded = [[{"content": "exit code: 0"}], [{"content": "3 passed"}], [{"content": "done"}]]
    replayed = [[{"content": "exit code: 0"}], [{"content": "2 passed, 1 failed"}]]
    found = compare_steps(recorded, replayed).first_divergence
    assert found.index == 1 and "-3 passed" in found.diff and "+2 passed, 1 failed" in found.diff
    shorter = compare_steps(recorded, recorded[:2]).first_divergence
    assert shorter.index == 2 and shorter.where == "steps" and "replayed one ended" in shorter.diff
    custom = Normaliser("count", r"\d+ passed", "<n> passed")
    assert compare_steps([[{"c": "3 passed"}]], [[{"c": "9 passed"}]], normalisers=[custom]).first_divergence is None


# -- images --------------------------------------------------------------------------------------------


def _png(pixels: np.ndarray, filter_type: int) -> bytes:
    """An RGB PNG whose every row uses ``filter_type`` (to check the decoder undoes each filter)."""
    h, w, _ = pixels.shape
    raw, prev = bytearray(), np.zeros(w * 3, dtype=np.int64)
    for row in pixels.reshape(h, w * 3).astype(np.int64):
        left = np.concatenate([np.zeros(3, dtype=np.int64), row[:-3]])
        upleft = np.concatenate([np.zeros(3, dtype=np.int64), prev[:-3]])
        if filter_type == 0:
            out = row
        elif filter_type == 1:
            out = row - left
        elif filter_type == 2:
            out = row - prev
        elif filter_type == 3:
            out = row - (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
            out = row - np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        raw += bytes([filter_type]) + bytes((out % 256).astype(np.uint8))
        prev = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b"")


@pytest.mark.parametrize("filter_type", [0, 1, 2, 3, 4])
def test_png_decoding_undoes_every_filter(filter_type: int) -> None:
    rng = np.random.default_rng(filter_type)
    pixels = rng.integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    np.testing.assert_allclose(decode_png(_png(pixels, filter_type)), pixels.astype(float).mean(axis=2))


def test_images_are_equal_within_a_perceptual_distance() -> None:
    y, x = np.mgrid[0:64, 0:96]
    page = np.stack([x * 2, y * 3, (x + y)], axis=2).astype(np.uint8)
    caret = page.copy()
    caret[30:34, 50:51] = 0  # a blinking caret: a few pixels
    other = page[:, ::-1].copy()  # a different page
    same = perceptual_distance(_png(page, 0), _png(page, 4))
    small = perceptual_distance(_png(page, 1), _png(caret, 1))
    far = perceptual_distance(_png(page, 2), _png(other, 2))
    assert same == 0.0 and small < 0.1 < far

    def obs(png: bytes) -> list[dict[str, Any]]:
        url = "data:image/png;base64," + base64.b64encode(png).decode()
        return [{"role": "tool", "content": [{"type": "image_url", "image_url": {"url": url}}]}]

    assert compare_steps([obs(_png(page, 0))], [obs(_png(caret, 0))]).first_divergence is None
    found = compare_steps([obs(_png(page, 0))], [obs(_png(other, 0))]).first_divergence
    assert found.image_distance is not None and found.image_distance > 0.1 and "perceptual distance" in found.diff
    assert compare_steps([obs(_png(page, 0))], [obs(_png(caret, 0))], image_threshold=0.0).first_divergence is not None


# -- the replay policy through the manager -------------------------------------------------------------


async def test_the_replay_policy_replays_k_actions_then_hands_over_and_the_branch_is_recorded(tmp_path: Path) -> None:
    live_turns: list[int] = []

    async def live(episode: Any) -> Completion:
        live_turns.append(episode.turn)
        return Completion({"role": "assistant", "content": "live"})

    recorded = {"old-1": ["first", {"role": "assistant", "content": "second"}, "third"]}
    branch = {"run": "/r", "episode_id": "old-1", "shared_steps": 2, "mode": "resume"}
    async with RolloutManager(factory(Script(steps=3)), ReplayPolicy(recorded, live), run_dir=tmp_path) as manager:
        [result] = await manager.collect([TaskRef("t", meta={"branch_of": branch})])
    assert [m["content"] for m in result.messages if m["role"] == "assistant"] == ["first", "second", "live"]
    assert live_turns == [2]
    [episode] = RunDir(tmp_path).episodes()
    assert episode.branch_of == branch and episode.start.meta["group_id"]  # the manager's own keys kept

    async with RolloutManager(factory(Script(steps=9)), ReplayPolicy(recorded), run_dir=tmp_path / "b") as manager:
        [result] = await manager.collect([TaskRef("t", meta={"branch_of": dict(branch, shared_steps=9)})])
    assert result.reason is EndReason.AGENT_DONE  # the record ran out and there is no live policy
    assert len(RunDir(tmp_path / "b").episode(result.episode_id).steps) == 3
