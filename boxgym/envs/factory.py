"""Building one env per episode, for the rollout manager.

The manager calls ``factory(task_ref, sandbox)`` for every episode
(:data:`boxgym.rollout.MakeEnv`), where ``task_ref.env_id`` names a
registered id and ``sandbox`` is one it acquired itself, or ``None``.
:class:`EnvFactory` builds a :class:`~boxgym.envs.core.BoxEnv` for it:

* over that sandbox (a :class:`GivenSandbox` provider that hands it out once;
  the env closes it when the episode ends, and closing twice is harmless), or,
  without one, over the factory's own handle on the process's shared pool of
  the env's image (``slim``; ``desktop`` for ``boxgym/Desktop-v0``: one pool per
  image, so a run that mixes ids gives each its own);
* with one curriculum per env id, shared by every env the factory builds, so
  adaptive difficulty learns across episodes rather than starting over in each.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

from ..errors import SandboxClosed
from ..sandboxes.base import Sandbox
from .core import BoxEnv
from .defaults import SharedPool
from .difficulty import Curriculum

__all__ = ["EnvFactory", "GivenSandbox"]


class GivenSandbox:
    """A provider of exactly one sandbox, which someone else acquired and closes (``lends``)."""

    lends = True  # the env leaves closing the sandbox to its owner

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox: Sandbox | None = sandbox

    async def acquire(self) -> Sandbox:
        sandbox, self._sandbox = self._sandbox, None
        if sandbox is None:
            raise SandboxClosed("this provider held one sandbox and has handed it out")
        return sandbox

    async def aclose(self) -> None:
        self._sandbox = None  # the sandbox belongs to whoever acquired it


class EnvFactory:
    """``factory(task, sandbox) -> BoxEnv``; ``kwargs`` go to every env (see :mod:`boxgym.envs.make`)."""

    def __init__(self, *, default_env_id: str = "boxgym/Code-v0", **kwargs: Any) -> None:
        if "writer" in kwargs:
            # One writer per run: the manager records every step (with the model call's id and
            # timing); an env writing too would record each step twice.
            raise TypeError("EnvFactory takes no writer: the rollout manager writes the records (run_dir=)")
        self.default_env_id = default_env_id
        self._kwargs = kwargs
        self._curricula: dict[str, Curriculum] = {}
        self._pools: dict[tuple[str, int, tuple[str, ...]], SharedPool] = {}  # (image, size, warm) -> the handle

    def __call__(self, task: Any, sandbox: Sandbox | None) -> BoxEnv:
        env_id = getattr(task, "env_id", None)
        if not isinstance(env_id, str) or not env_id.startswith("boxgym/"):
            env_id = self.default_env_id
        spec = gym.spec(env_id)
        kwargs = {**spec.kwargs, **self._kwargs}
        if sandbox is not None:
            kwargs["provider"] = GivenSandbox(sandbox)
        elif "provider" not in kwargs:
            # One shared pool per image (and warm-up): envs of several ids may need different images.
            key = (kwargs.pop("image", "slim"), kwargs.pop("pool_size", 2), tuple(kwargs.pop("warm", ())))
            if key not in self._pools:
                self._pools[key] = SharedPool(*key)
            kwargs["provider"] = self._pools[key]
        kwargs["owns_provider"] = False
        if env_id in self._curricula:
            kwargs["curriculum"] = self._curricula[env_id]
        env = load_env_creator(spec.entry_point)(**kwargs)
        env.spec = spec
        self._curricula.setdefault(env_id, env.curriculum)
        return env

    def curriculum(self, env_id: str) -> Curriculum | None:
        """The curriculum shared by this factory's envs of ``env_id`` (to inspect, save or restore)."""
        return self._curricula.get(env_id)

    async def aclose(self) -> None:
        """Release the factory's handles on the shared pools, if it took any. Idempotent."""
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()
