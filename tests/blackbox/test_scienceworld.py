"""boxgym/ScienceWorld-v0 in the fake sandbox (ScienceWorld and its JVM on the host): seeds pick
tasks and variations reproducibly, splits are ScienceWorld's own, the options are checked, the
move limit truncates, and rewards are ScienceWorld's score changes."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import boxgym.envs  # noqa: F401 - registers the ids
from boxgym.blackbox.scienceworld import _SPLITS, ScienceWorldTask
from boxgym.errors import TaskError
from boxgym.sandboxes import FakeProvider

pytestmark = pytest.mark.slow  # a JVM on the host: a few seconds to start


@pytest.fixture(scope="module")
def env():
    made = gym.make("boxgym/ScienceWorld-v0", provider=FakeProvider(), step_limit=5)
    yield made
    made.close()


def test_a_seed_picks_the_task_and_variation_reproducibly(env):
    first = [env.reset(seed=seed) for seed in (11, 12, 11)]
    assert first[0][1]["task_id"] == first[2][1]["task_id"] and first[0][0] == first[2][0]
    assert len({info["task_id"] for _, info in (env.reset(seed=seed) for seed in range(8))}) >= 4
    for split in ("train", "dev", "test"):
        for seed in range(3):
            _, info = env.reset(seed=seed, options={"task": "boil", "split": split})
            task = ScienceWorldTask.parse(info["task_id"])
            assert task.name == "boil" and task.variation in _SPLITS["boil"][split]
            assert info["metadata"]["split"] == split
    assert set(_SPLITS["boil"]["train"]).isdisjoint(_SPLITS["boil"]["test"])


def test_tasks_by_name_id_and_task_id_and_bad_options_raise(env):
    obs, info = env.reset(options={"task": "1-1", "variation": 2})
    assert info["task_id"] == "boil/2" and "Your task is to boil" in obs[1]["content"]
    _, again = env.reset(options={"task_id": "boil/2/easy"})
    assert again["metadata"]["simplifications"] == "easy"
    for options, match in [
        ({"task": "juggling"}, "unknown ScienceWorld task"),
        ({"task": "boil", "variation": 999}, "variations 0 to"),
        ({"task": "boil", "split": "holdout"}, "split must be one of"),
        ({"task_id": "boil"}, "name/variation"),
        ({"task_id": "boil/1/sideways"}, "Unknown simplification"),
        ({"difficulty": 2}, "unknown reset options"),
    ]:
        with pytest.raises(TaskError, match=match):
            env.reset(options=options)


def test_commands_text_and_tools_reward_score_changes_and_the_move_limit_truncates(env):
    _, info = env.reset(options={"task_id": "find-plant/0"})
    obs, reward, terminated, truncated, info = env.step("open door to art studio")
    assert obs[0] == {"role": "user", "content": "The door is now open."} and not (terminated or truncated)
    assert reward == info["simulator"]["points"] / 100 and info["simulator"]["score"] == info["simulator"]["points"] > 0
    arguments = json.dumps({"contains": "focus on"})
    call = {"id": "v", "type": "function", "function": {"name": "valid_actions", "arguments": arguments}}
    obs, *_ = env.step({"role": "assistant", "content": "", "tool_calls": [call]})
    assert obs[0]["content"].splitlines()[1].startswith("focus on")
    moves = info["simulator"]["moves"]
    for _ in range(10):
        obs, reward, terminated, truncated, info = env.step("look at door to art studio")
        if terminated or truncated:
            break
    assert truncated and not terminated and info["end_reason"] == "env_truncated"
    assert info["simulator"]["moves"] == 6 > moves and not info["simulator"]["completed"]


def test_focusing_on_the_wrong_thing_fails_the_task(env):
    _, info = env.reset(options={"task_id": "find-plant/0"})
    assert info["metadata"]["split"] == "train"
    obs, reward, terminated, truncated, info = env.step("focus on picture")
    assert terminated and not truncated and info["end_reason"] == "env_terminated"
    assert info["simulator"]["score"] < 0 and not info["simulator"]["completed"] and reward < 0
