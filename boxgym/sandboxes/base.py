"""The sandbox contract: what every sandbox implementation provides.

A sandbox is one isolated machine for one episode. Code around it (toolsets,
environments, judges) sees only this protocol; the Docker implementation lives
in :mod:`boxgym.sandboxes.docker` and an in-process fake for unit tests in
:mod:`boxgym.sandboxes.fake`.

Paths: a relative path is resolved against :attr:`Sandbox.workdir`, the one
writable directory that the agent owns. Code that must work against both the
real sandbox and the fake uses relative paths or ``sandbox.workdir``.

Lifecycle: a sandbox is created ready, used, and closed once. ``aclose`` is
idempotent and always releases the container, even when the graceful path
fails. After ``aclose`` every operation raises :class:`~boxgym.errors.SandboxClosed`;
if the container died under the caller, operations raise
:class:`~boxgym.errors.SandboxBroken`, or :class:`~boxgym.errors.SandboxWrecked`
when the agent's own doing made it unusable (the rule: :mod:`boxgym.errors`).
A request that cannot be served as asked raises
:class:`~boxgym.errors.SandboxRefused` with a ``reason`` (:data:`REFUSALS`;
docs/security.md says what each means).

Extension: toolsets that need more than commands and files (IPython, browser,
GUI) call :meth:`Sandbox.call` with an operation name such as
``"ipython.execute"``; the in-container tool server dispatches it to a handler.
The transport never changes for a new handler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from .toolserver.protocol import READ_LIMIT, REFUSALS, TRUNCATION_MARKER, WRITE_LIMIT

__all__ = [
    "ExecResult",
    "FileInfo",
    "Health",
    "READ_LIMIT",
    "REFUSALS",
    "Sandbox",
    "SandboxProvider",
    "SandboxUsage",
    "TRUNCATION_MARKER",
    "WRITE_LIMIT",
]


FileKind = Literal["file", "dir", "symlink", "other"]
User = Literal["agent", "root"]


@dataclass(frozen=True, slots=True)
class ExecResult:
    """The outcome of one command.

    ``exit_code`` is the process's exit status, or ``-N`` when signal N killed
    it; it is ``None`` only when the command timed out (``timed_out``), in
    which case its whole process tree was killed.
    """

    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def truncated(self) -> bool:
        return self.stdout_truncated or self.stderr_truncated


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What ``stat`` and ``list_dir`` say about one path."""

    path: str
    name: str
    kind: FileKind
    size: int
    mode: int
    mtime: float


@dataclass(frozen=True, slots=True)
class Health:
    """The tool server's answer to a health check.

    ``ok`` is False when the sandbox cannot serve what it is for, and ``problems`` says why (the
    pids limit reached: no command can start). ``pids``/``pids_max`` count the container's
    processes and threads; ``oom_kills`` the memory limit's kills so far (None where unknown).
    """

    ok: bool
    uptime_s: float
    operations: tuple[str, ...] = field(default_factory=tuple)
    server_version: str = ""
    problems: tuple[str, ...] = ()
    pids: int | None = None
    pids_max: int | None = None
    oom_kills: int | None = None


@dataclass(frozen=True, slots=True)
class SandboxUsage:
    """What a sandbox has used since it started, measured from outside it (the agent cannot
    touch the figures): CPU-seconds of every process in it, and the peak of its memory."""

    cpu_s: float
    peak_memory_bytes: int | None = None  # None where the host does not keep a peak

    @property
    def peak_memory_mb(self) -> float | None:
        return None if self.peak_memory_bytes is None else self.peak_memory_bytes / 2**20


@runtime_checkable
class Sandbox(Protocol):
    """One isolated machine for one episode."""

    @property
    def id(self) -> str:
        """A stable identifier (the container id for Docker sandboxes)."""

    @property
    def workdir(self) -> str:
        """The absolute path of the agent's writable work directory."""

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has been called."""

    @property
    def isolated(self) -> bool:
        """True when the agent's uid is kept apart from root's: the agent can neither touch
        root's files nor signal root's processes, and killing every process of the agent's uid
        touches nothing outside this sandbox. False for the in-process fake, whose "agent" and
        "root" are the host's user (judges then skip what would reach the host)."""

    async def exec(
        self,
        cmd: str | Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | str | None = None,
        timeout: float = 30.0,
        max_output: int | None = None,
        user: User = "agent",
    ) -> ExecResult:
        """Run a command: a string goes through ``bash -c``, a sequence is argv.

        A command that passes ``timeout`` has its whole process tree killed and
        returns with ``timed_out=True``; it does not raise. Output past
        ``max_output`` bytes per stream is cut and marked.
        """

    async def read_file(self, path: str, *, max_bytes: int | None = None, offset: int = 0) -> bytes:
        """Read a regular file from ``offset``, at most ``max_bytes``. Refused
        (:class:`~boxgym.errors.SandboxRefused`, ``reason="too_large"``) when more than
        :data:`READ_LIMIT` bytes would come back: read such a file in parts."""

    async def write_file(self, path: str, data: bytes | str, *, mode: int | None = None) -> None:
        """Write a regular file (parents are created), owned by the agent user; at most
        :data:`WRITE_LIMIT` bytes."""

    async def list_dir(self, path: str = ".") -> list[FileInfo]: ...

    async def stat(self, path: str) -> FileInfo:
        """Raise :class:`FileNotFoundError` if ``path`` does not exist."""

    async def health(self) -> Health: ...

    async def kill_agent_processes(self) -> int:
        """Kill every process of the agent's uid (judges do before they look); returns how many.
        Raises :class:`~boxgym.errors.SandboxWrecked` if they cannot be killed. A sandbox that is
        not :attr:`isolated` kills nothing (its agent is the host's user)."""

    async def call(self, op: str, args: Mapping[str, Any] | None = None, *, timeout: float = 30.0) -> Any:
        """Invoke a named tool-server operation (the seam for richer toolsets)."""

    async def usage(self) -> SandboxUsage | None:
        """What the sandbox has used so far, read from outside it (a Docker sandbox: its
        cgroup, :mod:`boxgym.sandboxes.cgroups`); None where it cannot be measured (the fake,
        a closed sandbox, cgroup files not visible from this process). Never raises."""

    async def aclose(self) -> None:
        """Release the sandbox. Idempotent; never raises for an already-dead sandbox."""

    async def __aenter__(self) -> "Sandbox": ...

    async def __aexit__(self, *exc_info: object) -> None: ...


@runtime_checkable
class SandboxProvider(Protocol):
    """Hands out fresh sandboxes: a warm pool, or a factory of fakes in tests.

    Each sandbox it returns is new (never used by an earlier episode) and owned
    by the caller, who must ``aclose`` it, unless the provider ``lends`` it.
    """

    #: True when the sandboxes it hands out belong to someone else, who closes them (the rollout
    #: manager lends the sandbox it acquired to the episode's env, and judges in it after the env
    #: is done); an env then leaves its sandbox open at the end of an episode.
    lends: bool

    async def acquire(self) -> Sandbox: ...

    async def aclose(self) -> None: ...
