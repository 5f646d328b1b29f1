"""The host's handle on a black-box program in a sandbox (the ``blackbox`` tool-server plugin).

A :class:`ProgramSpec` says what runs: a command in the image (``argv``) or Python source that
the sandbox's own interpreter runs (``python``; :meth:`ProgramSpec.python_file` reads it from a
file beside your code, so the same program runs in Docker and in the fake sandbox).
:class:`Program` opens it in one sandbox (once: the process, and a JVM or whatever it starts,
lives until the sandbox closes) and sends it requests. The program's protocol, its identity in
the sandbox and who is at fault for what are in :mod:`boxgym.sandboxes.toolserver.ops_blackbox`.

Errors pass through as the sandbox raises them: :class:`~boxgym.errors.ToolUnavailable` (the
program does not start, died or passed a deadline: infrastructure),
:class:`~boxgym.errors.ToolServerError` (it answered something that is not a JSON line: a bug),
:class:`~boxgym.errors.SandboxRefused` (the request was malformed: a bug of the caller).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..sandboxes.base import Sandbox

__all__ = ["Opened", "Program", "ProgramSpec"]

#: Seconds the host waits beyond a plugin-side deadline before it gives up on the call itself:
#: the plugin's own answer (it stopped the program, it is unavailable) should come first.
_MARGIN_S = 15.0


@dataclass(frozen=True, slots=True)
class ProgramSpec:
    """What to run, and how long it may take to start and to answer."""

    name: str
    argv: tuple[str, ...] | None = None
    python: str | None = None
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    start_timeout: float = 120.0
    request_timeout: float = 60.0

    def __post_init__(self) -> None:
        if (self.argv is None) == (self.python is None):
            raise ValueError("a ProgramSpec needs exactly one of argv (a command in the image) or python (source)")

    @classmethod
    def python_file(cls, name: str, path: str | Path, **kwargs: Any) -> "ProgramSpec":
        """A program whose Python source is the file at ``path`` (read now)."""
        return cls(name, python=Path(path).read_text(encoding="utf-8"), **kwargs)

    def open_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"name": self.name, "timeout": self.start_timeout}
        if self.argv is not None:
            args["argv"] = list(self.argv)
        else:
            args["python"] = self.python
        if self.cwd is not None:
            args["cwd"] = self.cwd
        if self.env:
            args["env"] = dict(self.env)
        return args


@dataclass(frozen=True, slots=True)
class Opened:
    """The program runs: ``started`` says whether this open started it (else it already ran),
    ``start_s`` how long it took from its start until it said it was ready, ``hello`` what it said."""

    pid: int
    started: bool
    start_s: float
    hello: Any


class Program:
    """One program in one sandbox; the sandbox belongs to the caller."""

    def __init__(self, sandbox: Sandbox, spec: ProgramSpec) -> None:
        self.sandbox = sandbox
        self.spec = spec

    async def open(self) -> Opened:
        """Start the program unless it runs (idempotent; cheap when it runs)."""
        result = await self.sandbox.call(
            "blackbox.open", self.spec.open_args(), timeout=self.spec.start_timeout + _MARGIN_S
        )
        return Opened(int(result["pid"]), bool(result["started"]), float(result["start_s"]), result["hello"])

    async def request(self, message: Any, *, timeout: float | None = None) -> Any:
        """Send ``message`` and return the program's reply."""
        timeout = self.spec.request_timeout if timeout is None else timeout
        result = await self.sandbox.call(
            "blackbox.request", {"name": self.spec.name, "message": message, "timeout": timeout},
            timeout=timeout + _MARGIN_S,
        )
        return result["reply"]

    async def close(self) -> None:
        """End the program (its process group included); closing a closed one is harmless."""
        await self.sandbox.call("blackbox.close", {"name": self.spec.name})
