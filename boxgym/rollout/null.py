"""A null environment and an instant policy: the scheduler with nothing else in it.

For benchmarks of the manager's own overhead and for tests of its control flow.
Each env step and each policy call yields to the event loop exactly once, like a
real one that awaits I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from .types import Completion, TaskRef

__all__ = ["InstantPolicy", "NullEnv"]

_SYSTEM = {"role": "system", "content": "null"}
_USER = {"role": "user", "content": "go"}
_OBS: list[dict[str, Any]] = [{"role": "tool", "tool_call_id": "0", "content": "ok"}]
_INFO: dict[str, Any] = {}


class NullEnv:
    """Terminates after ``steps`` steps with reward 1; shares its observation objects between
    instances so 100k of them cost almost nothing."""

    __slots__ = ("closed", "steps", "taken")

    def __init__(self, steps: int = 10) -> None:
        self.steps = steps
        self.taken = 0
        self.closed = False

    @classmethod
    def factory(cls, steps: int = 10) -> Any:
        def make(task: TaskRef, sandbox: Any) -> NullEnv:
            return cls(steps)

        return make

    async def areset(
        self, *, seed: int | None = None, options: Mapping[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        self.taken = 0
        return [_SYSTEM, _USER], _INFO

    async def astep(self, action: Any) -> tuple[list[dict[str, Any]], float, bool, bool, dict[str, Any]]:
        await asyncio.sleep(0)
        self.taken += 1
        done = self.taken >= self.steps
        return _OBS, 1.0 if done else 0.0, done, False, _INFO

    async def aclose(self) -> None:
        self.closed = True


class InstantPolicy:
    """Answers every call with the same completion after one yield to the loop."""

    __slots__ = ("calls", "completion")

    def __init__(self, completion: Completion | None = None) -> None:
        self.completion = completion or Completion(
            {"role": "assistant", "content": None, "tool_calls": [{"id": "0", "type": "function", "function": {"name": "noop", "arguments": "{}"}}]},
            prompt_token_ids=(1, 2, 3),
            completion_token_ids=(4, 5),
            logprobs=(-0.1, -0.2),
        )
        self.calls = 0

    async def __call__(self, episode: Any) -> Completion:
        await asyncio.sleep(0)
        self.calls += 1
        return self.completion
