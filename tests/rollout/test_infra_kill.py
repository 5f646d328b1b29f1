"""A real episode's container killed from outside while the rollout manager drives it: an
infrastructure failure whose recorded error names the cause, retried on a fresh sandbox."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from boxgym.rollout import Completion, Outcome, Retries, RolloutConfig, RolloutManager, TaskRef
from boxgym.trajectories import EndReason, EpisodeEnd, read_records

pytestmark = pytest.mark.docker

TASK_ID = "shell/d0/s1"


class KillsItsFirstSandbox:
    """Replays the task's reference solution; on the first attempt's first call it kills the
    episode's container with ``docker kill``, as an outside fault would, and acts anyway."""

    def __init__(self, reference: list[dict[str, Any]]) -> None:
        self.reference = reference
        self.killed: list[str] = []

    async def __call__(self, ep: Any) -> Completion:
        if not self.killed:
            self.killed.append(ep.sandbox.id)
            kill = await asyncio.create_subprocess_exec(
                "docker", "kill", ep.sandbox.id, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
            )
            _, err = await kill.communicate()
            assert kill.returncode == 0, err
        turn = sum(1 for m in ep.messages if m.get("role") == "assistant")
        if turn < len(self.reference):
            return Completion(self.reference[turn])
        return Completion({"role": "assistant", "content": "done"})


async def test_a_container_killed_from_outside_is_a_retried_infrastructure_failure_that_names_its_cause(tmp_path):
    from boxgym.envs import EnvFactory, reference_messages
    from boxgym.envs.suites import shell
    from boxgym.sandboxes import SandboxPool, SandboxSpec

    policy = KillsItsFirstSandbox(reference_messages(shell.task_set().get(TASK_ID)))
    factory = EnvFactory()
    config = RolloutConfig(retries=Retries(episode_attempts=2))
    try:
        async with SandboxPool(SandboxSpec(image=os.environ.get("BOXGYM_TEST_IMAGE", "slim")), size=1) as pool:
            async with RolloutManager(factory, policy, provider=pool, config=config, run_dir=tmp_path) as manager:
                [result] = await manager.collect([TaskRef(TASK_ID, "boxgym/Shell-v0")])
    finally:
        await factory.aclose()

    assert len(policy.killed) == 1
    assert result.attempts == 2 and result.outcome is Outcome.TERMINATED and result.reward == 1.0, result.error
    ends = [r for r in read_records(tmp_path) if isinstance(r, EpisodeEnd)]
    assert [(e.outcome, e.reason) for e in ends] == [
        (Outcome.INFRA_FAILURE, EndReason.INFRA),
        (Outcome.TERMINATED, EndReason.SUBMITTED),
    ]
    failed = ends[0]
    assert failed.reward is None
    # The error is the sandbox's own diagnosis, not the infra_failure flag's "True": killed from
    # outside (with SIGKILL's 137 when the container could still be read, else gone).
    assert failed.error is not None and failed.error.startswith("SandboxBroken"), failed.error
    assert "from outside" in failed.error, failed.error
