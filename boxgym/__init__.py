"""boxgym: a sandboxed environment gym for training LLM agents with RL.

``import boxgym`` is cheap: it imports no Docker, browser, GUI or Jupyter code
and starts nothing. Heavy pieces load when first used. It registers the ``boxgym/`` ids with
Gymnasium (now if Gymnasium is loaded, else when it is), so ``import boxgym`` then
``gym.make("boxgym/Code-v0")`` works as it does for other Gymnasium plugins.
"""

from __future__ import annotations

from .errors import (
    BoxgymError,
    EngineError,
    EngineUnavailable,
    SandboxBroken,
    SandboxClosed,
    SandboxError,
    SandboxRefused,
    SandboxTimeout,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "BoxgymError",
    "EngineError",
    "EngineUnavailable",
    "SandboxBroken",
    "SandboxClosed",
    "SandboxError",
    "SandboxRefused",
    "SandboxTimeout",
]

from ._registering import register_when_gymnasium_loads

register_when_gymnasium_loads()
del register_when_gymnasium_loads
