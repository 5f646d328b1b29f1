"""The in-container tool server: one long-lived process per sandbox.

It listens on a Unix socket in a directory bind-mounted from the host, so the
host reaches it with no network and no ``docker exec`` per call. Many calls run
at once on one connection (see :mod:`.protocol`); a call the host cancels, or
every call of a connection that drops, is cancelled here too, and a command
it had started dies with its whole process tree.

Operations are looked up in :data:`CORE_OPS`; a name with a dot, such as
``ipython.execute``, is an operation of a plugin (``ops_ipython.py`` beside this
file), loaded, started and stopped by :mod:`.plugins`, which documents the
shape of a plugin and who is at fault for what it raises. New toolsets
therefore add a file here and never touch the transport.

Nothing the agent asks for may take the server down: blocking work runs on
threads started in advance (:mod:`.threads`), file operations cannot block or
flood (:mod:`.files`), answers that carry file data hold a share of a fixed
budget until they have left, command output is capped, and killing the
agent's processes is one ``kill(-1)`` from a thread that exists for nothing
else (:func:`.procs.kill_user`). docs/security.md describes the whole.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import ctypes
import inspect
import os
import signal
import time
from dataclasses import dataclass, field

from . import cgroup, procs, protocol
from .files import FileOps, Refused
from .plugins import Busy, Plugins, Unavailable, plugin_names
from .threads import Workers

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: How long ``kill_user`` keeps killing before it calls the sandbox wrecked.
KILL_WITHIN_S = 10.0
#: File data that answers may hold at once: a read holds what it may return until its answer has
#: gone out, so that many large reads wait for each other instead of taking the server's memory
#: (an answer is the data a few times over on its way: base64, JSON, the frame, the send buffer).
READ_BUDGET = 2 * protocol.READ_LIMIT
#: The server's exit status when its TTL ended it (the container's init reports it to the host).
EXIT_TTL = 3

_libc = ctypes.CDLL(None, use_errno=True)

__all__ = ["Busy", "Context", "Refused", "Unavailable", "Wrecked", "serve"]


class Wrecked(Exception):
    """The agent's processes left the sandbox unusable and could not be killed; type ``wrecked``."""


class ByteBudget:
    """Bytes that calls may hold at once; a call that would pass it waits for others to finish."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, size: int):
        size = min(size, self.total)
        async with self._changed:
            await self._changed.wait_for(lambda: self.free >= size)
            self.free -= size
        try:
            yield
        finally:
            self.free += size
            async with self._changed:
                self._changed.notify_all()


@dataclass
class Context:
    """What handlers may use: identities, paths, limits, the server's threads and shared state."""

    workdir: str
    agent_uid: int
    agent_gid: int
    agent_home: str
    max_output: int
    base_env: dict[str, str]
    files: FileOps
    # Every thread exists from the start (see threads.py): file work per identity, and one
    # thread that does nothing but kill, so a fork bomb can always be killed.
    workers: dict[str, Workers] = field(default_factory=dict)
    killer: Workers | None = None
    reads: ByteBudget = field(default_factory=lambda: ByteBudget(READ_BUDGET))
    started: float = field(default_factory=time.monotonic)

    def identity(self, user: str) -> tuple[int | None, int | None]:
        if user == "agent":
            return (None, None) if self.agent_uid == os.geteuid() else (self.agent_uid, self.agent_gid)
        if user == "root":
            return (None, None)
        raise Refused(f"user must be 'agent' or 'root', not {user!r}")

    def start_threads(self) -> None:
        switch = self.agent_uid != os.geteuid()

        def become_agent() -> None:
            _libc.setfsgid(self.agent_gid)
            _libc.setfsuid(self.agent_uid)

        self.workers = {"agent": Workers(4, "files-agent", become_agent if switch else None), "root": Workers(4, "files-root")}
        self.killer = Workers(1, "killer")


# -- core operations -----------------------------------------------------------


async def op_exec(
    ctx: Context,
    cmd: str | None = None,
    argv: list[str] | None = None,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    stdin_b64: str | None = None,
    timeout: float = 30.0,
    max_output: int | None = None,
    user: str = "agent",
) -> dict:
    if (cmd is None) == (argv is None):
        raise Refused("give exactly one of 'cmd' (a shell string) or 'argv' (a list of strings)")
    if argv is not None and (not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv)):
        raise Refused("'argv' must be a non-empty list of strings")
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout < 1e9:
        raise Refused("'timeout' must be a positive number of seconds")
    if max_output is not None and (not isinstance(max_output, int) or isinstance(max_output, bool) or max_output < 1):
        raise Refused("'max_output' must be a positive integer")
    if cwd is not None and not isinstance(cwd, str):
        raise Refused("'cwd' must be a string")
    if stdin_b64 is not None and (not isinstance(stdin_b64, str) or len(stdin_b64) // 4 * 3 > protocol.WRITE_LIMIT + 3):
        raise Refused(f"'stdin_b64' must be base64 of at most {protocol.WRITE_LIMIT} bytes", "too_large")
    uid, gid = ctx.identity(user)
    full_env = dict(ctx.base_env)
    if user == "root":
        full_env["HOME"] = "/root"
    if env:
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise Refused("'env' must map strings to strings")
        full_env.update(env)
    try:
        stdin = base64.b64decode(stdin_b64, validate=True) if stdin_b64 else None
    except (binascii.Error, ValueError) as exc:
        raise Refused(f"'stdin_b64' is not base64: {exc}") from None
    return await procs.run(
        ["bash", "-c", cmd] if cmd is not None else argv,
        cwd=ctx.files.resolve(cwd or "."),
        env=full_env,
        stdin=stdin,
        timeout=float(timeout),
        max_output=min(max_output or ctx.max_output, protocol.OUTPUT_LIMIT),
        uid=uid,
        gid=gid,
    )


def _file_op(name: str):
    async def handler(ctx: Context, user: str = "agent", **args):
        ctx.identity(user)
        method = getattr(ctx.files, name)
        try:
            inspect.signature(method).bind(**args)
        except TypeError as exc:
            raise Refused(f"bad arguments: {exc}") from None
        if "root" in args:
            raise Refused("bad arguments: say user='root', not root")
        return await ctx.workers[user].run(lambda: method(**args, root=user == "root"))

    handler.__name__ = f"op_{name}"
    return handler


def _problems(use: cgroup.Usage) -> list[str]:
    if use.pids_exhausted:
        return [f"pids exhausted: {use.pids} of {use.pids_max} processes and threads; no command can start"]
    return []


async def op_health(ctx: Context) -> dict:
    use = cgroup.usage()
    problems = _problems(use)
    return {
        "ok": not problems,
        "problems": problems,
        "uptime_s": time.monotonic() - ctx.started,
        "operations": [*sorted([*CORE_OPS, "stop_plugins"]), *(f"{name}.*" for name in plugin_names())],
        "server_version": protocol.VERSION,
        "pids": use.pids,
        "pids_max": use.pids_max,
        "memory_bytes": use.memory,
        "memory_max": use.memory_max,
        "oom_kills": use.oom_kills,
    }


async def op_kill_user(ctx: Context) -> dict:
    """Kill every process of the agent's user (judges call this before they look)."""
    if ctx.agent_uid == os.geteuid():
        raise Refused("the agent user is the server's own user here; refusing to kill the server")
    assert ctx.killer is not None
    killed, left = await ctx.killer.run(lambda: procs.kill_user(ctx.agent_uid, within=KILL_WITHIN_S))
    if left:
        raise Wrecked(
            f"{len(left)} processes of the agent survived {KILL_WITHIN_S:g}s of SIGKILL "
            f"({killed} were found); the sandbox cannot be made usable again"
        )
    # Killed processes free their pids once reaped; a command that follows must be able to start.
    deadline = time.monotonic() + KILL_WITHIN_S
    while cgroup.usage().pids_exhausted:
        if time.monotonic() > deadline:
            raise Wrecked(f"the agent's {killed} processes were killed, but the pids they held were not freed")
        await asyncio.sleep(0.01)
    return {"killed": killed}


CORE_OPS = {
    "exec": op_exec,
    "read_file": _file_op("read_file"),
    "write_file": _file_op("write_file"),
    "list_dir": _file_op("list_dir"),
    "stat": _file_op("stat"),
    "health": op_health,
    "kill_user": op_kill_user,
}


def _answer_size(op: object, args: dict) -> int:
    """The file data an answer to this request may carry (what it holds of the read budget)."""
    if op != "read_file":
        return 0
    size = args.get("max_bytes")
    return min(size, protocol.READ_LIMIT) if isinstance(size, int) and size >= 0 else protocol.READ_LIMIT


class Dispatcher:
    """Finds the handler of an op: a core one, or a plugin's (:class:`.plugins.Plugins`)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.plugins = Plugins(ctx)

    async def call(self, op: str, args: dict) -> object:
        if not isinstance(op, str):
            raise Refused("'op' must be a string")
        if not isinstance(args, dict):
            raise Refused("'args' must be an object")
        if "." not in op:
            if op == "stop_plugins":
                return {"failed": await self.plugins.stop()}
            handler = CORE_OPS.get(op)
            if handler is None:
                raise Refused(f"unknown operation {op!r}")
            return await _invoke(handler, self.ctx, args)
        namespace, name = op.split(".", 1)
        return await self.plugins.call(namespace, name, args)


async def _invoke(handler, ctx: Context, args: dict) -> object:
    try:
        return await handler(ctx, **args)
    except TypeError as exc:
        # Wrong or missing argument names are the caller's error, not ours.
        if "argument" in str(exc) and exc.__traceback__ is not None and exc.__traceback__.tb_next is None:
            raise Refused(f"bad arguments: {exc}") from None
        raise


def error_of(exc: BaseException) -> dict:
    """The wire form of an exception a handler raised (``protocol`` lists the types)."""
    if isinstance(exc, Refused):
        return {"type": "refused", "reason": exc.reason, "message": str(exc)}
    if isinstance(exc, Busy):
        return {"type": "busy", "message": str(exc)}
    if isinstance(exc, Wrecked):
        return {"type": "wrecked", "message": str(exc)}
    if isinstance(exc, Unavailable):
        return {"type": "unavailable", "message": str(exc)}
    if isinstance(exc, FileNotFoundError):
        return {"type": "not_found", "message": str(exc)}
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return {"type": "timeout", "message": str(exc)}
    if isinstance(exc, OSError):  # an operation of a plugin module that did not name its refusal
        return {"type": "refused", "reason": "os_error", "message": str(exc)}
    return {"type": "internal", "message": f"{type(exc).__name__}: {exc}"}


class Server:
    def __init__(self, ctx: Context) -> None:
        self.dispatcher = Dispatcher(ctx)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks: dict[int, asyncio.Task] = {}

        def reply(message: dict) -> None:
            if writer.is_closing():
                return
            try:
                parts = protocol.encode_parts(message)
            except (protocol.ProtocolError, TypeError, ValueError) as exc:  # an answer that cannot travel
                parts = protocol.encode_parts({"id": message.get("id"), "ok": False, "error": error_of(exc)})
            message.clear()  # the answer's data is held once from here: as its frame
            for part in parts:  # two writes, not writelines: that would join them into one more copy
                writer.write(part)

        async def answer(rid: int, op: str, args: dict) -> None:
            try:
                message = {"id": rid, "ok": True, "result": await self.dispatcher.call(op, args)}
            except asyncio.CancelledError:
                return
            except Exception as exc:  # every failure becomes an answer; the server keeps serving
                message = {"id": rid, "ok": False, "error": error_of(exc)}
            finally:
                tasks.pop(rid, None)
            reply(message)

        async def serve_one(rid: int, op: str, args: dict) -> None:
            size = _answer_size(op, args)
            if not size:
                return await answer(rid, op, args)
            async with self.dispatcher.ctx.reads.hold(size):
                await answer(rid, op, args)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()  # the answer has left the server's memory

        try:
            while True:
                message = await protocol.read_frame(reader)
                if message is None:
                    break
                rid, op, args = message.get("id"), message.get("op"), message.get("args") or {}
                if op == "cancel":
                    task = tasks.get(args.get("target"))
                    if task is not None:
                        task.cancel()
                    continue
                if not isinstance(rid, int) or rid in tasks:
                    reply({"id": rid, "ok": False, "error": {"type": "refused", "reason": "bad_request", "message": "bad or duplicate id"}})
                    continue
                tasks[rid] = asyncio.ensure_future(serve_one(rid, op, args))
        except (protocol.ProtocolError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            # The host is gone: whatever it started must not run on unattended.
            for task in list(tasks.values()):
                task.cancel()
            writer.close()


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="boxgym-toolserver")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--workdir", default="/workspace")
    parser.add_argument("--agent-uid", type=int, default=10001)
    parser.add_argument("--agent-home", default="/home/agent")
    parser.add_argument("--max-output", type=int, default=65536)
    parser.add_argument("--ttl", type=float, default=3600.0)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for every command")
    return parser.parse_args(argv)


def _return_freed_memory() -> None:
    """Large blocks (a read's data, its base64, its frame) go back to the kernel when freed.

    glibc otherwise raises its mmap threshold after the first large free and keeps later blocks
    of that size in its heaps, one per thread: freed, yet charged to the container's memory
    limit, which the agent's processes share. Measured: 16 reads of 4 MiB at once peaked the
    server at 109 MB without this, at 66 MB with it (22 MB idle).
    """
    M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc's mallopt parameters
    try:
        _libc.mallopt(M_MMAP_THRESHOLD, 256 * 1024)
        _libc.mallopt(M_ARENA_MAX, 2)
    except AttributeError:
        pass  # not glibc


async def serve(argv: list[str]) -> int:
    """Serve until SIGTERM/SIGINT (exit status 0) or the TTL (:data:`EXIT_TTL`)."""
    _return_freed_memory()
    args = _parse(argv)
    base_env = {
        "PATH": BASE_PATH,
        "HOME": args.agent_home,
        "USER": "agent",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    base_env.update(kv.split("=", 1) for kv in args.env)
    ctx = Context(
        workdir=args.workdir,
        agent_uid=args.agent_uid,
        agent_gid=args.agent_uid,
        agent_home=args.agent_home,
        max_output=args.max_output,
        base_env=base_env,
        files=FileOps(args.workdir, args.agent_uid),
    )
    ctx.start_threads()
    server = Server(ctx)
    tmp_path = args.socket + ".tmp"
    if os.path.exists(tmp_path):
        os.unlink(tmp_path)
    listener = await asyncio.start_unix_server(server.handle, path=tmp_path)
    # The bind-mounted directory (mode 0700, the host user's) is what keeps everyone but the
    # host user out, the agent included; the socket itself is open to whoever gets that far, so
    # that a host user other than root can connect without the server needing CAP_CHOWN. The
    # rename makes the socket appear only once it accepts connections.
    os.chmod(tmp_path, 0o666)
    os.rename(tmp_path, args.socket)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The TTL ends the container even when the host process that owns it is gone (the
    # container's init enforces it too, a little later, should this loop be wedged).
    ttl = loop.call_later(args.ttl, stop.set)
    async with listener:
        await stop.wait()
    await server.dispatcher.plugins.stop()  # kernels, browsers, displays end cleanly first
    if ctx.agent_uid != os.geteuid():
        procs.kill_user(ctx.agent_uid, within=2.0)
    return EXIT_TTL if ttl.when() <= loop.time() else 0
