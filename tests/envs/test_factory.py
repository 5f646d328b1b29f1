"""EnvFactory: one env per episode for the rollout manager, over its sandbox, sharing a curriculum."""

from __future__ import annotations

import types

import pytest

from boxgym.envs import EnvFactory, GivenSandbox, reference_messages
from boxgym.errors import SandboxClosed
from boxgym.sandboxes import FakeProvider, FakeSandbox


def rollout_task(env_id, seed=0, options=None):
    return types.SimpleNamespace(task_id="t", env_id=env_id, seed=seed, options=options)


async def test_envs_run_over_the_managers_sandbox_and_share_a_curriculum():
    factory = EnvFactory()
    sandboxes = []
    for seed in range(3):
        sandbox = FakeSandbox()
        sandboxes.append(sandbox)
        env = factory(rollout_task("boxgym/SQL-v0"), sandbox)
        assert env.spec.id == "boxgym/SQL-v0"
        _, info = await env.areset(seed=seed)
        task = env.tasks.get(info["task_id"])
        for message in reference_messages(task):
            _, reward, terminated, _, info = await env.astep(message)
        assert reward == 1.0 and terminated and info["reward_parts"] == {}
        await env.aclose()
    # Lent sandboxes belong to the manager, which closes them after judging: the env leaves them open.
    assert not any(sb.closed for sb in sandboxes)
    assert factory.curriculum("boxgym/SQL-v0").state().history == {0: [True, True, True]}
    await factory.aclose()


async def test_without_a_sandbox_the_factorys_kwargs_decide():
    provider = FakeProvider()
    factory = EnvFactory(provider=provider)
    env = factory(rollout_task("null"), None)  # not a boxgym id: the default one
    assert env.spec.id == "boxgym/Code-v0"
    await env.areset(seed=1)
    await env.aclose()
    assert len(provider.handed_out) == 1 and not provider._closed


async def test_a_given_sandbox_is_handed_out_once():
    async with FakeSandbox() as sandbox:
        provider = GivenSandbox(sandbox)
        assert await provider.acquire() is sandbox
        with pytest.raises(SandboxClosed):
            await provider.acquire()
        await provider.aclose()
        assert not sandbox.closed


async def test_a_task_ref_runs_the_task_it_names_through_the_manager(tmp_path):
    from boxgym.rollout import CallablePolicy, RolloutManager, TaskRef
    from boxgym.trajectories import EpisodeStart, StepRecord, read_records

    wanted = ["code/d1/s7", "code/d3/s2", "code/d0/s11"]
    prompts: list[str] = []

    def policy(messages, tools):
        prompts.append(messages[1]["content"])
        return {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c0", "type": "function", "function": {"name": "submit", "arguments": "{}"}}]}

    factory = EnvFactory(provider=FakeProvider())
    async with RolloutManager(factory, CallablePolicy(policy), run_dir=tmp_path) as manager:
        results = await manager.collect([TaskRef(task_id, "boxgym/Code-v0") for task_id in wanted])
    await factory.aclose()
    tasks = factory(rollout_task("boxgym/Code-v0"), FakeSandbox()).tasks
    assert sorted(prompts) == sorted(tasks.get(task_id).prompt for task_id in wanted)
    assert sorted(r.task.task_id for r in results) == sorted(wanted)
    # The env records under the manager's episode id: the steps' info carries no id of its own.
    records = list(read_records(tmp_path))
    starts = {r.episode_id for r in records if isinstance(r, EpisodeStart)}
    assert starts == {r.episode_id for r in results}
    assert {r.episode_id for r in records if isinstance(r, StepRecord)} == starts


def test_the_manager_writes_the_records_so_an_env_it_builds_takes_no_writer(tmp_path):
    from boxgym.trajectories import TrajectoryWriter

    with TrajectoryWriter(tmp_path) as writer, pytest.raises(TypeError, match="writer"):
        EnvFactory(writer=writer)


async def test_envs_of_ids_with_different_images_get_the_shared_pool_of_their_own_image():
    from boxgym.envs.defaults import SharedPool

    factory = EnvFactory()
    sql = factory(rollout_task("boxgym/SQL-v0"), None)
    analysis = factory(rollout_task("boxgym/DataAnalysis-v0"), None)
    again = factory(rollout_task("boxgym/SQL-v0"), None)
    pools = [env.provider for env in (sql, analysis, again)]
    assert all(isinstance(pool, SharedPool) for pool in pools)
    assert (pools[0].image, pools[0].warm) == ("slim", ())
    assert (pools[1].image, pools[1].warm) == ("jupyter", ("ipython.ready",))
    assert pools[2] is pools[0]
    await factory.aclose()
