"""An in-process fake sandbox for unit tests of the code around sandboxes.

It is *not* isolated: commands run as host subprocesses inside a temporary
work directory. Use it to test toolsets, environments and judges without
Docker; tests of isolation itself use the real Docker sandbox.

``call`` operations are served by handlers passed in ``handlers`` and, for a name
with a dot (``ipython.execute``), by the tool server's own plugins
(:mod:`.toolserver.plugins`), run in this process on the host: a toolset is
unit-tested against the same operations it uses in Docker (what the plugin
needs, e.g. a Jupyter kernel, must then be installed on the host). Their errors
are translated exactly as the server and client translate them, and closing the
fake stops the plugins it started. An unknown operation is refused as the real
tool server refuses it. File
operations are the tool server's own (:class:`~.toolserver.files.FileOps`, on a
thread, as the agent), so every refusal (a FIFO, a file too large to read at
once, a read-only target, a bad name) is the same as in a real sandbox.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import SandboxClosed, SandboxRefused, SandboxTimeout
from .base import TRUNCATION_MARKER, ExecResult, FileInfo, Health, Sandbox, SandboxUsage
from .client import error_from_wire, payload_bytes
from .toolserver.files import FileOps

__all__ = ["FakeSandbox", "FakeProvider"]

Handler = Callable[[Mapping[str, Any]], Awaitable[Any] | Any]


def _cap(data: bytes, limit: int) -> tuple[str, bool]:
    if len(data) <= limit:
        return data.decode("utf-8", "replace"), False
    head = data[: limit // 2].decode("utf-8", "replace")
    tail = data[len(data) - limit // 2 :].decode("utf-8", "replace")
    marker = TRUNCATION_MARKER.format(omitted=len(data) - 2 * (limit // 2))
    return f"{head}\n{marker}\n{tail}", True


class FakeSandbox:
    """Host subprocesses in a temporary directory, behind the :class:`Sandbox` protocol."""

    def __init__(self, *, handlers: Mapping[str, Handler] | None = None, max_output: int = 64 * 1024) -> None:
        self._id = "fake-" + uuid.uuid4().hex[:12]
        self._root = Path(tempfile.mkdtemp(prefix="boxgym-fake-"))
        self._files = FileOps(str(self._root))
        self._handlers = dict(handlers or {})
        self._max_output = max_output
        self._closed = False
        self._started = time.monotonic()
        self._plugins: Any = None  # the tool server's plugins, loaded on the first plugin call

    @property
    def id(self) -> str:
        return self._id

    @property
    def workdir(self) -> str:
        return str(self._root)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def isolated(self) -> bool:
        return False  # the "agent" and "root" are both the host's user

    def _check(self) -> None:
        if self._closed:
            raise SandboxClosed(f"sandbox {self._id} is closed")

    def _path(self, path: str) -> Path:
        return Path(path) if os.path.isabs(path) else self._root / path

    async def _file_op(self, name: str, *args: Any) -> Any:
        from .toolserver.server import error_of  # the server's own translation of its errors

        self._check()
        try:
            return await asyncio.to_thread(getattr(self._files, name), *args)
        except Exception as exc:  # noqa: BLE001 - translated exactly as the server and client do
            raise error_from_wire(error_of(exc), f"{name} failed") from None

    async def exec(
        self,
        cmd: str | Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | str | None = None,
        timeout: float = 30.0,
        max_output: int | None = None,
        user: str = "agent",
    ) -> ExecResult:
        self._check()
        argv = ["bash", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        if not argv:
            raise SandboxRefused("empty command")
        full_env = {**os.environ, "HOME": str(self._root), **(env or {})}
        data = None if stdin is None else payload_bytes(stdin, "stdin")
        start = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=str(self._path(cwd or ".")),
                env=full_env,
                stdin=asyncio.subprocess.PIPE if data is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except (ValueError, UnicodeEncodeError) as exc:  # a NUL or a lone surrogate, as the server refuses it
            raise SandboxRefused(f"cannot start the command: {exc}", reason="bad_content") from None
        timed_out = False
        try:
            out, err = await asyncio.wait_for(proc.communicate(data), timeout)
        except TimeoutError:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = await proc.communicate()
        except asyncio.CancelledError:
            # Like the real server: a call given up on leaves nothing running.
            os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.shield(proc.communicate())
            raise
        limit = max_output or self._max_output
        stdout, out_cut = _cap(out, limit)
        stderr, err_cut = _cap(err, limit)
        return ExecResult(
            exit_code=None if timed_out else proc.returncode,
            stdout=stdout,
            stderr=stderr,
            duration_s=time.monotonic() - start,
            timed_out=timed_out,
            stdout_truncated=out_cut,
            stderr_truncated=err_cut,
        )

    async def read_file(self, path: str, *, max_bytes: int | None = None, offset: int = 0) -> bytes:
        result = await self._file_op("read_file", path, max_bytes, offset)
        return base64.b64decode(result["data_b64"])

    async def write_file(self, path: str, data: bytes | str, *, mode: int | None = None) -> None:
        self._check()
        raw = payload_bytes(data, f"the content for {path!r}")
        await self._file_op("write_file", path, base64.b64encode(raw).decode(), mode)

    async def list_dir(self, path: str = ".") -> list[FileInfo]:
        return [FileInfo(**entry) for entry in await self._file_op("list_dir", path)]

    async def stat(self, path: str) -> FileInfo:
        return FileInfo(**await self._file_op("stat", path))

    async def kill_agent_processes(self) -> int:
        self._check()
        return 0  # not isolated: the "agent" is the host's user, whose processes are not ours to kill

    async def health(self) -> Health:
        self._check()
        ops = ("exec", "read_file", "write_file", "list_dir", "stat", "health", *sorted(self._handlers))
        return Health(ok=True, uptime_s=time.monotonic() - self._started, operations=ops, server_version="fake")

    async def call(self, op: str, args: Mapping[str, Any] | None = None, *, timeout: float = 30.0) -> Any:
        self._check()
        handler = self._handlers.get(op)
        if handler is not None:
            result = handler(dict(args or {}))
            if asyncio.iscoroutine(result):
                result = await asyncio.wait_for(result, timeout)
            return result
        if "." not in op:
            raise SandboxRefused(f"unknown operation {op!r}")
        from .toolserver.server import error_of

        namespace, name = op.split(".", 1)
        try:
            async with asyncio.timeout(timeout):
                return await self._plugins_of().call(namespace, name, dict(args or {}))
        except TimeoutError:
            raise SandboxTimeout(f"{op} on {self._id} gave no answer within {timeout:.1f}s") from None
        except Exception as exc:  # noqa: BLE001 - translated exactly as the server and client do
            raise error_from_wire(error_of(exc), f"{op} failed") from None

    def _plugins_of(self) -> Any:
        if self._plugins is None:
            from .toolserver.plugins import Plugins
            from .toolserver.server import BASE_PATH, Context

            ctx = Context(
                workdir=str(self._root),
                agent_uid=os.geteuid(),  # the "agent" is the host's user: no identity to switch to
                agent_gid=os.getegid(),
                agent_home=str(self._root),
                max_output=self._max_output,
                base_env={"PATH": os.environ.get("PATH", BASE_PATH), "HOME": str(self._root), "LANG": "C.UTF-8"},
                files=self._files,
            )
            self._plugins = Plugins(ctx)
        return self._plugins

    async def usage(self) -> SandboxUsage | None:
        return None  # host subprocesses share the host's cgroup: nothing per sandbox to read

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._plugins is not None:
                await self._plugins.stop()
        finally:
            shutil.rmtree(self._root, ignore_errors=True)

    async def __aenter__(self) -> "FakeSandbox":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class FakeProvider:
    """A :class:`~boxgym.sandboxes.base.SandboxProvider` of fresh fakes; counts what it handed out."""

    lends = False

    def __init__(self, *, handlers: Mapping[str, Handler] | None = None) -> None:
        self._handlers = handlers
        self.handed_out: list[FakeSandbox] = []
        self._closed = False

    async def acquire(self) -> Sandbox:
        if self._closed:
            raise SandboxClosed("provider is closed")
        sandbox = FakeSandbox(handlers=self._handlers)
        self.handed_out.append(sandbox)
        return sandbox

    def __deepcopy__(self, memo: dict) -> FakeProvider:
        # gym.make deep-copies a spec's kwargs (check_env makes a second env from the spec): the
        # copy is a fresh provider of the same fakes, not copies of the live sandboxes handed out,
        # whose plugins hold processes and connections (a browser, a kernel).
        return FakeProvider(handlers=self._handlers)

    async def aclose(self) -> None:
        self._closed = True
        for sandbox in self.handed_out:
            await sandbox.aclose()
