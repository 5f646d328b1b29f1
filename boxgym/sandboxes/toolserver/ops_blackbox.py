"""Black-box programs: an external simulator that runs in the sandbox as its own long-lived
process and speaks JSON lines on its standard input and output.

The host opens a program once per sandbox and then sends it requests; the program (and
whatever it starts, a JVM for ScienceWorld) lives until the host closes it or the sandbox
stops. Operations (``sandbox.call("blackbox.<op>", args)``):

``open(name, argv=None, python=None, cwd=None, env=None, timeout=120)``
    Start the program ``name`` unless it runs: ``argv`` is a command in the image, ``python``
    is Python source run by the sandbox's own interpreter (``python3 -I -c SOURCE``), so a
    program shipped with a host package needs nothing in the image but its imports. Answers
    ``{"pid", "started", "start_s", "hello"}``: ``started`` is False when it already ran (with
    the same command), ``start_s`` the seconds from spawning it until its first line.
``request(name, message, timeout=60)``
    Write ``message`` as one JSON line, read one JSON line back: ``{"reply", "duration_s"}``.
    Requests to one program run one at a time, in the order they came.
``close(name)``
    End the program: its stdin is closed, and after a grace period its process group killed.

The program's side of the protocol: it writes one JSON value on a line when it is ready (its
*hello*), then answers every line it reads with exactly one line, and exits when its stdin
closes. What it writes on stderr is kept (the last few KiB) to explain a failure.

Who is at fault: the program's replies are answers, whatever they say (a simulator that
refuses a command says so in its reply). A program that does not start, exits, or passes a
request's deadline makes the tool unavailable (:class:`~.plugins.Unavailable`, an
infrastructure failure on the host; after a deadline the program is killed, since its
stream can no longer be trusted, and the next ``open`` starts it again). A reply that is not
one JSON line is a bug of the program. Asking for a program that is not open is refused.

Isolation: in a container the program runs as :data:`SIMULATOR_UID`, neither root nor the
agent, with no supplementary groups and in its own session. The agent's processes cannot
signal or trace it, read its memory or open its pipes (``/proc/<pid>/fd`` of another user
is closed to them), and what it writes is not theirs to change. A program that listens on
a socket (py4j on loopback TCP, for ScienceWorld) must authenticate its clients itself:
loopback is shared with the agent. In the in-process fake sandbox the program runs as the
host user, like everything there.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from .files import Refused
from .plugins import Unavailable
from .procs import exited, proc_stats

#: The identity black-box programs run as in a container: not root, not the agent (10001).
SIMULATOR_UID = SIMULATOR_GID = 10002
#: The longest line a program may answer with (a reply is one JSON value).
LINE_LIMIT = 16 * 1024 * 1024
#: How much of the program's stderr is kept to explain a failure.
STDERR_KEPT = 8 * 1024
#: Python source given as ``python`` travels as one argument: Linux caps one at 128 KiB.
PYTHON_SOURCE_LIMIT = 120 * 1024
#: After its stdin closes, how long a program has to exit before its process group is killed.
CLOSE_GRACE_S = 3.0
#: How long a killed program's group may take to die before closing goes on without it.
KILL_WAIT_S = 2.0

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class _Program:
    name: str
    command: list[str]
    proc: subprocess.Popen
    exited: asyncio.Future  # resolves when the process has exited and been reaped
    stdin: asyncio.StreamWriter
    stdout: asyncio.StreamReader
    started_at: float
    start_s: float = 0.0
    hello: Any = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    stderr: collections.deque[bytes] = field(default_factory=collections.deque)
    stderr_size: int = 0
    drain: asyncio.Task | None = None

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    def keep_stderr(self, chunk: bytes) -> None:
        self.stderr.append(chunk)
        self.stderr_size += len(chunk)
        while self.stderr_size > STDERR_KEPT and len(self.stderr) > 1:
            self.stderr_size -= len(self.stderr.popleft())

    def stderr_tail(self) -> str:
        text = b"".join(self.stderr)[-STDERR_KEPT:].decode("utf-8", "replace").strip()
        return f"; its stderr ends: {text[-2000:]}" if text else ""

    def describe_exit(self, when: str = "") -> str:
        code = self.proc.returncode
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with status {code}"
        return f"the program {self.name!r} {how}{' ' + when if when else ''}{self.stderr_tail()}"


class Plugin:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.programs: dict[str, _Program] = {}
        self._opening: dict[str, asyncio.Lock] = {}

    async def stop(self) -> None:
        for name in list(self.programs):
            await self._end(name)

    # -- operations ---------------------------------------------------------------

    async def op_open(
        self,
        name: str,
        argv: list[str] | None = None,
        python: str | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120.0,
    ) -> dict:
        command = _command(name, argv, python)
        _check_timeout(timeout)
        if env is not None and not (
            isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
        ):
            raise Refused("'env' must map strings to strings")
        if cwd is not None and not (isinstance(cwd, str) and os.path.isabs(cwd)):
            raise Refused("'cwd' must be an absolute path")
        async with self._opening.setdefault(name, asyncio.Lock()):
            program = self.programs.get(name)
            if program is not None and program.alive:
                if program.command != command:
                    raise Refused(f"the program {name!r} already runs another command; close it first")
                return _opened(program, started=False)
            if program is not None:
                await self._end(name)
            program = await self._spawn(name, command, cwd or "/", env or {})
            try:
                line = await self._read_line(program, timeout)
            except TimeoutError:
                await self._end(name, graceful=False)
                raise Unavailable(f"the program {name!r} did not say it was ready within {timeout:g}s") from None
            except EOFError:
                await self._end(name)
                raise Unavailable(program.describe_exit("before it was ready")) from None
            program.start_s = time.monotonic() - program.started_at
            program.hello = _parse(program, line)
            return _opened(program, started=True)

    async def op_request(self, name: str, message: Any, timeout: float = 60.0) -> dict:
        _check_timeout(timeout)
        program = self.programs.get(name)
        if program is None:
            raise Refused(f"the program {name!r} is not open; open it first")
        try:
            line = (json.dumps(message, ensure_ascii=False, allow_nan=False) + "\n").encode()
        except (TypeError, ValueError) as exc:
            raise Refused(f"the message cannot be sent as JSON: {exc}") from None
        async with program.lock:
            if not program.alive:
                await self._end(name, forget=False)
                raise Unavailable(program.describe_exit())
            start = time.monotonic()
            try:
                program.stdin.write(line)
                await program.stdin.drain()
                answer = await self._read_line(program, timeout)
            except (BrokenPipeError, ConnectionResetError, EOFError):
                # Kept: until it is opened again, every request hears why it is gone.
                await self._end(name, forget=False)
                raise Unavailable(program.describe_exit()) from None
            except TimeoutError:
                # A late answer would be read as the next request's: the stream is lost.
                await self._end(name, graceful=False)
                raise Unavailable(f"the program {name!r} did not answer within {timeout:g}s; it was stopped") from None
            return {"reply": _parse(program, answer), "duration_s": time.monotonic() - start}

    async def op_close(self, name: str) -> dict:
        program = self.programs.get(name)
        if program is None:
            return {"closed": False, "exit_code": None}
        await self._end(name)
        return {"closed": True, "exit_code": program.proc.returncode}

    # -- processes ------------------------------------------------------------------

    async def _read_line(self, program: _Program, timeout: float) -> bytes:
        """The program's next line; EOFError if it exited (a child of its may still hold the
        pipe open, so its exit counts, not only the end of the stream); TimeoutError."""
        read = asyncio.ensure_future(program.stdout.readline())
        try:
            done, _ = await asyncio.wait({read, program.exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if read not in done and program.exited in done:
                # What it wrote just before it exited may still be on its way through the pipe.
                done, _ = await asyncio.wait({read}, timeout=0.2)
            if read in done:
                try:
                    line = read.result()
                except (ValueError, asyncio.LimitOverrunError):
                    await self._end(program.name, graceful=False)
                    raise RuntimeError(f"the program {program.name!r} wrote a line over {LINE_LIMIT} bytes") from None
                if line.endswith(b"\n"):
                    return line
                raise EOFError  # the stream ended, with or without a last unfinished line
            if program.exited.done():
                raise EOFError
            raise TimeoutError
        finally:
            read.cancel()

    async def _spawn(self, name: str, command: list[str], cwd: str, env: dict[str, str]) -> _Program:
        identity: dict[str, Any] = {}
        if self.ctx.agent_uid != os.geteuid():  # a real sandbox: a user of its own (see the docstring)
            identity = {"user": SIMULATOR_UID, "group": SIMULATOR_GID, "extra_groups": []}
        full_env = {"PATH": _BASE_PATH, "LANG": "C.UTF-8", "HOME": "/tmp", **env}
        loop = asyncio.get_running_loop()
        try:
            # Popen and pipes on the loop, not asyncio's subprocess transport: that one waits for
            # each child on a thread of its own, which a sandbox out of pids could not start.
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=full_env,
                start_new_session=True,  # its own process group: closing it kills what it started too
                **identity,
            )
        except (OSError, ValueError) as exc:
            raise Unavailable(f"the program {name!r} cannot be started: {exc}") from None
        stdout = asyncio.StreamReader(limit=LINE_LIMIT, loop=loop)
        stderr = asyncio.StreamReader(loop=loop)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdout, loop=loop), proc.stdout)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stderr, loop=loop), proc.stderr)
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, proc.stdin)
        stdin = asyncio.StreamWriter(transport, protocol, None, loop)
        program = _Program(name, command, proc, exited(loop, proc), stdin, stdout, time.monotonic())
        program.drain = asyncio.ensure_future(_drain_stderr(program, stderr))
        self.programs[name] = program
        return program

    async def _end(self, name: str, *, forget: bool = True, graceful: bool = True) -> None:
        program = self.programs.pop(name, None) if forget else self.programs.get(name)
        if program is None:
            return
        with contextlib.suppress(OSError, RuntimeError):
            program.stdin.close()  # a program ends when its input does
        if program.alive and graceful:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(program.exited), CLOSE_GRACE_S)
        # Whatever it started in its session goes too (a JVM that outlived its parent).
        await _kill_group(program.proc.pid)
        await program.exited
        await _settle(program.drain)


def _command(name: str, argv: list[str] | None, python: str | None) -> list[str]:
    if not isinstance(name, str) or not _NAME.match(name):
        raise Refused(f"a program name must match {_NAME.pattern}, not {name!r}")
    if (argv is None) == (python is None):
        raise Refused("give exactly one of 'argv' (a command in the image) or 'python' (Python source)")
    if python is not None:
        if not isinstance(python, str) or "\0" in python:
            raise Refused("'python' must be Python source text")
        if len(python.encode()) > PYTHON_SOURCE_LIMIT:
            raise Refused(f"'python' is over {PYTHON_SOURCE_LIMIT} bytes; put the program in the image instead")
        return [sys.executable, "-I", "-c", python]
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and "\0" not in a for a in argv):
        raise Refused("'argv' must be a non-empty list of strings")
    return list(argv)


def _check_timeout(timeout: Any) -> None:
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout < 1e6:
        raise Refused("'timeout' must be a positive number of seconds")


def _opened(program: _Program, *, started: bool) -> dict:
    return {"pid": program.proc.pid, "started": started, "start_s": program.start_s, "hello": program.hello}


def _parse(program: _Program, line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        shown = line[:200].decode("utf-8", "replace")
        raise RuntimeError(f"the program {program.name!r} wrote a line that is not JSON: {shown!r}") from None


async def _kill_group(pgid: int) -> None:
    """SIGKILL the process group and wait (briefly) until none of it lives: the signal is
    delivered asynchronously, and a closed program must not leave its JVM running a moment longer."""
    deadline = time.monotonic() + KILL_WAIT_S
    while True:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        if not _group_living(pgid) or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.005)


def _group_living(pgid: int) -> bool:
    """Whether a process of group ``pgid`` is alive (a zombie is dead: it only waits to be reaped)."""
    return any(pgrp == pgid and state not in (b"Z", b"X") for _, state, _, pgrp in proc_stats())


async def _drain_stderr(program: _Program, stream: asyncio.StreamReader) -> None:
    while chunk := await stream.read(4096):
        program.keep_stderr(chunk)


async def _settle(task: asyncio.Task | None) -> None:
    """Let the stderr reader take what is left (the pipe is at EOF once the program's group is gone)."""
    if task is None:
        return
    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), 1.0)
    task.cancel()
