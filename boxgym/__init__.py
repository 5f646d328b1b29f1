"""boxgym: a sandboxed environment gym for training LLM agents with RL.

``import boxgym`` is cheap: it imports no Docker, browser, GUI or Jupyter code
and starts nothing. Heavy pieces load when first used.
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
