"""Sandboxes: one hardened container per episode, reached through an in-container tool server.

The protocol (:class:`Sandbox`, :class:`SandboxProvider`) and the fake import
eagerly; the Docker implementation and the pool load on first use.
"""

from __future__ import annotations

from typing import Any

from .base import READ_LIMIT, REFUSALS, WRITE_LIMIT, ExecResult, FileInfo, Health, Sandbox, SandboxProvider, SandboxUsage
from .config import AGENT_UID, WORKDIR, SandboxDeadlines, Hardening, ResourceLimits, SandboxSpec
from .fake import FakeProvider, FakeSandbox
from .hosts import DockerHost, TLSFiles

__all__ = [
    "AGENT_UID",
    "WORKDIR",
    "SandboxDeadlines",
    "DockerEngine",
    "DockerHost",
    "DockerSandbox",
    "ExecResult",
    "FakeProvider",
    "FakeSandbox",
    "FileInfo",
    "Hardening",
    "Health",
    "READ_LIMIT",
    "REFUSALS",
    "ResourceLimits",
    "Sandbox",
    "SandboxPool",
    "SandboxProvider",
    "SandboxSpec",
    "SandboxUsage",
    "TLSFiles",
    "WRITE_LIMIT",
]

_LAZY = {
    "DockerEngine": "boxgym.sandboxes.engine",
    "DockerSandbox": "boxgym.sandboxes.docker",
    "SandboxPool": "boxgym.sandboxes.pool",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
