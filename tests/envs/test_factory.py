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
