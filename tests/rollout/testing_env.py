"""A small configurable env and policies for the rollout tests (Gymnasium's testing_env idea)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from boxgym.errors import SandboxBroken
from boxgym.rollout import Completion, TaskRef


@dataclass
class Script:
    steps: int = 3  # terminate after this many steps
    reward: float = 1.0
    raise_at: int | None = None  # astep number (1-based) that raises RuntimeError
    broken_at: int | None = None  # astep number that raises SandboxBroken
    infra_info_at: int | None = None  # astep number that reports info["infra_failure"]
    hang_at: int | None = None  # astep number that never returns
    step_delay: float = 0.0


class ScriptedEnv:
    """Follows a Script; counts steps and remembers whether it was closed."""

    def __init__(self, script: Script, sandbox: Any = None) -> None:
        self.script = script
        self.sandbox = sandbox
        self.taken = 0
        self.resets = 0
        self.closed = False
        self.actions: list[Any] = []

    async def areset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        self.resets += 1
        return [{"role": "system", "content": "be brief"}, {"role": "user", "content": "task"}], {
            "tools": [{"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}]
        }

    async def astep(self, action: Any):
        self.taken += 1
        self.actions.append(action)
        s = self.script
        if s.step_delay:
            await asyncio.sleep(s.step_delay)
        else:
            await asyncio.sleep(0)
        if s.hang_at == self.taken:
            await asyncio.Event().wait()
        if s.raise_at == self.taken:
            raise RuntimeError("env bug")
        if s.broken_at == self.taken:
            raise SandboxBroken("container died")
        if s.infra_info_at == self.taken:
            return [], 0.0, False, False, {"infra_failure": True, "error": "judge unreachable"}
        done = self.taken >= s.steps
        obs = [{"role": "tool", "tool_call_id": "c", "content": f"step {self.taken}"}]
        return obs, s.reward if done else 0.0, done, False, {}

    async def aclose(self) -> None:
        self.closed = True


def factory(scripts: Callable[[TaskRef], Script] | Script, made: list[ScriptedEnv] | None = None):
    def make(task: TaskRef, sandbox: Any) -> ScriptedEnv:
        script = scripts(task) if callable(scripts) else scripts
        env = ScriptedEnv(script, sandbox)
        if made is not None:
            made.append(env)
        return env

    return make


class TokenPolicy:
    """Yields once per call; returns a tool call with engine-like tokens: the prompt is the whole
    history so far (so each call's prompt extends the previous prompt + completion)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls = 0
        self.active = 0
        self.max_active = 0
        self.history: dict[str, list[int]] = {}

    async def __call__(self, episode: Any) -> Completion:
        self.calls += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.active -= 1
        prompt = self.history.setdefault(episode.episode_id, [1, 2])
        prompt = prompt + [7]  # the env's observation, rendered
        sampled = [100 + episode.turn, 200 + episode.turn]
        self.history[episode.episode_id] = prompt + sampled
        return Completion(
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "noop", "arguments": "{}"}}]},
            prompt_token_ids=tuple(prompt),
            completion_token_ids=tuple(sampled),
            logprobs=(-0.5, -0.25),
        )


class CostlyEnv:
    """Three steps; each reports the sandbox's figures so far, the last a cost verdict like BoxEnv's."""

    def __init__(self, cost: float | None, cpu_per_step: float = 0.5, steps: int = 3) -> None:
        self.cost, self.cpu_per_step, self.steps = cost, cpu_per_step, steps
        self.taken = 0

    async def areset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        self.taken = 0
        return [{"role": "user", "content": "go"}], {}

    async def astep(self, action: Any):
        self.taken += 1
        done = self.taken >= self.steps
        info: dict[str, Any] = {
            "usage": {"tool_s": 0.25 * self.taken, "sandbox_cpu_s": self.cpu_per_step * self.taken,
                      "sandbox_peak_memory_mb": 40.0 + self.taken},
        }  # fmt: skip
        if done and self.cost is not None:
            info.update(cost=self.cost, cost_parts={"network": self.cost})
        return [{"role": "tool", "tool_call_id": "c", "content": "ok"}], 1.0 if done else 0.0, done, False, info

    async def aclose(self) -> None:
        pass


def costly(costs: dict[str | None, float | None], **kwargs: Any):
    return lambda task, sandbox: CostlyEnv(costs.get(task.task_id), **kwargs)
