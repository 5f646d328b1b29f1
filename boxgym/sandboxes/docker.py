"""A sandbox that is one hardened Docker container with a tool server inside.

The container's PID 1 is ``boxgym-init`` (toolserver/init.c), whose one child
is the tool server. The server listens on a Unix socket in a per-sandbox host
directory bind-mounted at ``/run/boxgym``; the host connects there, so there
is no network and no ``docker exec`` per call. The directory is mode 0700 and
owned by the host user, so the agent's uid inside cannot reach the socket.
The daemon must therefore see this process's files: the first sandbox on each
Docker host checks that it does (the init's first line must appear in the
directory), and refuses the host with a clear error if not (:mod:`.hosts`).

When the server stops answering, :meth:`DockerSandbox._diagnose` says why and
who caused it (the rule is in :mod:`boxgym.errors`): from the line the init
wrote into that directory as the container ended (it survives Docker's
removal of the container), else from the engine's view, re-read until the
container has settled.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import EngineError, EngineMisconfigured, ImageNotFound, SandboxBroken, SandboxClosed, SandboxError, SandboxWrecked
from . import cgroups
from .base import ExecResult, FileInfo, Health, SandboxUsage, User
from .client import ToolClient, payload_bytes
from .config import AGENT_UID, WORKDIR, SandboxSpec
from .engine import DockerEngine
from .hosts import DockerHost
from .ownership import Run, current_run

__all__ = ["DockerSandbox", "container_config", "resolve_image_ref"]

SOCKET_DIR = "/run/boxgym"
SOCKET_NAME = "tool.sock"
#: The line the container's init writes as the container ends (see toolserver/init.c).
NOTE_NAME = "exit"
TOOLSERVER = "/opt/boxgym/toolserver/main.py"
INIT = "/opt/boxgym/toolserver/bin/boxgym-init"
# Host-side slack on top of a command's own timeout, for the server to kill and answer.
CALL_SLACK_S = 10.0
#: How long a closing sandbox waits for its plugins to stop (they die with the container anyway).
PLUGIN_STOP_S = 12.0
#: The init ends the container this long after the TTL, should the server not have ended it.
TTL_GRACE_S = 2.0
#: How long the diagnosis waits for a container whose server stopped answering to settle.
SETTLE_S = 5.0
#: The tool server's exit status when its TTL ended it (toolserver/server.py EXIT_TTL).
_EXIT_TTL = 3
#: How long the first sandbox on a Docker host may run without its init's first line appearing
#: in the socket directory before the host is taken for one that does not see this process's files.
UNSEEN_S = 5.0


def container_config(spec: SandboxSpec, image: str, run: Run, socket_dir: Path, name: str) -> dict[str, Any]:
    """The Engine API body for one sandbox: every hardening setting is visible here."""
    limits, hard, dl = spec.limits, spec.hardening, spec.deadlines
    cmd = [
        INIT, "--ttl", str(dl.ttl + TTL_GRACE_S), "--note", f"{SOCKET_DIR}/{NOTE_NAME}", "--",
        "python3", "-I", TOOLSERVER,
        "--socket", f"{SOCKET_DIR}/{SOCKET_NAME}",
        "--workdir", WORKDIR,
        "--agent-uid", str(AGENT_UID if hard.agent_user else 0),
        "--ttl", str(dl.ttl),
        "--max-output", str(limits.max_output_bytes),
    ]  # fmt: skip
    for key, value in spec.env:
        cmd += ["--env", f"{key}={value}"]
    agent = f"uid={AGENT_UID},gid={AGENT_UID}" if hard.agent_user else "uid=0,gid=0"
    tmpfs = {
        WORKDIR: f"rw,exec,nosuid,nodev,size={limits.workdir_mb}m,{agent},mode=0755",
        "/tmp": f"rw,exec,nosuid,nodev,size={limits.tmp_mb}m,mode=1777",
        "/home/agent": f"rw,exec,nosuid,nodev,size=64m,{agent},mode=0755",
        "/root": "rw,nosuid,nodev,size=16m,mode=0700",
    }
    tmpfs.update(dict(hard.extra_tmpfs))
    host_config: dict[str, Any] = {
        "NetworkMode": hard.network,
        "Init": False,  # boxgym-init is PID 1: it reaps, and enforces the TTL should the server be wedged
        "AutoRemove": True,  # a container that ends by its TTL removes itself
        "ReadonlyRootfs": hard.read_only_root,
        "CapDrop": ["ALL"],
        "CapAdd": list(hard.cap_add),
        "SecurityOpt": ["no-new-privileges:true"] if hard.no_new_privileges else [],
        "PidsLimit": limits.pids,
        "Memory": limits.memory_mb * 1024 * 1024,
        "MemorySwap": limits.memory_mb * 1024 * 1024,  # no swap on top of the limit
        "NanoCpus": int(limits.cpus * 1e9),
        "Tmpfs": tmpfs,
        "Binds": [f"{socket_dir}:{SOCKET_DIR}:rw"],
        "LogConfig": {"Type": "json-file", "Config": {"max-size": limits.log_max_size, "max-file": "1"}},
        "IpcMode": "private",
        # nice 0: agent commands run at SCHED_IDLE (see spawn.c) and may not raise themselves again.
        "Ulimits": [
            {"Name": "core", "Soft": 0, "Hard": 0},
            {"Name": "nofile", "Soft": 4096, "Hard": 4096},
            {"Name": "nice", "Soft": 0, "Hard": 0},
        ],
    }
    return {
        "Image": image,
        "Cmd": cmd,
        "User": "0:0",
        "WorkingDir": WORKDIR,
        "Hostname": "sandbox",
        "Labels": {**run.labels(), "boxgym.name": name, **dict(spec.labels)},
        "NetworkDisabled": hard.network == "none",
        "StopTimeout": 1,
        "HostConfig": host_config,
    }


async def resolve_image_ref(image: str, engine: DockerEngine | None = None) -> str:
    """A recipe name ("slim", or "boxgym/slim" with no tag) becomes its current tag; any other reference is used as is.

    The tag must be on ``engine``'s host (default: the default host); a missing one is an
    :class:`~boxgym.errors.ImageNotFound` that says how to bring it there.
    """
    if image.startswith("boxgym/") and ":" not in image:
        image = image[len("boxgym/") :]
    if ":" in image or "/" in image:
        return image
    from .images import get_recipe, image_tag, resolve_image  # the builder owns recipe names and tags

    if engine is None or engine.host.url == DockerHost().address:
        return await resolve_image(image)
    tag = await asyncio.to_thread(image_tag, get_recipe(image))
    if await engine.inspect_image(tag) is None:
        raise ImageNotFound(
            f"image {tag} of recipe {image!r} is not on the Docker host {engine.host}: copy it there with "
            f"`boxgym images copy {image} --to {engine.host}` (no registry involved), or build it on that "
            f"host's machine with `boxgym images build {image}`"
        )
    return tag


class DockerSandbox:
    """One container, one tool-server connection. Create with :meth:`create`."""

    def __init__(self, engine: DockerEngine, spec: SandboxSpec, container_id: str, name: str, socket_dir: Path, client: ToolClient) -> None:  # fmt: skip
        self._engine = engine
        self.spec = spec
        self._id = container_id
        self.name = name
        self._socket_dir = socket_dir
        self._client = client
        self._closed = False
        self._plugins_used = False
        self._lost: SandboxError | None = None  # why it stopped answering: SandboxBroken or SandboxWrecked
        self.created_at = time.monotonic()
        self._cgroup: cgroups.CgroupFiles | None = None
        self._cgroup_located = False

    # -- creation --------------------------------------------------------------

    @classmethod
    async def create(cls, spec: SandboxSpec, *, engine: DockerEngine, run: Run | None = None) -> "DockerSandbox":
        """Create, start and connect on ``engine``'s host (which must be the one ``spec.host``
        names, if it names one). On any failure or cancellation nothing is left behind."""
        if spec.host is not None and spec.host.address != engine.host.url:
            raise ValueError(f"the spec names the Docker host {spec.host}, the engine is {engine.host}'s")
        run = run or current_run()
        run.uses(engine.host)
        image = await resolve_image_ref(spec.image, engine)
        name = f"boxgym-{run.run_id}-{uuid.uuid4().hex[:10]}"
        socket_dir = run.socket_root / name
        socket_dir.mkdir(mode=0o700)
        container_id: str | None = None
        creating: asyncio.Future[str] | None = None
        try:
            async with asyncio.timeout(spec.deadlines.create):
                # The create call runs on when this one is cancelled, so that its container is known
                # and removed (see _abandon).
                creating = asyncio.ensure_future(engine.create_container(container_config(spec, image, run, socket_dir, name), name=name))  # fmt: skip
                container_id = await asyncio.shield(creating)
                await engine.start_container(container_id)
            async with asyncio.timeout(spec.deadlines.ready):
                client = await _connect(engine, container_id, socket_dir / SOCKET_NAME)
            sandbox = cls(engine, spec, container_id, name, socket_dir, client)
            try:
                for op in spec.warm:
                    await sandbox.call(op, {}, timeout=spec.deadlines.ready)
            except BaseException:
                await asyncio.shield(sandbox.aclose())
                raise
            return sandbox
        except BaseException as exc:
            await asyncio.shield(_abandon(engine, creating, container_id or name, socket_dir, spec.deadlines.close))
            if isinstance(exc, TimeoutError):
                raise SandboxBroken(f"sandbox {name} did not become ready in time") from None
            raise

    # -- protocol --------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def host(self) -> DockerHost:
        """The Docker host the container runs on."""
        return self._engine.host

    @property
    def workdir(self) -> str:
        return WORKDIR

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def isolated(self) -> bool:
        return True

    async def _request(self, op: str, args: dict[str, Any], timeout: float) -> Any:
        if self._closed:
            raise SandboxClosed(f"sandbox {self.name} is closed")
        if self._lost is not None:
            raise type(self._lost)(str(self._lost))
        try:
            return await self._client.request(op, args, timeout=timeout)
        except SandboxBroken:
            if self._closed:
                raise SandboxClosed(f"sandbox {self.name} was closed during {op}") from None
            self._lost = await self._diagnose()
            raise type(self._lost)(str(self._lost)) from None
        except SandboxWrecked as exc:
            self._lost = SandboxWrecked(f"sandbox {self.name}: {exc}")
            raise type(self._lost)(str(self._lost)) from None

    async def _diagnose(self) -> SandboxError:
        """Why the tool server stopped answering, and who caused it (the rule: :mod:`boxgym.errors`).

        The init's note is the best witness; the engine's view comes next, re-read until the
        container has settled: right after the connection drops it may still say "running".
        """
        deadline = time.monotonic() + SETTLE_S
        while True:
            note = _read_note(self._socket_dir / NOTE_NAME)
            if note is not None and note.get("reason") != "running":
                return self._from_note(note)
            try:
                info = await asyncio.wait_for(self._engine.inspect_container(self._id), 5)
            except (EngineError, TimeoutError) as exc:
                return SandboxBroken(f"sandbox {self.name} lost its tool server and the engine did not say why: {exc}")
            state = (info or {}).get("State", {})
            if info is None or not state.get("Running"):
                note = _read_note(self._socket_dir / NOTE_NAME)  # written just before the end, maybe
                if note is not None and note.get("reason") != "running":
                    return self._from_note(note)
                if info is None:
                    return SandboxBroken(f"sandbox {self.name} is gone: its container was killed or removed from outside")
                if note is None and state.get("OOMKilled"):  # no witness inside: the engine's word
                    return SandboxWrecked(self._out_of_memory())
                return SandboxBroken(
                    f"sandbox {self.name} was killed from outside: its container exited (code "
                    f"{state.get('ExitCode')}{', ' + state['Error'] if state.get('Error') else ''}) and its "
                    "init recorded no end of its own"
                )
            if time.monotonic() > deadline:
                return SandboxBroken(f"sandbox {self.name}: the tool server connection dropped while the container runs")
            await asyncio.sleep(0.05)

    def _from_note(self, note: dict[str, str]) -> SandboxError:
        reason, server = note.get("reason"), note.get("server", "")
        if reason == "ttl":
            return SandboxBroken(f"sandbox {self.name} ended at its TTL of {self.spec.deadlines.ttl:g}s (the tool server was not answering)")
        if reason == "stopped":
            return SandboxBroken(f"sandbox {self.name} was stopped from outside")
        if server == f"exit:{_EXIT_TTL}":
            return SandboxBroken(f"sandbox {self.name} ended at its TTL of {self.spec.deadlines.ttl:g}s")
        if server == "signal:9" and note.get("oom_kills", "0") != "0" and note.get("memory_limit_reached") == "1":
            return SandboxWrecked(self._out_of_memory())
        if server == "signal:9":
            return SandboxBroken(f"sandbox {self.name}: its tool server was killed from outside (SIGKILL, not by the memory limit)")
        return SandboxBroken(f"sandbox {self.name}: its tool server ended ({server}); the container's log says more")

    def _out_of_memory(self) -> str:
        limits = self.spec.limits
        return (
            f"sandbox {self.name} ran out of memory and the kernel killed its tool server: what the agent ran "
            f"or wrote filled the {limits.memory_mb} MiB memory limit (files in /workspace, /tmp and the "
            f"home directory count, up to {limits.workdir_mb + limits.tmp_mb + 64} MiB)"
        )

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
        args: dict[str, Any] = {"timeout": timeout, "user": user}
        if isinstance(cmd, str):
            args["cmd"] = cmd
        else:
            args["argv"] = list(cmd)
        if cwd is not None:
            args["cwd"] = cwd
        if env:
            args["env"] = dict(env)
        if stdin is not None:
            args["stdin_b64"] = base64.b64encode(payload_bytes(stdin, "stdin")).decode()
        if max_output is not None:
            args["max_output"] = max_output
        result = await self._request("exec", args, timeout + CALL_SLACK_S)
        return ExecResult(**result)

    async def read_file(
        self, path: str, *, max_bytes: int | None = None, offset: int = 0, user: User = "agent"
    ) -> bytes:
        args = {"path": path, "max_bytes": max_bytes, "offset": offset, "user": user}
        result = await self._request("read_file", args, self.spec.deadlines.call)
        return base64.b64decode(result["data_b64"])

    async def write_file(self, path: str, data: bytes | str, *, mode: int | None = None, user: User = "agent") -> None:
        raw = payload_bytes(data, f"the content for {path!r}")
        args = {"path": path, "data_b64": base64.b64encode(raw).decode(), "mode": mode, "user": user}
        await self._request("write_file", args, self.spec.deadlines.call)

    async def list_dir(self, path: str = ".", *, user: User = "agent") -> list[FileInfo]:
        entries = await self._request("list_dir", {"path": path, "user": user}, self.spec.deadlines.call)
        return [FileInfo(**entry) for entry in entries]

    async def stat(self, path: str, *, user: User = "agent") -> FileInfo:
        return FileInfo(**await self._request("stat", {"path": path, "user": user}, self.spec.deadlines.call))

    async def health(self) -> Health:
        result = await self._request("health", {}, self.spec.deadlines.call)
        return Health(
            result["ok"],
            result["uptime_s"],
            tuple(result["operations"]),
            result["server_version"],
            problems=tuple(result.get("problems", ())),
            pids=result.get("pids"),
            pids_max=result.get("pids_max"),
            oom_kills=result.get("oom_kills"),
        )

    async def kill_agent_processes(self) -> int:
        """Kill every process of the agent's user (before judging); returns how many there were.

        Raises :class:`~boxgym.errors.SandboxWrecked` when they cannot all be killed, or the
        pids they held are not freed, within the server's bound.
        """
        return (await self._request("kill_user", {}, max(self.spec.deadlines.call, 30.0)))["killed"]

    async def call(self, op: str, args: Mapping[str, Any] | None = None, *, timeout: float = 30.0) -> Any:
        if "." in op:
            self._plugins_used = True
        return await self._request(op, dict(args or {}), timeout + CALL_SLACK_S)

    async def usage(self) -> SandboxUsage | None:
        """CPU-seconds and peak memory from the container's cgroup files on the host (not through
        the tool server). The files are located once, on the first call, with one inspect."""
        if self._closed:
            return None
        if not self._cgroup_located:
            self._cgroup_located = True
            try:
                info = await self._engine.inspect_container(self._id)
            except EngineError:
                info = None
            pid = (info or {}).get("State", {}).get("Pid") or 0
            if pid > 0:
                self._cgroup = await asyncio.to_thread(cgroups.locate, pid, self._id)
        if self._cgroup is None:
            return None
        return await asyncio.to_thread(cgroups.read_usage, self._cgroup)

    # -- lifecycle ---------------------------------------------------------------

    async def aclose(self) -> None:
        """Remove the container. Idempotent; survives cancellation and a dead engine."""
        if self._closed:
            return
        self._closed = True
        await asyncio.shield(self._teardown())

    async def _teardown(self) -> None:
        if self._plugins_used and self._lost is None:
            # Kernels, browsers and displays end cleanly (their own files flushed, nothing
            # half-written) before the container is removed; a sandbox that never used a plugin
            # pays no round trip for it.
            with contextlib.suppress(SandboxError, TimeoutError):
                await self._client.request("stop_plugins", {}, timeout=PLUGIN_STOP_S)
        await self._client.aclose()
        await _discard(self._engine, self._id, self._socket_dir, timeout=self.spec.deadlines.close)

    async def __aenter__(self) -> "DockerSandbox":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "broken" if self._lost else "open"
        return f"<DockerSandbox {self.name} {self._id[:12]} {state}>"


def _read_note(path: Path) -> dict[str, str] | None:
    """The init's line (``key=value`` pairs), or None when it wrote none (it cannot have been run)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    return dict(part.split("=", 1) for part in text.split() if "=" in part)


async def _connect(engine: DockerEngine, container_id: str, socket_path: Path) -> ToolClient:
    """Wait for the tool server's socket to appear, then connect and check health."""
    delay = 0.002
    polls = 0
    running_since: float | None = None
    while not socket_path.exists():
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.05)
        polls += 1
        if polls % 20 == 0:  # now and then, check that the container did not die while we wait
            info = await engine.inspect_container(container_id)
            if info is None or not info.get("State", {}).get("Running"):
                raise SandboxBroken(f"container {container_id[:12]} exited before its tool server started")
            if not engine.sees_socket_dirs:
                running_since = running_since or time.monotonic()
                _check_daemon_sees(engine, socket_path.parent, running_since)
    engine.sees_socket_dirs = True
    client = await ToolClient.connect(str(socket_path), name=container_id[:12])
    try:
        await client.request("health", {}, timeout=10)
    except BaseException:
        await client.aclose()
        raise
    return client


def _check_daemon_sees(engine: DockerEngine, socket_dir: Path, running_since: float) -> None:
    """The init writes its first line into the socket directory as soon as it runs; if the
    container has been running a while and nothing is there, the daemon bind-mounted a directory
    of another filesystem (another machine's, or another mount namespace's)."""
    if (socket_dir / NOTE_NAME).exists():
        engine.sees_socket_dirs = True
    elif time.monotonic() - running_since > UNSEEN_S:
        raise EngineMisconfigured(
            f"the Docker host {engine.host} does not see this process's files: its container has run for "
            f"{UNSEEN_S:g} s and nothing appeared in the socket directory {socket_dir} that it bind-mounts. "
            "The daemon runs on another machine (a forwarded socket) or in another mount namespace (e.g. a "
            "snap-packaged Docker with a private /tmp: set BOXGYM_SOCKET_DIR to a directory both see). "
            "Run the sandboxes of another machine from a process on it (docs/hosts.md)."
        )


async def _abandon(
    engine: DockerEngine, creating: asyncio.Future[str] | None, ref: str, socket_dir: Path, within: float
) -> None:
    """Remove a container whose start failed or was cancelled. While its create call is still in
    flight, the daemon may not know the name yet: a removal by name would find nothing, and the
    container would land afterwards, created and never started, so no TTL would ever end it.
    Wait for the call's answer first (at most ``within`` seconds), then remove by id, or by name
    when there is no answer."""
    if creating is not None:
        try:
            ref = await asyncio.wait_for(creating, within)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this removal itself is cancelled (the loop ends): the exit backstops remain
        except Exception:  # noqa: BLE001 - the create failed or hangs: the name is all there is
            pass
    await _discard(engine, ref, socket_dir, timeout=within)


async def _discard(engine: DockerEngine, ref: str, socket_dir: Path, *, timeout: float = 15.0) -> None:
    try:
        await engine.remove_container(ref, timeout=timeout)
    except (EngineError, SandboxError, OSError):
        pass  # the run's label backstop and the TTL remove what this could not
    shutil.rmtree(socket_dir, ignore_errors=True)
