"""An episode's result: every field from the episode's state, built by the fast constructor."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, fields

import pytest

from boxgym.rollout.state import Episode
from boxgym.rollout.types import Completion, EndReason, EpisodeResult, Outcome, TaskRef, new_result


def _episode() -> Episode:
    parent = Episode("root", TaskRef("t0"), group_id="g0")
    ep = Episode("root.1", TaskRef("t1", seed=5), group_id="g1", sample_index=3, parent=parent)
    ep.spawned_at_step = 4
    ep.subagent_name = "helper"
    ep.frozen = True
    ep.attempts = 2
    ep.messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    ep.completions = [Completion({"role": "assistant", "content": "yo"}, completion_token_ids=(1, 2))]
    ep.completion_tokens = 2
    ep.turn = 7
    ep.reward = 0.75
    ep.reward_parts = {"tests": 0.5}
    ep.subagents = {"helper": "be brief", "other": "be long"}
    ep.tasks_assigned, ep.tasks_finished = 6, 5
    ep.t_queued, ep.t_sandbox, ep.t_policy, ep.t_env, ep.t_judge, ep.t_total = 0.1, 0.2, 0.3, 0.4, 0.5, 1.6
    ep.finish(EndReason.MAX_TURNS, "late")
    return ep


def test_result_carries_every_field_of_the_episode() -> None:
    ep = _episode()
    child = EpisodeResult("c", TaskRef("tc"), "g1", 0, Outcome.TERMINATED, "env_terminated", 1.0, {}, 1, 0, (), (), {})
    ep.children = [child]
    expected = EpisodeResult(
        episode_id="root.1", task=ep.task, group_id="g1", sample_index=3, outcome=Outcome.TRUNCATED,
        reason="max_turns", reward=0.75, reward_parts={"tests": 0.5}, steps=7, completion_tokens=2,
        messages=tuple(ep.messages), completions=tuple(ep.completions),
        timings={"queued": 0.1, "sandbox": 0.2, "policy": 0.3, "env": 0.4, "judge": 0.5, "total": 1.6},
        error="late", attempts=2, parent_episode_id="root", spawned_at_step=4, children=(child,), frozen=True,
        subagent_name="helper", subagents_created=2, tasks_assigned=6, tasks_finished=5,
    )
    result = ep.result()
    assert result == expected
    for f in fields(EpisodeResult):  # field by field, so a mismatch names the field
        assert getattr(result, f.name) == getattr(expected, f.name), f.name
    assert ep.result(keep_messages=False).messages == (ep.messages[-1],)


def test_an_unscored_result_has_no_reward_and_no_parts() -> None:
    ep = _episode()
    ep.finish(EndReason.INFRA, "sandbox died")
    result = ep.result()
    assert (result.reward, result.reward_parts, result.ok) == (None, {}, False)


def test_new_result_is_the_frozen_dataclass() -> None:
    values = [f"v{i}" for i in range(len(fields(EpisodeResult)))]
    result = new_result(*values)
    assert result == EpisodeResult(*values)
    with pytest.raises(FrozenInstanceError):
        result.reward = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        new_result(*values[:-1])


def test_every_rare_field_is_an_episode_attribute_with_its_default() -> None:
    from boxgym.rollout.state import _RARE_DEFAULTS

    ep = Episode("e", TaskRef("t"), group_id="g")
    for name, default in _RARE_DEFAULTS.items():
        assert getattr(ep, name) == default, name
    assert ep._rare is None  # reading never makes the rare object
    ep.frozen = True
    assert ep._rare is not None and ep.frozen and ep.attempts == 1
