"""Every suite at every level through gym.make on the fake sandbox: the reference solution
scores 1, a wrong solution and doing nothing score 0."""

from __future__ import annotations

import gymnasium as gym
import pytest

import boxgym.envs  # noqa: F401 - registers the ids
from boxgym.sandboxes import FakeProvider

from .suite_runs import IDS, LEVELS, SCRIPTS, play


@pytest.fixture(scope="module", params=IDS)
def env(request):
    env = gym.make(request.param, provider=FakeProvider())
    yield env
    env.close()


@pytest.mark.parametrize("level", range(LEVELS))
@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_score_as_expected(env, level, script):
    reward, info = play(env, level, script, seed=level)
    assert reward == SCRIPTS[script][1], info["verdict"]
    assert info["verdict"]["passed"] is (SCRIPTS[script][1] == 1.0)


@pytest.mark.parametrize("task_id", ["fizzbuzz", "word-count"])
def test_a_users_jsonl_problem_set_through_gym_make(task_id):
    from boxgym.envs import reference_messages
    from boxgym.envs.examples import CODE_TASKS

    env = gym.make("boxgym/Code-v0", tasks=str(CODE_TASKS), provider=FakeProvider())
    try:
        for messages, expected in (
            (reference_messages(env.unwrapped.tasks.get(task_id)), 1.0),
            ([{"role": "assistant", "content": '<tool_call>{"name": "submit"}</tool_call>'}], 0.0),
        ):
            env.reset(options={"task_id": task_id})
            for message in messages:
                _, reward, terminated, _, info = env.step(message)
            assert (reward, terminated) == (expected, True), info["verdict"]
    finally:
        env.close()


def _one_task_per_family():
    from boxgym.envs.suites.code import LEVELS as CODE_LEVELS
    from boxgym.envs.suites.code import generate

    seen = {}
    for level in range(len(CODE_LEVELS)):
        for seed in range(200):
            task = generate(seed, level)
            seen.setdefault(task.metadata["family"], task)
    return [pytest.param(task, id=family) for family, task in sorted(seen.items())]


@pytest.mark.parametrize("task", _one_task_per_family())
async def test_every_code_family_reference_passes_and_a_stub_fails(task):
    from boxgym.judges import FinishedEpisode, UnitTestJudge
    from boxgym.sandboxes import FakeSandbox

    judge = UnitTestJudge()
    for content, passed in ((task.reference[0].arguments["content"], True), ("def nothing():\n    pass\n", False)):
        async with FakeSandbox() as sandbox:
            await sandbox.write_file("solution.py", content)
            assert (await judge.score(FinishedEpisode(task, sandbox))).passed is passed
