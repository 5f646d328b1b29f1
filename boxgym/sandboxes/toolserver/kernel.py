"""One ipykernel process, started as the agent and driven through jupyter-client's messages.

The kernel is started the way the server starts the agent's commands (:func:`.procs.spawn_args`:
as the agent's uid, a child subreaper, the OOM killer's first choice, SCHED_IDLE), so that a
cell's forks stay in its tree, its memory counts in the container's limit, and the agent
cannot starve the server through it. It listens on abstract Unix sockets
(``ipc://@boxgym-ipython-<random>-N``): no file the agent could plant or remove, no TCP port it
could take first, and a name chosen at each start that nothing can know before. The
connection key and ports are the server's own (given on the kernel's command line); the
connection file the kernel writes is never read back.

The server's sockets refuse messages over :data:`MAX_MESSAGE` bytes and queue only a few, so
a cell that prints a gigabyte costs the server a bounded amount of memory: ZeroMQ drops the
connection that carried the message, which :class:`Kernel` sees (a socket monitor) and repairs
(a new IOPub socket), telling the cell that output was lost.

A kernel is asked for nothing but ``execute_request``, ``kernel_info_request`` and
``shutdown_request``; everything that arrives is matched to the cell that asked by its parent
header, and dropped otherwise (output of background threads after their cell ended).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.session import Session

from . import cgroup, procs
from .cell_output import CellOutput

__all__ = ["Cell", "Kernel", "KernelStartFailed", "Launch"]

#: Messages over this size are refused (the connection that carried one is dropped and rebuilt).
MAX_MESSAGE = 16 * 1024 * 1024
#: Messages the server queues per socket before ZeroMQ pushes back on the kernel.
QUEUE_MESSAGES = 8
#: After the reply, how long the IOPub ``idle`` (the end of the cell's output) may take to follow.
IDLE_AFTER_REPLY_S = 1.0
#: How often a starting kernel is asked whether it is ready.
PING_EVERY_S = 0.1
#: Run in the kernel as it starts: the cap on a cell's output (see that file).
STARTUP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel_startup.py")
#: How much of the kernel's own stderr (not the cells': the kernel captures those) is kept.
STDERR_TAIL = 4096
_EXECUTE = {"silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}


class KernelStartFailed(Exception):
    """The kernel did not start. ``by_agent``: what the agent did explains it (its processes
    killed the kernel, filled the memory or the pids); otherwise the tool is unavailable."""

    def __init__(self, message: str, *, by_agent: bool) -> None:
        super().__init__(message)
        self.by_agent = by_agent


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start a kernel: as whom, where, with which environment."""

    cwd: str
    env: dict[str, str]
    uid: int | None
    gid: int | None
    python: str = sys.executable


class Cell:
    """One ``execute_request`` in flight: its output so far, its reply, and ``finished`` once the
    reply and the end of its output (IOPub's ``idle``) are both in."""

    def __init__(self, msg_id: str, output: CellOutput) -> None:
        self.loop = asyncio.get_running_loop()
        self.msg_id = msg_id
        self.output = output
        self.reply: dict[str, Any] | None = None
        self.idle = False
        self.finished: asyncio.Future[None] = self.loop.create_future()
        self._grace: asyncio.TimerHandle | None = None

    def replied(self, content: dict[str, Any]) -> None:
        if self.reply is not None:
            return
        self.reply = content
        if self.idle:
            self._finish()
        else:
            # Should the idle be lost (a dropped connection), the cell ends without it, soon.
            self._grace = self.loop.call_later(IDLE_AFTER_REPLY_S, self._finish)

    def went_idle(self) -> None:
        self.idle = True
        if self.reply is not None:
            self._finish()

    def _finish(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
        if not self.finished.done():
            self.finished.set_result(None)


class _StderrTail:
    """Reads the kernel's stderr pipe from the event loop, keeping its last bytes: a pipe nobody
    reads would block the kernel once full."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self.loop, self.fd, self.data = loop, fd, b""
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            self.data = (self.data + chunk)[-STDERR_TAIL:]
        else:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1

    def text(self) -> str:
        return self.data.decode("utf-8", "replace").strip()


class Kernel:
    """A running kernel and the server's sockets to it; built by :meth:`start`."""

    def __init__(self, proc: subprocess.Popen, name: str, key: bytes, stderr: _StderrTail) -> None:
        self.proc = proc
        self.name = name
        self.session = Session(key=key, signature_scheme="hmac-sha256", username="boxgym")
        self.context = zmq.asyncio.Context()
        self.exited = procs.exited(asyncio.get_running_loop(), proc)
        self.stderr = stderr
        self.oom_kills_at_start = cgroup.usage().oom_kills
        self.cell: Cell | None = None
        self.lost_connection: str | None = None  # the shell connection broke: the kernel is unusable
        self.scratch = ""  # the directory made for this kernel's own files (its owner removes it)
        self.closing = False  # asked to shut down: its connections drop as it goes
        # Runs a blocking call off the event loop (its owner's threads); None: asyncio's executor.
        self.blocking: Callable[[Callable[[], Any]], Awaitable[Any]] | None = None
        self.heard = asyncio.Event()  # set by every IOPub message: the subscription is live
        self.answered = asyncio.Event()  # set by the reply to a ping: the shell channel is live
        self.pings: set[str] = set()
        self._tasks: list[asyncio.Task] = []
        self._iopub_ready: asyncio.Task | None = None
        self.shell = self._socket(zmq.DEALER, 1)
        self.control = self._socket(zmq.DEALER, 4)
        self.iopub = self._socket(zmq.SUB, 2)
        self._tasks.append(asyncio.ensure_future(self._read_shell(self.shell)))
        self._tasks.append(asyncio.ensure_future(self._watch_shell(self.shell.get_monitor_socket(zmq.EVENT_DISCONNECTED))))
        self._watch_iopub(self.iopub)

    # -- starting ---------------------------------------------------------------------

    @classmethod
    async def start(cls, launch: Launch, *, within: float) -> Kernel:
        """Start a kernel and wait until it answers on its shell and IOPub channels."""
        name = f"@boxgym-ipython-{secrets.token_hex(12)}"
        key = secrets.token_hex(32)
        argv = [
            launch.python, "-I", "-m", "ipykernel_launcher",
            "--transport=ipc", f"--ip={name}", "--shell=1", "--iopub=2", "--stdin=3", "--control=4", "--hb=5",
            f"--Session.key={key}", "--Session.signature_scheme=hmac-sha256",
            f"--IPKernelApp.parent_handle={os.getpid()}",  # the kernel ends itself should the server die
            "--quiet", "--HistoryManager.enabled=False", "--InteractiveShell.colors=nocolor",
            f"--IPKernelApp.exec_files={[STARTUP]!r}",
        ]  # fmt: skip
        full_argv, extra = procs.spawn_args(argv, launch.uid, launch.gid)
        try:
            proc = subprocess.Popen(
                full_argv,
                cwd=launch.cwd,
                env=launch.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
                **extra,
            )
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.ENOMEM):
                raise KernelStartFailed(f"the kernel could not be started: {_sandbox_full() or exc.strerror}", by_agent=True) from None
            raise KernelStartFailed(f"the kernel could not be started: {exc}", by_agent=False) from None
        stderr = _StderrTail(asyncio.get_running_loop(), os.dup(proc.stderr.fileno()))
        proc.stderr.close()
        kernel = cls(proc, name, key.encode(), stderr)
        try:
            await kernel._wait_ready(within)
        except BaseException:
            kernel.kill_now()  # a cancelled start too: no await before the kernel is gone
            await kernel.close()
            raise
        return kernel

    async def _wait_ready(self, within: float) -> None:
        deadline = time.monotonic() + within
        while not (self.answered.is_set() and self.heard.is_set()):
            if self.exited.done():
                raise KernelStartFailed(f"the kernel exited while starting: {self.death()}", by_agent=self.proc.returncode < 0)
            if time.monotonic() > deadline:
                full = _sandbox_full()
                raise KernelStartFailed(
                    f"the kernel did not answer within {within:g}s of its start"
                    + (f": {full}" if full else f"; its stderr: {self.stderr.text()[-800:] or '(empty)'}"),
                    by_agent=bool(full),
                )
            self._ping()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.exited), PING_EVERY_S)

    def _ping(self) -> None:
        self.pings.add(self._send(self.shell, self.session.msg("kernel_info_request", {})))

    def _send(self, sock: zmq.asyncio.Socket, msg: dict[str, Any]) -> str:
        """Send ``msg`` through the asyncio socket itself, never ``Session.send``: that one sends on
        a synchronous shadow of the socket, which can take the readable edge a pending ``recv``
        waits for, so replies that arrived meanwhile sat unread until the next message (a burst of
        replies then a cell: its reply was never seen and the cell ran into its timeout)."""
        # An immediate send completes here; one held by the high-water mark goes out when it can.
        sock.send_multipart(self.session.serialize(msg))
        return msg["header"]["msg_id"]

    # -- sockets --------------------------------------------------------------------

    def _socket(self, kind: int, port: int) -> zmq.asyncio.Socket:
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
        sock.setsockopt(zmq.RCVHWM, QUEUE_MESSAGES)
        if kind == zmq.SUB:
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(f"ipc://{self.name}-{port}")
        return sock

    def _watch_iopub(self, sock: zmq.asyncio.Socket) -> None:
        monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self._tasks.append(asyncio.ensure_future(self._read_iopub(sock)))
        self._tasks.append(asyncio.ensure_future(self._watch(monitor, sock)))

    def _receive(self, frames: list[bytes]) -> dict[str, Any] | None:
        try:
            _, frames = self.session.feed_identities(frames, copy=True)
            return self.session.deserialize(frames, content=True, copy=True)
        except Exception:  # noqa: BLE001 - a forged or garbled message from the agent's process is dropped
            return None

    async def _read_shell(self, sock: zmq.asyncio.Socket) -> None:
        with contextlib.suppress(zmq.ZMQError, asyncio.CancelledError):
            while True:
                msg = self._receive(await sock.recv_multipart())
                if msg is None or not isinstance(msg.get("parent_header"), dict):
                    continue
                if msg["parent_header"].get("msg_id") in self.pings:
                    self.answered.set()
                cell = self.cell
                if cell is not None and msg["parent_header"].get("msg_id") == cell.msg_id:
                    content = msg.get("content")
                    cell.replied(content if isinstance(content, dict) else {})

    async def _read_iopub(self, sock: zmq.asyncio.Socket) -> None:
        with contextlib.suppress(zmq.ZMQError, asyncio.CancelledError):
            while True:
                msg = self._receive(await sock.recv_multipart())
                if msg is None:
                    continue
                self.heard.set()
                cell = self.cell
                parent = msg.get("parent_header")
                if cell is None or not isinstance(parent, dict) or parent.get("msg_id") != cell.msg_id:
                    continue
                msg_type, content = msg.get("msg_type"), msg.get("content")
                if msg_type == "status":
                    if isinstance(content, dict) and content.get("execution_state") == "idle":
                        cell.went_idle()
                else:
                    cell.output.feed(str(msg_type), content)

    async def _disconnected(self, monitor: zmq.asyncio.Socket) -> bool:
        """Wait for ``monitor``'s socket to lose its connection while the kernel lives on (a
        message over the limit); False when the kernel exited instead (or the kernel is closing)."""
        try:
            await monitor.recv_multipart()  # only disconnections are asked for
            # A kernel that exits drops its connections too; its exit is seen a moment later.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.exited), 0.2)
            return not self.exited.done() and not self.closing
        except (zmq.ZMQError, asyncio.CancelledError):
            return False
        finally:
            monitor.close(linger=0)

    async def _watch_shell(self, monitor: zmq.asyncio.Socket) -> None:
        if await self._disconnected(monitor):
            # ZeroMQ does not reconnect after refusing a message: the kernel cannot be reached again.
            self.lost_connection = f"a message of the kernel was over {MAX_MESSAGE // 2**20} MiB and broke its connection"
            await self.kill()

    async def _watch(self, monitor: zmq.asyncio.Socket, sock: zmq.asyncio.Socket) -> None:
        """Rebuild the IOPub socket when ZeroMQ drops its connection (a message over the limit)."""
        if not await self._disconnected(monitor):
            return
        if self.cell is not None:
            self.cell.output.note(
                f"some output was lost: a message of the kernel was over {MAX_MESSAGE // 2**20} MiB "
                "(print less at once, or write large results to a file)"
            )
        self.heard.clear()
        sock.close(linger=0)
        self.iopub = self._socket(zmq.SUB, 2)
        self._watch_iopub(self.iopub)
        self._iopub_ready = asyncio.ensure_future(self._resubscribe())

    async def _resubscribe(self) -> None:
        # A new subscription misses what is published before it is live: ping until IOPub speaks.
        for _ in range(50):
            self._ping()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.heard.wait(), PING_EVERY_S)
                return

    # -- cells --------------------------------------------------------------------------

    async def execute(self, code: str, output: CellOutput) -> Cell:
        """Send ``code`` as the one cell now running; its messages go to ``output``."""
        if self._iopub_ready is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._iopub_ready), 5.0)
            self._iopub_ready = None
        msg = self.session.msg("execute_request", {"code": code, **_EXECUTE})
        self.cell = Cell(msg["header"]["msg_id"], output)
        self._send(self.shell, msg)
        return self.cell

    async def wait(self, cell: Cell, timeout: float) -> str:
        """``"done"`` once the cell's reply and output are in, ``"died"`` if the kernel exits
        first, ``"timeout"`` when ``timeout`` seconds pass (the cell keeps running)."""
        if not cell.finished.done():
            await asyncio.wait((cell.finished, self.exited), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if cell.finished.done() or cell.reply is not None:
            return "done"
        return "died" if self.exited.done() else "timeout"

    def interrupt(self) -> None:
        """SIGINT to the kernel's process group, as ipykernel interrupts itself: ``KeyboardInterrupt``
        in the running cell, and the shell command it waits for (``!sleep 100``) stops too."""
        if not self.exited.done():
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
            except (ProcessLookupError, PermissionError):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGINT)

    def holds_the_pids(self) -> bool:
        """Whether what this kernel started holds over half of the sandbox's process limit (a
        cell's fork bomb, forked copies of the kernel left after an interrupt): restarting the
        kernel, which kills its whole tree, frees them. Cheap unless the pids are in use."""
        pids, pids_max = cgroup.pids()
        if pids_max is None or (pids or 0) <= pids_max // 2 or self.exited.done():
            return False
        # Zombies count: a cell's forks that died unreaped (the kernel reaps none) hold their pids.
        return len(procs.process_tree(self.proc.pid, zombies=True)) > pids_max // 2

    # -- ending -------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    def death(self) -> str:
        """Why the kernel ended, in words the agent can act on."""
        code = self.proc.returncode
        if self.lost_connection is not None:
            return self.lost_connection
        if code is None:
            return "it is still running"
        if code < 0:
            sig = -code
            kills = cgroup.usage().oom_kills
            if sig == signal.SIGKILL and kills is not None and self.oom_kills_at_start is not None and kills > self.oom_kills_at_start:
                limit = cgroup.usage().memory_max
                where = f" (the sandbox's memory limit is {limit // 2**20} MiB)" if limit else ""
                return f"it was killed by the out-of-memory killer: the cell used more memory than the sandbox has{where}"
            name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
            return f"it was killed by signal {sig} ({name})"
        return f"it exited with status {code} (os._exit, a crash of native code, or its process being replaced)"

    async def kill(self) -> None:
        """Kill the kernel and every process it started: its tree (it is their subreaper), then its
        process group, which holds what it started even after a death that handed them to PID 1
        (a fork bomb's copies, when the OOM killer took the kernel itself). On a thread: waiting
        for a resisting tree to die must not stall the server's other calls."""
        await self._off_loop(self.kill_now)

    async def _off_loop(self, fn: Callable[[], Any]) -> Any:
        # The server's own threads when the plugin gave them (a new thread may not start once the
        # agent has used up the pids: threads.py); past that, or at exit, block rather than fail.
        try:
            return await (self.blocking(fn) if self.blocking is not None else asyncio.to_thread(fn))
        except RuntimeError:  # can't start new thread; cannot schedule new futures after shutdown
            return fn()

    def kill_now(self) -> None:
        """:meth:`kill`, blocking (up to 2 s): for a path that cannot wait on the loop."""
        if self.proc.returncode is None:
            procs.kill_tree(self.proc.pid, within=2.0)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    async def shutdown(self, within: float) -> None:
        """End the kernel cleanly: what it started first (it is their subreaper, so they are all
        still in its tree), then the kernel itself through a ``shutdown_request``; whatever is
        left after ``within`` seconds is killed."""
        self.closing = True
        if self.alive:
            await self._off_loop(functools.partial(procs.kill_descendants, self.proc.pid, within=2.0))
            with contextlib.suppress(zmq.ZMQError):
                self._send(self.control, self.session.msg("shutdown_request", {"restart": False}))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.exited), within)
        await self.kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything forked during the shutdown itself
        await self.close()

    async def close(self) -> None:
        """Release the sockets and readers (after the process is gone or killed)."""
        for task in self._tasks:
            task.cancel()
        if self._iopub_ready is not None:
            self._iopub_ready.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.context.destroy(linger=0)
        with contextlib.suppress(asyncio.CancelledError, ChildProcessError):
            await asyncio.wait_for(asyncio.shield(self.exited), 5.0)
        self.stderr.close()


def _sandbox_full() -> str | None:
    """What of the sandbox the agent has used up, if anything: why nothing new can start."""
    use = cgroup.usage()
    if use.pids_exhausted:
        return f"the sandbox's process limit is reached ({use.pids} of {use.pids_max} processes and threads)"
    if use.memory is not None and use.memory_max and use.memory > 0.95 * use.memory_max:
        return f"the sandbox's memory is nearly full ({use.memory // 2**20} of {use.memory_max // 2**20} MiB)"
    return None
