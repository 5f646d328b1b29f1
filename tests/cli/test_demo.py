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
        episodes, mean, _steps, tokens, sampled, failures = cols[1:]
        assert (episodes, mean, failures) == ("2", "1.000", "0"), env_id
        assert int(tokens) > int(sampled) > 0
    training = [json.loads(line) for line in (tmp_path / "training.jsonl").read_text().splitlines()]
    assert len(training) == 6
    for episode in training:
        for seq in episode["sequences"]:
            assert len(seq["token_ids"]) == len(seq["loss_mask"]) == len(seq["logprobs"])
    calls = (tmp_path / "gateway.jsonl").read_text().splitlines()
    assert len(calls) >= 6 * 2  # at least one tool call and one final answer per episode
    assert (tmp_path / "trajectories.jsonl").stat().st_size > 0
