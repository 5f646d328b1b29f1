"""The sync env from several threads, as docs/tasks.md describes it: one env per thread, episodes
overlapping on boxgym's one background loop, every env of one image and pool size on one warm pool."""

from __future__ import annotations

import os
import threading
import time

import gymnasium as gym
import pytest

import boxgym.envs  # noqa: F401 - registers the ids
from boxgym.envs import defaults, reference_messages
from boxgym.envs.examples import CODE_TASKS
from boxgym.toolsets.calls import ToolCall

pytestmark = pytest.mark.docker

IMAGE = os.environ.get("BOXGYM_TEST_IMAGE", "slim")
THREADS = 4


def sleep_call(seconds: float) -> dict:
    return {"role": "assistant", "content": "", "tool_calls": [ToolCall("s", "bash", {"command": f"sleep {seconds}"}).to_openai()]}


def test_threads_with_one_env_each_run_their_episodes_at_once_on_one_pool():
    results: dict[int, tuple[float, float, float, int]] = {}
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        env = gym.make("boxgym/Code-v0", tasks=str(CODE_TASKS), image=IMAGE, pool_size=THREADS)
        try:
            task_id = ("fizzbuzz", "word-count")[index % 2]
            env.reset(options={"task_id": task_id})
            started = time.monotonic()
            env.step(sleep_call(1))
            slept = (started, time.monotonic())
            pools = len(defaults._pools)
            for message in reference_messages(env.unwrapped.tasks.get(task_id)):
                _, reward, terminated, _, info = env.step(message)
            assert terminated and not info["infra_failure"], info
            results[index] = (*slept, reward, pools)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            errors.append(exc)
        finally:
            env.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert sorted(results) == list(range(THREADS))
    assert [reward for _, _, reward, _ in results.values()] == [1.0] * THREADS
    # Every thread's one-second command ran at the same time as every other's.
    assert max(start for start, _, _, _ in results.values()) < min(end for _, end, _, _ in results.values())
    assert {pools for _, _, _, pools in results.values()} == {1}  # one shared pool for them all
    assert defaults._pools == {}  # the last env's close closed it
