"""The boxgym/ ids: registered lazily, in every process, and accepted by Gymnasium's checker."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import boxgym.envs
from boxgym.envs import ChatMessages
from boxgym.sandboxes import FakeProvider

IDS = [env.id for env in boxgym.envs.ENVS]
# The browser ids start a Chromium per reset: test_browser_envs.py checks them.
NO_BROWSER = [env.id for env in boxgym.envs.ENVS if env.kwargs.get("image") != "desktop"]


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_id_is_namespaced_versioned_and_registered_by_string():
    named = [
        "boxgym/Code-v0", "boxgym/Shell-v0", "boxgym/SQL-v0", "boxgym/DataAnalysis-v0", "boxgym/Vision-v0",
        "boxgym/Simulated-v0",
        "boxgym/ScienceWorld-v0",
        "boxgym/WebTasks-v0", "boxgym/MiniWoB-v0", "boxgym/Shop-v0",
        "boxgym/Desktop-v0",
    ]  # fmt: skip
    assert IDS[: len(named)] == named
    assert all(env_id.startswith("boxgym/miniwob.") for env_id in IDS[len(named) :])
    for env_id in IDS:
        spec = gym.spec(env_id)
        assert spec.namespace == "boxgym" and spec.version == 0
        assert isinstance(spec.entry_point, str) and spec.nondeterministic


def test_registering_again_is_harmless():
    boxgym.envs.register_envs()
    assert sum(env_id.startswith("boxgym/") for env_id in gym.registry) == len(IDS)


def test_imports_stay_light():
    loaded = json.loads(
        run_python(
            "import sys, json; import boxgym; a = set(sys.modules); import boxgym.envs; b = set(sys.modules);"
            "print(json.dumps([sorted(a), sorted(b)]))"
        )
    )
    after_boxgym, after_envs = (set(x) for x in loaded)
    assert "gymnasium" not in after_boxgym
    heavy = (
        "docker",
        "aiohttp",
        "playwright",
        "jupyter_client",
        "boxgym.sandboxes.docker",
        "boxgym.envs.suites",
        "boxgym.judges",
    )
    assert not [m for m in after_envs if m.startswith(heavy)]


def test_a_fresh_process_finds_the_ids_through_the_module_prefix():
    out = run_python(
        "import gymnasium as gym\nenv = gym.make('boxgym.envs:boxgym/SQL-v0')\nprint(env.spec.id)\nenv.close()\n"
    )
    assert out.strip() == "boxgym/SQL-v0"


def test_spawned_vector_workers_build_the_env():
    envs = gym.make_vec(
        "boxgym/Code-v0",
        num_envs=2,
        vectorization_mode="async",
        vector_kwargs={"context": "spawn", "shared_memory": False},
        provider=FakeProvider(),
    )
    try:
        obs, info = envs.reset(seed=0)
        assert len(obs) == 2 and all(o in ChatMessages() for o in obs)
        assert all(task_id.startswith("code/") for task_id in info["task_id"])
    finally:
        envs.close()


@pytest.mark.parametrize("env_id", NO_BROWSER)
def test_check_env_accepts_every_id(env_id):
    env = gym.make(env_id, provider=FakeProvider())
    try:
        check_env(env.unwrapped)
    finally:
        env.close()


def test_spaces_accept_real_model_text():
    env = gym.make("boxgym/Code-v0", provider=FakeProvider())
    text = 'Ünïcödé → 中文 ✓ {"json": [1, 2]} <tool_call>\n\t```py\nprint("x")\n```'
    assert text in env.action_space
    assert {"role": "assistant", "content": None, "tool_calls": []} in env.action_space
    assert {"role": "user", "content": text} not in env.action_space
    assert [{"role": "tool", "tool_call_id": "x", "content": text}] in env.observation_space
    assert [{"role": "wizard", "content": "x"}] not in env.observation_space
    assert "not a list" not in env.observation_space
    env.close()


@pytest.mark.parametrize(
    "imports",
    ["import boxgym; import gymnasium as gym", "import gymnasium as gym; import boxgym"],
    ids=["boxgym-first", "gymnasium-first"],
)
def test_import_boxgym_registers_the_ids_in_either_order(imports):
    out = run_python(
        f"{imports}; import sys; print(sorted(i for i in gym.registry if i.startswith('boxgym/')));"
        "print(type(gym.make('boxgym/SQL-v0', provider=__import__('boxgym.sandboxes').sandboxes.FakeProvider()).unwrapped).__name__);"
        "print(any('AfterGymnasium' in type(f).__name__ for f in sys.meta_path))"
    )
    ids, env_class, hook_left = out.splitlines()
    assert ids == str(sorted(IDS)) and env_class == "BoxEnv" and hook_left == "False"
