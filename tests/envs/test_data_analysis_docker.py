"""boxgym/DataAnalysis-v0 on Docker through gym.make's defaults: the jupyter image's shared warm
pool (a kernel already running in every sandbox), the reference solution of each level scores 1,
doing nothing scores 0, and closing leaves no pool behind. (check_env runs on every id with the
fake sandbox: tests/envs/test_registration.py.)"""

from __future__ import annotations

import gymnasium as gym
import pytest

import boxgym.envs  # noqa: F401 - registers the ids
from boxgym.envs import defaults, reference_messages
from boxgym.judges.answer import parse_number
from boxgym.toolsets import ToolCall

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def env():
    env = gym.make("boxgym/DataAnalysis-v0", pool_size=1)
    yield env
    env.close()
    assert defaults._pools == {}


@pytest.mark.parametrize("level", range(4))
def test_the_reference_scores_1_at_every_level(env, level):
    _, info = env.reset(seed=level, options={"difficulty": level})
    assert not info["infra_failure"], info["error"]
    task = env.unwrapped.tasks.get(info["task_id"])
    messages = reference_messages(task)
    obs, *_ = env.step(messages[0])
    cell = obs[0]["content"]
    printed = parse_number(cell.split("[stdout]\n", 1)[1].split("\n")[0])
    assert printed is not None and abs(printed - float(task.oracle.answer)) <= task.oracle.abs_tol, cell
    if task.metadata.get("plot"):
        assert obs[-1]["role"] == "user" and obs[-1]["content"][1]["type"] == "image_url"  # the plot, shown
    _, reward, terminated, _, info = env.step(messages[1])
    assert (reward, terminated) == (1.0, True), info["verdict"]


def test_doing_nothing_scores_0(env):
    env.reset(seed=9, options={"difficulty": 3})
    submit = {"role": "assistant", "content": "", "tool_calls": [ToolCall("s", "submit", {}).to_openai()]}
    _, reward, terminated, _, info = env.step(submit)
    assert (reward, terminated, info["infra_failure"]) == (0.0, True, False)

