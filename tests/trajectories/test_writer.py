"""The writer: the same lines as before, faster; the hand-off guarantees of write and write_soon."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from boxgym.trajectories import (
    EndReason,
    EpisodeEnd,
    EpisodeStart,
    Outcome,
    StepRecord,
    TrajectoryWriter,
    encode_record,
    read_episodes,
    read_records,
)
from boxgym.trajectories.records import to_json

_CALLS = [{"id": "c\u00e9", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1.5}"}}]
RECORDS = [
    pytest.param(EpisodeStart("e1", "boxgym/Shell-v0", "t1", 3, None, {"k": [1, 2]}, 12.5), id="start"),
    pytest.param(StepRecord("e1", 0, "plain text"), id="step-defaults"),
    pytest.param(
        StepRecord(
            "e\u00e91", 2, {"role": "assistant", "content": 'q"\u2603', "tool_calls": [{"id": "c"}]}, [{"id": "c"}],
            [{"role": "tool", "content": "x\n"}], 0.25, True, False, {"env": 1.5}, [{"event": "oom"}],
            {"nan": float("nan"), "inf": float("inf")}, "v3",
        ),
        id="step-everything",
    ),
    pytest.param(StepRecord("e1", 1, None, reward=float("nan"), info={"tuple": (1, 2)}), id="step-odd-values"),
    pytest.param(
        StepRecord("e1", 3, {"role": "assistant", "content": None, "tool_calls": _CALLS}, _CALLS),
        id="step-calls-shared-with-action",
    ),
    pytest.param(
        StepRecord("e1", 4, {"role": "assistant", 7: "x", "tool_calls": _CALLS}, _CALLS), id="step-action-int-key"
    ),
    pytest.param(EpisodeEnd("e1", Outcome.INFRA_FAILURE, None, 3, EndReason.INFRA, {}, "broken", {}, 1.0), id="end"),
    pytest.param(
        EpisodeEnd(
            "e1", Outcome.TERMINATED, 1.0, 3, EndReason.SUBMITTED, {"a": 1.0}, None, {}, 1.0,
            cost=2.0, cost_parts={"network": 1.0, "secrets": 1.0}, usage={"tool_s": 0.5, "sandbox_cpu_s": None},
        ),
        id="end-with-cost-and-usage",
    ),
]


@pytest.mark.parametrize("record", RECORDS)
def test_lines_equal_the_generic_json_encoding(record: object) -> None:
    line = encode_record(record)  # type: ignore[arg-type]
    assert line == json.dumps(to_json(record), separators=(",", ":"), default=repr) + "\n"  # type: ignore[arg-type]


def test_write_step_soon_writes_the_step_records_line(tmp_path: Path) -> None:
    with TrajectoryWriter(tmp_path) as writer:
        writer.write_step_soon(
            "e", 4, {"role": "assistant"}, [], [{"role": "tool"}], 1.0, True, False, 0.5, 0.25, {"a": 1}, "v1", "call-7"
        )
    expected = StepRecord("e", 4, {"role": "assistant"}, [], [{"role": "tool"}], 1.0, True, False,
                          {"policy_s": 0.5, "env_s": 0.25}, [], {"a": 1}, "v1", "call-7")
    assert (tmp_path / "trajectories.jsonl").read_text() == encode_record(expected)
    assert list(read_records(tmp_path)) == [expected]


@pytest.mark.parametrize("policy_s, env_s", [(1e-07, 2.5e20), (float("inf"), 0.5), (1, 0.5)], ids=["tiny-huge", "inf", "int"])
def test_write_step_soon_timings_are_the_encoders(tmp_path: Path, policy_s: float, env_s: float) -> None:
    with TrajectoryWriter(tmp_path) as writer:
        writer.write_step_soon("e", 0, "a", [], [], 0.0, False, False, policy_s, env_s, {}, None)
    expected = StepRecord("e", 0, "a", [], [], 0.0, False, False, {"policy_s": policy_s, "env_s": env_s}, [], {}, None)
    assert (tmp_path / "trajectories.jsonl").read_text() == encode_record(expected)


def test_write_start_and_end_soon_write_the_records_lines(tmp_path: Path) -> None:
    start = EpisodeStart("e\u00e9", "boxgym/Shell-v0", "t1", 7, "p", {"group_id": "g", "attempt": 1}, 12.5)
    end = EpisodeEnd("e\u00e9", Outcome.TRUNCATED, float("nan"), 3, EndReason.MAX_TURNS, {"a": 0.5}, "x", {"n": 1}, 13.0)
    with TrajectoryWriter(tmp_path) as writer:
        writer.write_start_soon("e\u00e9", "boxgym/Shell-v0", "t1", 7, "p", {"group_id": "g", "attempt": 1}, 12.5)
        writer.write_end_soon("e\u00e9", Outcome.TRUNCATED, float("nan"), 3, EndReason.MAX_TURNS, {"a": 0.5}, "x", {"n": 1}, 13.0)
    assert (tmp_path / "trajectories.jsonl").read_text() == encode_record(start) + encode_record(end)
    assert [r.episode_id for r in read_records(tmp_path)] == ["e\u00e9", "e\u00e9"]


def test_end_records_carry_cost_and_usage_and_older_lines_still_read(tmp_path: Path) -> None:
    end = EpisodeEnd(
        "e", Outcome.TERMINATED, 1.0, 2, EndReason.SUBMITTED, {}, None, {}, 3.0,
        cost=1.0, cost_parts={"deletion": 1.0}, usage={"completion_tokens": 7},
    )  # fmt: skip
    with TrajectoryWriter(tmp_path) as writer:
        writer.write_end_soon(
            "e", Outcome.TERMINATED, 1.0, 2, EndReason.SUBMITTED, {}, None, {}, 3.0,
            1.0, {"deletion": 1.0}, {"completion_tokens": 7},
        )  # fmt: skip
    assert (tmp_path / "trajectories.jsonl").read_text() == encode_record(end)
    assert list(read_records(tmp_path)) == [end]
    # A line written before the cost fields existed reads with their defaults.
    old = json.loads(encode_record(end))
    for key in ("cost", "cost_parts", "usage"):
        del old[key]
    (tmp_path / "trajectories.jsonl").write_text(json.dumps(old) + "\n")
    [read] = read_records(tmp_path)
    assert (read.cost, read.cost_parts, read.usage, read.reward) == (None, {}, {}, 1.0)


def test_write_hands_each_record_to_the_os_before_returning(tmp_path: Path) -> None:
    writer = TrajectoryWriter(tmp_path)
    writer.write(StepRecord("e", 0, "a"))
    assert (tmp_path / "trajectories.jsonl").read_text().count("\n") == 1
    writer.close()
    writer.close()  # idempotent


async def test_write_soon_is_handed_over_before_a_yielding_writer_resumes(tmp_path: Path) -> None:
    path = tmp_path / "trajectories.jsonl"
    seen: list[int] = []
    with TrajectoryWriter(tmp_path) as writer:

        async def episode(i: int) -> None:
            for step in range(3):
                seq = writer.write_soon(StepRecord(f"e{i}", step, "a"))
                await asyncio.sleep(0)
                assert writer.records_written >= seq  # in the OS's hands after one yield
                seen.append(path.read_bytes().count(b"\n"))

        await asyncio.gather(*(episode(i) for i in range(50)))
        assert writer.pending == 0
    assert len(list(read_records(tmp_path))) == 150
    assert set(read_episodes(tmp_path)) == {f"e{i}" for i in range(50)}
    assert os.stat(path).st_size > 0 and max(seen) == 150


async def test_one_flush_callback_per_loop_round_keeps_the_hand_off_guarantee(tmp_path: Path) -> None:
    # More records per round than one chunk: chunk writes happen mid-round, and every record
    # queued after them is still handed over before its writer resumes.
    with TrajectoryWriter(tmp_path) as writer:

        async def episode(i: int) -> None:
            for step in range(3):
                seq = writer.write_soon(StepRecord(f"e{i}", step, "a"))
                await asyncio.sleep(0)
                assert writer.records_written >= seq

        await asyncio.gather(*(episode(i) for i in range(700)))
        assert writer.pending == 0
    assert len(list(read_records(tmp_path))) == 2100


def test_a_callback_lost_with_its_loop_does_not_stall_the_next_loop(tmp_path: Path) -> None:
    writer = TrajectoryWriter(tmp_path)

    async def queue_one(step: int) -> int:
        return writer.write_soon(StepRecord("e", step, "a"))

    loop = asyncio.new_event_loop()
    loop.run_until_complete(queue_one(0))  # its flush callback is still pending when the loop closes
    loop.close()
    writer.flush()

    async def queue_and_yield() -> None:
        seq = await queue_one(1)
        await asyncio.sleep(0)
        assert writer.records_written >= seq

    asyncio.run(queue_and_yield())
    writer.close()
    assert [r.index for r in read_records(tmp_path)] == [0, 1]  # type: ignore[union-attr]


def test_close_flushes_what_is_queued(tmp_path: Path) -> None:
    writer = TrajectoryWriter(tmp_path)
    writer._queue.append(encode_record(StepRecord("e", 0, "a")))  # queued, as write_soon leaves it
    writer.close()
    assert len(list(read_records(tmp_path))) == 1


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    with TrajectoryWriter(tmp_path) as writer:
        writer.write(StepRecord("e", 0, "a"))
    with open(tmp_path / "trajectories.jsonl", "ab") as fh:
        fh.write(b'{"kind":"step","episode_id":"e","ind')
    assert [r.index for r in read_records(tmp_path)] == [0]  # type: ignore[union-attr]
