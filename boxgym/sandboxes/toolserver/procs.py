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
import errno
import os
import signal
import subprocess
import time
from collections.abc import Iterator

from . import cgroup
from .files import Refused
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


def _become_idle_subreaper() -> None:  # spawn.c's work for another user's command, without spawn.c
    _become_subreaper()
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def spawn_args(argv: list[str], uid: int | None, gid: int | None) -> tuple[list[str], dict]:
    """``argv`` as the server starts an agent process (through spawn.c: a subreaper, the OOM
    killer's first choice, SCHED_IDLE, as ``uid``), and the extra ``Popen`` keywords it needs.
    Commands and long-lived agent processes (a plugin's kernel) start the same way."""
    if HAVE_SPAWN:
        return [SPAWN, str(os.getuid() if uid is None else uid), str(os.getgid() if gid is None else gid), *argv], {}
    if uid is None:
        return argv, {"preexec_fn": _become_subreaper}
    return argv, {"preexec_fn": _become_idle_subreaper, "user": uid, "group": gid, "extra_groups": []}


def proc_stats() -> Iterator[tuple[int, bytes, int, int]]:
    """(pid, state, parent pid, process group) of every process, read from /proc."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue  # exited while we looked
        # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
        state, ppid, pgrp = stat[stat.rindex(b")") + 2 :].split(b" ", 3)[:3]
        yield int(entry), state, int(ppid), int(pgrp)


def _children_map(zombies: bool = False) -> dict[int, list[int]]:
    """Parent pid -> its children that are alive (a zombie is dead: it only waits to be reaped),
    or, with ``zombies``, also those that wait to be reaped (each still holds its pid)."""
    children: dict[int, list[int]] = {}
    for pid, state, ppid, _ in proc_stats():
        if zombies or state not in (b"Z", b"X"):
            children.setdefault(ppid, []).append(pid)
    return children


def process_tree(root: int, *, zombies: bool = False) -> list[int]:
    """The root and every living descendant of it (and, with ``zombies``, the unreaped dead)."""
    children = _children_map(zombies)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def kill_tree(root: int, *, within: float = 5.0) -> int:
    """Freeze, then kill ``root``'s descendants until none is left, then ``root``; returns how many.

    The root is a child subreaper and is killed last: while it lives (frozen), every orphan
    of the tree is re-parented to it, so whatever a dying process left behind, or forked just
    before it was stopped, stays in the tree to be found and killed. Killed first, the root
    would hand such orphans to PID 1, out of reach.
    """
    frozen: set[int] = set()
    for _ in range(100):
        new = set(process_tree(root)) - frozen
        if not new:
            break
        _signal_all(sorted(new), signal.SIGSTOP)  # a stopped process cannot fork
        frozen |= new
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        below = process_tree(root)[1:]
        if not below:
            break
        _signal_all(below, signal.SIGKILL)
        frozen.update(below)
        time.sleep(0.002)
    _signal_all([root], signal.SIGKILL)
    return len(frozen | {root})


def kill_descendants(root: int, *, within: float = 5.0) -> int:
    """Kill every descendant of ``root`` but not ``root`` itself; returns how many.

    For a long-lived subreaper (a plugin's kernel) that is to end cleanly after what it
    started: while it lives, the orphans of its tree stay in it to be found, so they die
    before it is asked to exit, not after (when they would be re-parented out of reach).
    """
    killed: set[int] = set()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        below = process_tree(root)[1:]
        if not below:
            break
        _signal_all(below, signal.SIGSTOP)  # a stopped process cannot fork
        _signal_all(below, signal.SIGKILL)
        killed.update(below)
        time.sleep(0.002)
    return len(killed)


_SYS_SETRESUID = {"x86_64": 117, "aarch64": 147}.get(os.uname().machine)


def _living(uid: int) -> list[int]:
    """The processes of ``uid`` that are not zombies (a zombie is dead; its pid goes with its reaping)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue  # exited while we looked
        if stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] not in (b"Z", b"X"):
            pids.append(int(entry))
    return pids


def _kill_all_as(uid: int) -> bool:
    """``kill(-1, SIGKILL)`` with this thread alone holding ``uid`` as its real and effective uid.

    The kernel signals every process the caller may signal in one sweep under the
    task-list lock, which ``fork`` also takes, so no process of ``uid`` is missed
    and none is created meanwhile: a fork bomb cannot outrun it. With ``uid`` as
    real and effective uid (and no effective capability) the caller may signal
    exactly the processes of ``uid``. The raw ``setresuid`` system call changes
    this thread only (glibc's wrapper would change every thread); the saved uid
    stays 0, so the thread takes root back afterwards. Returns False where this
    cannot be done (an unknown architecture, no CAP_SETUID).
    """
    if _SYS_SETRESUID is None or _libc.syscall(_SYS_SETRESUID, uid, uid, 0) != 0:
        return False
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass  # nothing of uid's was running
    finally:
        if _libc.syscall(_SYS_SETRESUID, 0, 0, 0) != 0:
            # A thread that cannot take root back must not serve anything again.
            os._exit(70)
    return True


def kill_user(uid: int, *, within: float = 10.0) -> tuple[int, list[int]]:
    """Kill every process owned by ``uid``: ``(how many were found, those still alive after
    ``within`` seconds)``. Must run on a thread that does nothing else meanwhile."""
    found: set[int] = set()
    deadline = time.monotonic() + within
    while True:
        living = _living(uid)
        if not living:
            return len(found), []
        found.update(living)
        if time.monotonic() > deadline:
            return len(found), living
        if not _kill_all_as(uid):
            _signal_all(living, signal.SIGSTOP)  # frozen first: a stopped process cannot fork
            _signal_all(living, signal.SIGKILL)
        time.sleep(0.005)


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


def exited(loop: asyncio.AbstractEventLoop, proc: subprocess.Popen) -> asyncio.Future:
    """A future that resolves to ``proc``'s return code when it exits; the process is reaped by then."""
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


class _Input:
    """Feeds a command's stdin from the event loop, never from a thread: a command that does not
    read its input (or a background child that keeps the pipe open) cannot tie anything up."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, data: bytes) -> None:
        self.loop, self.fd, self.view = loop, fd, memoryview(data)
        os.set_blocking(fd, False)
        loop.add_writer(fd, self._writable)

    def _writable(self) -> None:
        try:
            self.view = self.view[os.write(self.fd, self.view[:READ_CHUNK]) :]
        except BlockingIOError:
            return
        except OSError:
            self.view = self.view[:0]  # the command closed its input: that is its business
        if not self.view:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_writer(self.fd)
            os.close(self.fd)
            self.fd = -1


def _start_failure(exc: OSError, argv: list[str]) -> Exception | None:
    """A refusal for what keeps a command from starting that is not the command's own doing."""
    if exc.errno == errno.EAGAIN:
        use = cgroup.usage()
        limit = f" ({use.pids} of {use.pids_max} processes and threads)" if use.pids_max else ""
        return Refused(
            f"cannot start a command: the sandbox's process limit is reached{limit}; the processes already "
            "running must exit (or be killed) before another command can start",
            "pids_exhausted",
        )
    if exc.errno == errno.E2BIG:
        size = sum(len(a) for a in argv)
        return Refused(
            f"cannot start the command: its {size} bytes are more than the kernel takes for one argument "
            "(128 KiB); write it to a file and run that file",
            "too_large",
        )
    if exc.errno == errno.ENOMEM:
        return Refused("cannot start a command: the sandbox is out of memory", "os_error")
    return None


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
    full_argv, extra = spawn_args(argv, uid, gid)
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
    except (ValueError, UnicodeEncodeError) as exc:  # a NUL or a lone surrogate in argv, env or cwd
        raise Refused(f"cannot start the command: {exc}", "bad_content") from None
    except OSError as exc:
        refused = _start_failure(exc, argv)
        if refused is not None:
            raise refused from None
        if not isinstance(exc, (FileNotFoundError, PermissionError, NotADirectoryError)):
            raise
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
    feeder = None
    if stdin:
        feeder = _Input(loop, os.dup(proc.stdin.fileno()), stdin)
        proc.stdin.close()
    done = exited(loop, proc)
    timed_out = False
    try:
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except asyncio.TimeoutError:
            timed_out = True
            kill_tree(proc.pid)
            await done
        # Background children may still hold the pipes open; give them a moment, not forever.
        await asyncio.wait([r.eof for r in readers], timeout=DRAIN_GRACE_S)
    except asyncio.CancelledError:
        # The host gave up on the call (cancel frame or lost connection): nothing it started may live on.
        kill_tree(proc.pid)
        raise
    finally:
        for reader in readers:
            reader.close()
        if feeder is not None:
            feeder.close()
    return {
        "exit_code": None if timed_out else proc.returncode,
        "stdout": out.text(),
        "stderr": err.text(),
        "duration_s": time.monotonic() - start,
        "timed_out": timed_out,
        "stdout_truncated": out.truncated,
        "stderr_truncated": err.truncated,
    }


def start(
    argv: list[str],
    *,
    cwd: str,
    env: dict[str, str],
    uid: int | None,
    gid: int | None,
    stdin: int = subprocess.DEVNULL,
    stdout: int = subprocess.DEVNULL,
    stderr: int = subprocess.DEVNULL,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen:
    """Start a long-lived process (a plugin's display, kernel or browser) under the rules of every
    command: in a session of its own, a child subreaper, the OOM killer's first choice, and at
    SCHED_IDLE when it runs as another user than root (spawn.c). Its owner ends it, and all it
    started, with :func:`kill_tree`. What keeps it from starting that is not the caller's doing
    (the pids limit, no memory) is refused as for :func:`run`."""
    full_argv, extra = spawn_args(argv, uid, gid)
    try:
        return subprocess.Popen(
            full_argv, cwd=cwd, env=env, stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=pass_fds,
            start_new_session=True, **extra,
        )  # fmt: skip
    except (ValueError, UnicodeEncodeError) as exc:
        raise Refused(f"cannot start {argv[0]!r}: {exc}", "bad_content") from None
    except OSError as exc:
        refused = _start_failure(exc, argv)
        if refused is not None:
            raise refused from None
        raise
