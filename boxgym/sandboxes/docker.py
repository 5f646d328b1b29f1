"""A sandbox that is one hardened Docker container with a tool server inside.

The container's main process (under Docker's ``--init``) is the tool server.
It listens on a Unix socket in a per-sandbox host directory bind-mounted at
``/run/boxgym``; the host connects there, so there is no network and no
``docker exec`` per call. The directory is mode 0700 and owned by the host
user, so the agent's uid inside cannot reach the socket.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import EngineError, SandboxBroken, SandboxClosed, SandboxError
from . import cgroups
from .base import ExecResult, FileInfo, Health, SandboxUsage, User
from .client import ToolClient
from .config import AGENT_UID, WORKDIR, SandboxSpec
from .engine import DockerEngine
from .ownership import Run, current_run

__all__ = ["DockerSandbox", "container_config", "resolve_image_ref"]

SOCKET_DIR = "/run/boxgym"
SOCKET_NAME = "tool.sock"
TOOLSERVER = "/opt/boxgym/toolserver/main.py"
# Host-side slack on top of a command's own timeout, for the server to kill and answer.
CALL_SLACK_S = 10.0


def container_config(spec: SandboxSpec, image: str, run: Run, socket_dir: Path, name: str) -> dict[str, Any]:
    """The Engine API body for one sandbox: every hardening setting is visible here."""
    limits, hard, dl = spec.limits, spec.hardening, spec.deadlines
    cmd = [
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
        "Init": hard.init,
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
        "Ulimits": [{"Name": "core", "Soft": 0, "Hard": 0}, {"Name": "nofile", "Soft": 4096, "Hard": 4096}],
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


async def resolve_image_ref(image: str) -> str:
    """A recipe name ("slim", or "boxgym/slim" with no tag) becomes its current tag; any other reference is used as is."""
    if image.startswith("boxgym/") and ":" not in image:
        image = image[len("boxgym/") :]
    if ":" in image or "/" in image:
        return image
    from .images import resolve_image  # the builder owns recipe names and tags

    return await resolve_image(image)


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
        self._broken: str | None = None
        self.created_at = time.monotonic()
        self._cgroup: cgroups.CgroupFiles | None = None
        self._cgroup_located = False

    # -- creation --------------------------------------------------------------

    @classmethod
    async def create(cls, spec: SandboxSpec, *, engine: DockerEngine, run: Run | None = None) -> "DockerSandbox":
        """Create, start and connect. On any failure or cancellation nothing is left behind."""
        run = run or current_run()
        image = await resolve_image_ref(spec.image)
        name = f"boxgym-{run.run_id}-{uuid.uuid4().hex[:10]}"
        socket_dir = run.socket_root / name
        socket_dir.mkdir(mode=0o700)
        container_id: str | None = None
        try:
            async with asyncio.timeout(spec.deadlines.create):
                container_id = await engine.create_container(container_config(spec, image, run, socket_dir, name), name=name)  # fmt: skip
                await engine.start_container(container_id)
            async with asyncio.timeout(spec.deadlines.ready):
                client = await _connect(engine, container_id, socket_dir / SOCKET_NAME)
            return cls(engine, spec, container_id, name, socket_dir, client)
        except BaseException as exc:
            # Remove by name: the create may have reached the daemon even if its answer did not reach us.
            await asyncio.shield(_discard(engine, container_id or name, socket_dir))
            if isinstance(exc, TimeoutError):
                raise SandboxBroken(f"sandbox {name} did not become ready in time") from None
            raise

    # -- protocol --------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

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
        if self._broken is not None:
            raise SandboxBroken(self._broken)
        try:
            return await self._client.request(op, args, timeout=timeout)
        except SandboxBroken:
            if self._closed:
                raise SandboxClosed(f"sandbox {self.name} was closed during {op}") from None
            self._broken = await self._diagnose()
            raise SandboxBroken(self._broken) from None

    async def _diagnose(self) -> str:
        """Say why the container stopped answering, from several signals (137 alone says little)."""
        try:
            info = await asyncio.wait_for(self._engine.inspect_container(self._id), 5)
        except (EngineError, TimeoutError) as exc:
            return f"sandbox {self.name} lost its tool server and the engine did not say why: {exc}"
        if info is None:
            return f"sandbox {self.name} is gone: its container was removed"
        state = info.get("State", {})
        if state.get("Running"):
            return f"sandbox {self.name}: the tool server connection dropped while the container runs"
        reason = "killed by the out-of-memory killer" if state.get("OOMKilled") else state.get("Error") or "exited"
        return f"sandbox {self.name} died: exit code {state.get('ExitCode')}, {reason}"

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
            data = stdin.encode() if isinstance(stdin, str) else stdin
            args["stdin_b64"] = base64.b64encode(data).decode()
        if max_output is not None:
            args["max_output"] = max_output
        result = await self._request("exec", args, timeout + CALL_SLACK_S)
        return ExecResult(**result)

    async def read_file(self, path: str, *, max_bytes: int | None = None, user: User = "agent") -> bytes:
        result = await self._request(
            "read_file", {"path": path, "max_bytes": max_bytes, "user": user}, self.spec.deadlines.call
        )
        return base64.b64decode(result["data_b64"])

    async def write_file(self, path: str, data: bytes | str, *, mode: int | None = None, user: User = "agent") -> None:
        raw = data.encode() if isinstance(data, str) else data
        args = {"path": path, "data_b64": base64.b64encode(raw).decode(), "mode": mode, "user": user}
        await self._request("write_file", args, self.spec.deadlines.call)

    async def list_dir(self, path: str = ".", *, user: User = "agent") -> list[FileInfo]:
        entries = await self._request("list_dir", {"path": path, "user": user}, self.spec.deadlines.call)
        return [FileInfo(**entry) for entry in entries]

    async def stat(self, path: str, *, user: User = "agent") -> FileInfo:
        return FileInfo(**await self._request("stat", {"path": path, "user": user}, self.spec.deadlines.call))

    async def health(self) -> Health:
        result = await self._request("health", {}, self.spec.deadlines.call)
        return Health(result["ok"], result["uptime_s"], tuple(result["operations"]), result["server_version"])

    async def kill_agent_processes(self) -> int:
        """Kill every process of the agent's user (before judging), returns how many."""
        return (await self._request("kill_user", {}, self.spec.deadlines.call))["killed"]

    async def call(self, op: str, args: Mapping[str, Any] | None = None, *, timeout: float = 30.0) -> Any:
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
        await self._client.aclose()
        await _discard(self._engine, self._id, self._socket_dir, timeout=self.spec.deadlines.close)

    async def __aenter__(self) -> "DockerSandbox":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "broken" if self._broken else "open"
        return f"<DockerSandbox {self.name} {self._id[:12]} {state}>"


async def _connect(engine: DockerEngine, container_id: str, socket_path: Path) -> ToolClient:
    """Wait for the tool server's socket to appear, then connect and check health."""
    delay = 0.002
    polls = 0
    while not socket_path.exists():
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.05)
        polls += 1
        if polls % 20 == 0:  # now and then, check that the container did not die while we wait
            info = await engine.inspect_container(container_id)
            if info is None or not info.get("State", {}).get("Running"):
                raise SandboxBroken(f"container {container_id[:12]} exited before its tool server started")
    client = await ToolClient.connect(str(socket_path), name=container_id[:12])
    try:
        await client.request("health", {}, timeout=10)
    except BaseException:
        await client.aclose()
        raise
    return client


async def _discard(engine: DockerEngine, ref: str, socket_dir: Path, *, timeout: float = 15.0) -> None:
    try:
        await engine.remove_container(ref, timeout=timeout)
    except (EngineError, SandboxError, OSError):
        pass  # the run's label backstop and the TTL remove what this could not
    shutil.rmtree(socket_dir, ignore_errors=True)
