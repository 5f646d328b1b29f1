"""Running commands: process trees that die whole, and output that is capped.

Every command is started as a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``
survives ``execve``): a descendant that double-forks or calls ``setsid`` is
re-parented to the command's first process instead of escaping to PID 1, so
the tree rooted there is the whole of what the command started. On timeout
or cancellation the tree is frozen with SIGSTOP (a stopped process cannot
fork) until a re-scan finds no new member, then killed with SIGKILL, which
no process can ignore.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import time

from .protocol import TRUNCATION_MARKER

PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)

READ_CHUNK = 65536
# After the command's first process exits, how long to wait for background
# children that inherited stdout/stderr to let go before returning without them.
DRAIN_GRACE_S = 0.1


#: The C launcher built into images (see spawn.c); without it, a slower preexec_fn does its work.
SPAWN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", "boxgym-spawn")
HAVE_SPAWN = os.access(SPAWN, os.X_OK)


def _become_subreaper() -> None:  # runs in the child between fork and exec
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _spawn_args(argv: list[str], uid: int | None, gid: int | None) -> tuple[list[str], dict]:
    if HAVE_SPAWN:
        return [SPAWN, str(os.getuid() if uid is None else uid), str(os.getgid() if gid is None else gid), *argv], {}
    ids = {} if uid is None else {"user": uid, "group": gid, "extra_groups": []}
    return argv, {"preexec_fn": _become_subreaper, **ids}


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue  # exited while we looked
        # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
        ppid = int(stat[stat.rindex(b")") + 2 :].split(b" ", 2)[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(root: int) -> list[int]:
    """The root and every living descendant of it."""
    children = _children_map()
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid == root or os.path.exists(f"/proc/{pid}"):
            tree.append(pid)
        todo.extend(children.get(pid, ()))
    return [pid for pid in tree if os.path.exists(f"/proc/{pid}")]


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def kill_tree(root: int) -> int:
    """Freeze then kill ``root`` and all its descendants; returns how many were killed."""
    frozen: set[int] = set()
    for _ in range(100):
        tree = set(process_tree(root))
        new = tree - frozen
        if not new:
            break
        _signal_all(sorted(new), signal.SIGSTOP)
        frozen |= new
    _signal_all(sorted(frozen), signal.SIGKILL)
    return len(frozen)


def kill_user(uid: int) -> int:
    """Kill every process owned by ``uid``; returns how many were signalled."""
    killed = 0
    for _ in range(20):
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.stat(f"/proc/{entry}").st_uid == uid:
                        pids.append(int(entry))
                except OSError:
                    pass
        if not pids:
            break
        _signal_all(pids, signal.SIGSTOP)
        _signal_all(pids, signal.SIGKILL)
        killed += len(pids)
        time.sleep(0.01)
    return killed


class CappedBuffer:
    """Keeps the first and last ``limit // 2`` bytes of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.half = max(limit // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self.half:
                del self.tail[: len(self.tail) - self.half]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def text(self) -> str:
        if not self.truncated:
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", "replace")
        omitted = self.total - len(self.head) - len(self.tail)
        marker = TRUNCATION_MARKER.format(omitted=omitted)
        return f"{self.head.decode('utf-8', 'replace')}\n{marker}\n{self.tail.decode('utf-8', 'replace')}"


class _Output:
    """Reads one pipe into a capped buffer from the event loop, without a task per pipe."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, sink: CappedBuffer) -> None:
        self.loop, self.fd, self.sink = loop, fd, sink
        self.eof = loop.create_future()
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.sink.feed(data)
        else:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1
        if not self.eof.done():
            self.eof.set_result(None)


def _exited(loop: asyncio.AbstractEventLoop, proc: subprocess.Popen) -> asyncio.Future:
    """A future that resolves when ``proc`` exits; the process is reaped by then."""
    done = loop.create_future()
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # kernel without pidfd: a thread waits instead
        return asyncio.ensure_future(asyncio.to_thread(proc.wait))

    def readable() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        proc.wait()
        if not done.done():
            done.set_result(proc.returncode)

    loop.add_reader(pidfd, readable)
    return done


def _feed_stdin(fd: int, data: bytes) -> None:
    try:
        os.write(fd, data) if len(data) < 65536 else _write_all(fd, data)
    except (BrokenPipeError, OSError):
        pass  # the command did not read all of its input; that is its business
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def run(
    argv: list[str],
    *,
    cwd: str,
    env: dict[str, str],
    stdin: bytes | None,
    timeout: float,
    max_output: int,
    uid: int | None,
    gid: int | None,
) -> dict:
    """Run ``argv`` to completion or timeout; never raises for the command's own failures."""
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    full_argv, extra = _spawn_args(argv, uid, gid)
    try:
        proc = subprocess.Popen(
            full_argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            **extra,
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        # The agent named a program or a cwd that is not there: a result, not a crash.
        return {
            "exit_code": 127 if isinstance(exc, FileNotFoundError) else 126,
            "stdout": "",
            "stderr": f"boxgym: cannot run {argv[0]!r}: {exc.strerror} ({exc.filename})\n",
            "duration_s": time.monotonic() - start,
            "timed_out": False,
            "stdout_truncated": False,
            "stderr_truncated": False,
        }
    out, err = CappedBuffer(max_output), CappedBuffer(max_output)
    # Popen's file objects are left alone: the loop reads the raw fds, which _Output closes.
    readers = [_Output(loop, os.dup(proc.stdout.fileno()), out), _Output(loop, os.dup(proc.stderr.fileno()), err)]
    proc.stdout.close()
    proc.stderr.close()
    if stdin:
        fd = os.dup(proc.stdin.fileno())
        proc.stdin.close()
        loop.run_in_executor(None, _feed_stdin, fd, stdin)
    exited = _exited(loop, proc)
    timed_out = False
    try:
        try:
            await asyncio.wait_for(asyncio.shield(exited), timeout)
        except asyncio.TimeoutError:
            timed_out = True
            kill_tree(proc.pid)
            await exited
        # Background children may still hold the pipes open; give them a moment, not forever.
        await asyncio.wait([r.eof for r in readers], timeout=DRAIN_GRACE_S)
    except asyncio.CancelledError:
        # The host gave up on the call (cancel frame or lost connection): nothing it started may live on.
        kill_tree(proc.pid)
        raise
    finally:
        for reader in readers:
            reader.close()
    return {
        "exit_code": None if timed_out else proc.returncode,
        "stdout": out.text(),
        "stderr": err.text(),
        "duration_s": time.monotonic() - start,
        "timed_out": timed_out,
        "stdout_truncated": out.truncated,
        "stderr_truncated": err.truncated,
    }
