"""The in-container tool server: one long-lived process per sandbox.

It listens on a Unix socket in a directory bind-mounted from the host, so the
host reaches it with no network and no ``docker exec`` per call. Many calls run
at once on one connection (see :mod:`.protocol`); a call the host cancels, or
every call of a connection that drops, is cancelled here too, and a command
it had started dies with its whole process tree.

Operations are looked up in :data:`CORE_OPS`; a name with a dot, such as
``ipython.execute``, loads the handler module ``ops_ipython`` beside this file
on first use. Such a module defines ``OPS = {"execute": handler}``, where a
handler is ``async def handler(ctx, **args)``, and may define ``EXCLUSIVE`` (a
set of op names that refuse to run while another call of the same module
runs: they answer ``busy`` instead of interleaving). New toolsets therefore add
a file here and never touch the transport.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import inspect
import os
import signal
import time
from dataclasses import dataclass, field

from . import procs, protocol
from .files import FileOps

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Refused(Exception):
    """The request cannot be served as asked; becomes an error of type ``refused``."""


class Busy(Exception):
    """An exclusive operation is already running; becomes an error of type ``busy``."""


@dataclass
class Context:
    """What handlers may use: identities, paths, limits and shared state."""

    workdir: str
    agent_uid: int
    agent_gid: int
    agent_home: str
    max_output: int
    base_env: dict[str, str]
    files: FileOps
    started: float = field(default_factory=time.monotonic)
    state: dict = field(default_factory=dict)  # per-module state (kernels, browsers, displays)

    def identity(self, user: str) -> tuple[int | None, int | None]:
        if user == "agent":
            return (None, None) if self.agent_uid == os.geteuid() else (self.agent_uid, self.agent_gid)
        if user == "root":
            return (None, None)
        raise Refused(f"user must be 'agent' or 'root', not {user!r}")


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
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise Refused("'timeout' must be a positive number of seconds")
    uid, gid = ctx.identity(user)
    full_env = dict(ctx.base_env)
    if user == "root":
        full_env["HOME"] = "/root"
    if env:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise Refused("'env' must map strings to strings")
        full_env.update(env)
    stdin = base64.b64decode(stdin_b64) if stdin_b64 else None
    return await procs.run(
        ["bash", "-c", cmd] if cmd is not None else argv,
        cwd=ctx.files.resolve(cwd or "."),
        env=full_env,
        stdin=stdin,
        timeout=float(timeout),
        max_output=int(max_output or ctx.max_output),
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
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(ctx.files.pools[user], lambda: method(**args))

    handler.__name__ = f"op_{name}"
    return handler


async def op_health(ctx: Context) -> dict:
    return {
        "ok": True,
        "uptime_s": time.monotonic() - ctx.started,
        "operations": sorted(CORE_OPS) + sorted(_plugin_names()),
        "server_version": protocol.VERSION,
    }


async def op_kill_user(ctx: Context) -> dict:
    """Kill every process of the agent's user (judges call this before they look)."""
    if ctx.agent_uid == os.geteuid():
        raise Refused("the agent user is the server's own user here; refusing to kill the server")
    loop = asyncio.get_running_loop()
    return {"killed": await loop.run_in_executor(None, procs.kill_user, ctx.agent_uid)}


CORE_OPS = {
    "exec": op_exec,
    "read_file": _file_op("read_file"),
    "write_file": _file_op("write_file"),
    "list_dir": _file_op("list_dir"),
    "stat": _file_op("stat"),
    "health": op_health,
    "kill_user": op_kill_user,
}


def _plugin_names() -> list[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    return [name[4:-3] + ".*" for name in os.listdir(here) if name.startswith("ops_") and name.endswith(".py")]


class Dispatcher:
    """Finds the handler of an op and enforces per-module exclusivity."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._modules: dict[str, object] = {}
        self._running: dict[str, int] = {}

    def _plugin(self, namespace: str):
        if namespace not in self._modules:
            if not namespace.isidentifier():
                raise Refused(f"unknown operation namespace {namespace!r}")
            try:
                self._modules[namespace] = importlib.import_module(f"{__package__}.ops_{namespace}")
            except ModuleNotFoundError as exc:
                if exc.name and exc.name.endswith(f"ops_{namespace}"):
                    raise Refused(f"unknown operation namespace {namespace!r}") from None
                raise Refused(f"operations {namespace!r} are not available in this image: {exc}") from None
        return self._modules[namespace]

    async def call(self, op: str, args: dict) -> object:
        if not isinstance(op, str):
            raise Refused("'op' must be a string")
        if not isinstance(args, dict):
            raise Refused("'args' must be an object")
        if "." not in op:
            handler = CORE_OPS.get(op)
            if handler is None:
                raise Refused(f"unknown operation {op!r}")
            return await _invoke(handler, self.ctx, args)
        namespace, name = op.split(".", 1)
        module = self._plugin(namespace)
        handler = getattr(module, "OPS", {}).get(name)
        if handler is None:
            raise Refused(f"unknown operation {op!r}")
        exclusive = name in getattr(module, "EXCLUSIVE", ())
        if exclusive:
            if self._running.get(namespace):
                raise Busy(f"{op!r} cannot run while another {namespace} operation is running")
            self._running[namespace] = 1
        try:
            return await _invoke(handler, self.ctx, args)
        finally:
            if exclusive:
                self._running[namespace] = 0


async def _invoke(handler, ctx: Context, args: dict) -> object:
    try:
        return await handler(ctx, **args)
    except TypeError as exc:
        # Wrong or missing argument names are the caller's error, not ours.
        if "argument" in str(exc) and exc.__traceback__ is not None and exc.__traceback__.tb_next is None:
            raise Refused(f"bad arguments: {exc}") from None
        raise


def _error(exc: BaseException) -> dict:
    if isinstance(exc, Refused):
        kind = "refused"
    elif isinstance(exc, Busy):
        kind = "busy"
    elif isinstance(exc, FileNotFoundError):
        kind = "not_found"
    elif isinstance(exc, (PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError, ValueError)):
        kind = "refused"
    elif isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        kind = "timeout"
    else:
        kind = "internal"
    message = f"{type(exc).__name__}: {exc}" if kind == "internal" else str(exc)
    return {"type": kind, "message": message}


class Server:
    def __init__(self, ctx: Context) -> None:
        self.dispatcher = Dispatcher(ctx)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks: dict[int, asyncio.Task] = {}

        def reply(message: dict) -> None:
            if not writer.is_closing():
                writer.write(protocol.encode(message))

        async def serve_one(rid: int, op: str, args: dict) -> None:
            try:
                result = await self.dispatcher.call(op, args)
                reply({"id": rid, "ok": True, "result": result})
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # every failure becomes an answer; the server keeps serving
                reply({"id": rid, "ok": False, "error": _error(exc)})
            finally:
                tasks.pop(rid, None)

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
                    reply({"id": rid, "ok": False, "error": {"type": "refused", "message": "bad or duplicate id"}})
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


async def serve(argv: list[str]) -> None:
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
        files=FileOps(args.workdir, args.agent_uid, args.agent_uid),
    )
    server = Server(ctx)
    sock_dir = os.path.dirname(args.socket)
    tmp_path = args.socket + ".tmp"
    if os.path.exists(tmp_path):
        os.unlink(tmp_path)
    listener = await asyncio.start_unix_server(server.handle, path=tmp_path)
    # Only the owner of the bind-mounted directory (the host user) may connect;
    # the rename makes the socket appear only once it accepts connections.
    owner = os.stat(sock_dir)
    os.chmod(tmp_path, 0o600)
    if os.geteuid() == 0:
        os.chown(tmp_path, owner.st_uid, owner.st_gid)
    os.rename(tmp_path, args.socket)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The TTL ends the container even when the host process that owns it is gone.
    loop.call_later(args.ttl, stop.set)
    async with listener:
        await stop.wait()
    if ctx.agent_uid != os.geteuid():
        procs.kill_user(ctx.agent_uid)
