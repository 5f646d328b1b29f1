"""Who owns a container, and the backstops that remove it when its owner dies.

Every container carries ``boxgym.sandbox=<run id>`` plus its owner process
(pid, the pid's start time, host name) from the moment it is *created*, so it
can be found and removed by label even if the create call's answer was lost.
Three layers make sure none outlives its run:

1. ``aclose`` on the sandbox (the normal path);
2. an ``atexit`` hook and SIGTERM/SIGHUP handlers that remove every container
   of this process's run when the interpreter exits or is told to stop
   (Ctrl-C raises KeyboardInterrupt and unwinds into ``atexit`` as well);
3. the container's own TTL, and ``boxgym gc``, which removes the containers
   of runs whose owner process is gone, for an owner killed with SIGKILL.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .engine import API_VERSION, DockerEngine, docker_socket_path

__all__ = ["Run", "current_run", "gc", "remove_run_sync"]

LABEL_RUN = "boxgym.sandbox"
LABEL_PID = "boxgym.owner.pid"
LABEL_PID_START = "boxgym.owner.start"
LABEL_HOST = "boxgym.owner.host"
#: Set BOXGYM_SESSION to tag every container a process (and its children) creates, e.g. a test session.
LABEL_SESSION = "boxgym.session"


def _pid_start(pid: int) -> str:
    """The pid's start time in clock ticks since boot: tells a pid from a later reuse of it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return ""
    return stat[stat.rindex(b")") + 2 :].split()[19].decode()


@dataclass(frozen=True, slots=True)
class Run:
    """One owner of containers: normally one per process."""

    run_id: str
    pid: int
    pid_start: str
    host: str
    socket_root: Path  # per-sandbox socket directories live below this

    @classmethod
    def new(cls) -> "Run":
        run_id = "r" + uuid.uuid4().hex[:10]
        root = socket_base() / run_id
        root.mkdir(parents=True, mode=0o700)
        pid = os.getpid()
        run = cls(run_id, pid, _pid_start(pid), socket.gethostname(), root)
        (root / "owner").write_text(f"{run.pid} {run.pid_start}\n")  # read by gc when the owner is gone
        return run

    def labels(self) -> dict[str, str]:
        labels = {LABEL_RUN: self.run_id, LABEL_PID: str(self.pid), LABEL_PID_START: self.pid_start, LABEL_HOST: self.host}
        if os.environ.get("BOXGYM_SESSION"):
            labels[LABEL_SESSION] = os.environ["BOXGYM_SESSION"]
        return labels


def socket_base() -> Path:
    return Path(os.environ.get("BOXGYM_SOCKET_DIR") or Path(tempfile.gettempdir()) / f"boxgym-{os.getuid()}")


def _owner_alive(pid: str, start: str | None) -> bool:
    return pid.isdigit() and start is not None and start != "" and _pid_start(int(pid)) == start


_current: Run | None = None
_lock = threading.Lock()


def current_run() -> Run:
    """This process's run, created (with its backstops installed) on first use."""
    global _current
    with _lock:
        if _current is None or _current.pid != os.getpid():  # a forked child gets its own run
            _current = Run.new()
            _install_backstops(_current)
        return _current


# -- backstops -----------------------------------------------------------------


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def _sync_call(method: str, path: str, timeout: float) -> tuple[int, bytes]:
    conn = _UnixHTTPConnection(docker_socket_path(), timeout)
    try:
        conn.request(method, f"/{API_VERSION}{path}")
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def remove_run_sync(run_id: str, *, timeout: float = 10.0) -> int:
    """Remove every container of ``run_id`` without an event loop (exit paths). Returns how many."""
    filters = quote(json.dumps({"label": [f"{LABEL_RUN}={run_id}"]}))
    try:
        status, body = _sync_call("GET", f"/containers/json?all=1&filters={filters}", timeout)
        if status != 200:
            return 0
        removed = 0
        for container in json.loads(body):
            status, _ = _sync_call("DELETE", f"/containers/{container['Id']}?force=true&v=true", timeout)
            removed += status in (204, 404, 409)
        return removed
    except OSError:
        return 0  # no engine: nothing it could have left running


def _cleanup(run: Run) -> None:
    if os.getpid() != run.pid:
        return  # a forked child inherited the hook; the run is its parent's
    remove_run_sync(run.run_id)
    shutil.rmtree(run.socket_root, ignore_errors=True)


def _install_backstops(run: Run) -> None:
    atexit.register(_cleanup, run)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_DFL:
            continue  # the application handles it; atexit still covers a clean exit

        def handler(signum: int, frame: object, _run: Run = run) -> None:
            _cleanup(_run)
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

        signal.signal(sig, handler)


# -- gc for owners that died without cleaning up ---------------------------------


async def gc(engine: DockerEngine, *, dry_run: bool = False) -> list[dict[str, str]]:
    """Remove containers (and socket directories) whose owner process on this host is gone.

    Returns the containers it removed.
    """
    host = socket.gethostname()
    removed = []
    for container in await engine.list_containers(labels={LABEL_RUN: None}):
        labels = container.get("Labels") or {}
        if labels.get(LABEL_HOST) != host:
            continue  # another machine's engine sharing this daemon is not ours to judge
        pid = labels.get(LABEL_PID, "")
        if _owner_alive(pid, labels.get(LABEL_PID_START)):
            continue
        if not dry_run:
            await engine.remove_container(container["Id"])
        removed.append({"id": container["Id"][:12], "run": labels.get(LABEL_RUN, ""), "pid": pid})
    if not dry_run:
        for run_dir in socket_base().glob("r*/"):
            try:
                pid, start = (run_dir / "owner").read_text().split()
            except (OSError, ValueError):
                continue  # not a run directory of ours, or still being created
            if not _owner_alive(pid, start):
                shutil.rmtree(run_dir, ignore_errors=True)
    return removed
