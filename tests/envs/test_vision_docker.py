"""boxgym/Vision-v0 on Docker through gym.make's defaults (the jupyter image's warm pool): the image
is a file in the sandbox, byte for byte the one shown with the prompt, and the pixel-only solver,
run as a cell in the sandbox's kernel, answers from it with a high reward."""

from __future__ import annotations

import base64
import hashlib

import gymnasium as gym
import pytest

import boxgym.envs  # noqa: F401 - registers the ids
from boxgym.bench.vision import solve_episode
from boxgym.envs import defaults
from boxgym.envs.runner import run_sync
from boxgym.envs.suites import vision
from boxgym.toolsets import ToolCall

pytestmark = [pytest.mark.docker]


@pytest.fixture(scope="module")
def env():
    env = gym.make("boxgym/Vision-v0", pool_size=1)
    yield env
    env.close()
    assert defaults._pools == {}


def test_the_sandbox_holds_the_image_the_policy_sees(env):
    obs, info = env.reset(seed=11, options={"difficulty": 0})
    assert not info["infra_failure"], info["error"]
    shown = base64.b64decode(obs[1]["content"][1]["image_url"]["url"].split(",", 1)[1])
    code = f"import hashlib; print(hashlib.sha256(open({vision.IMAGE!r}, 'rb').read()).hexdigest())"
    call = ToolCall("c", "python", {"code": code})
    obs, *_ = env.step({"role": "assistant", "content": "", "tool_calls": [call.to_openai()]})
    assert hashlib.sha256(shown).hexdigest() in obs[0]["content"]


@pytest.mark.parametrize(
    ("level", "seed", "kind"), [(1, 1, "polygon"), (0, 3, "ocr"), (1, 3, "chart")], ids=["polygon", "ocr", "chart"]
)
def test_the_pixel_solver_in_the_kernel_scores_high(env, level, seed, kind):
    played, reward = run_sync(solve_episode(env.unwrapped, 0, level, task_id=f"vision/d{level}/s{seed}"))
    assert played == kind and reward is not None and reward >= 0.9
