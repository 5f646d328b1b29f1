"""The README's first command: the demo runs the main job end to end and writes its records."""

from __future__ import annotations

import json

import pytest

from boxgym.cli import main

pytestmark = pytest.mark.docker


def test_demo_replays_reference_solutions_to_full_reward(tmp_path, capsys):
    code = main(["demo", "--seeds", "1", "--levels", "2", "--concurrency", "6", "--run-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("boxgym/")}
    assert set(rows) == {"boxgym/Code-v0", "boxgym/Shell-v0", "boxgym/SQL-v0"}
    for env_id, cols in rows.items():
        episodes, mean, _steps, tokens, sampled, failures, tokens_in, tokens_out, model_s, tool_s, cpu_s, peak = cols[1:]
        assert (episodes, mean, failures) == ("2", "1.000", "0"), env_id
        assert int(tokens) > int(sampled) > 0
        # Means per episode: the runtime figures, every one measured (the sandbox's from its cgroup).
        assert int(tokens_in) > int(tokens_out) > 0 and float(model_s) >= 0 and float(tool_s) > 0
        assert float(cpu_s) > 0 and int(peak) > 0
    training = [json.loads(line) for line in (tmp_path / "training.jsonl").read_text().splitlines()]
    assert len(training) == 6
    for episode in training:
        for seq in episode["sequences"]:
            assert len(seq["token_ids"]) == len(seq["loss_mask"]) == len(seq["logprobs"])
    calls = (tmp_path / "gateway.jsonl").read_text().splitlines()
    assert len(calls) >= 6 * 2  # at least two model calls per episode (a tool call, then submit)
    _assert_the_three_files_join(tmp_path, training)


def _assert_the_three_files_join(run_dir, training):
    """Every step of every episode names the gateway record of the call that produced its action,
    under the same episode id, and the trainer's sequences sample exactly those calls."""
    from boxgym.gateway import read_calls
    from boxgym.trajectories import EpisodeEnd, EpisodeStart, StepRecord, read_records

    records = list(read_records(run_dir))
    episodes = {r.episode_id for r in records if isinstance(r, EpisodeStart)}
    assert episodes == {r.episode_id for r in records if isinstance(r, EpisodeEnd)}
    assert episodes == {t["episode_id"] for t in training}
    calls = {c.call_id: c for c in read_calls(run_dir / "gateway.jsonl")}
    assert {c.episode_id for c in calls.values()} == episodes
    steps = [r for r in records if isinstance(r, StepRecord)]
    assert len(steps) == sum(t["steps"] for t in training) > 0
    sampled = {t["episode_id"]: [c for s in t["sequences"] for c in s["call_ids"]] for t in training}
    for step in steps:
        call = calls[step.call_id]  # a KeyError here: a step that joins no gateway record
        assert call.episode_id == step.episode_id
        # The record's answer is the step's action: the same tool call, id and arguments.
        answered = call.response["choices"][0]["message"]["tool_calls"]
        assert [c["id"] for c in answered] == [c["id"] for c in step.action["tool_calls"]]
        assert [c["function"] for c in answered] == [c["function"] for c in step.action["tool_calls"]]
        assert step.call_id in sampled[step.episode_id]
    for episode_id, call_ids in sampled.items():
        assert sorted(call_ids) == sorted(s.call_id for s in steps if s.episode_id == episode_id)
