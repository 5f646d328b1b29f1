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

All three work per Docker host: a run notes each host it creates on (in memory for
the exit hooks, and in its socket directory's ``hosts`` file for ``boxgym gc``, which
then finds the hosts of an owner that died without saying), and the TTL is the
container's own.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

from ..errors import EngineError
from .engine import API_VERSION, DockerEngine
from .hosts import DockerHost, TLSFiles, sync_request

__all__ = ["GcReport", "Run", "current_run", "gc", "gc_hosts", "recorded_hosts", "remove_run_sync"]

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
    #: The Docker hosts this run has created containers on, by address (see :meth:`uses`).
    docker_hosts: dict[str, DockerHost] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def new(cls) -> "Run":
        run_id = "r" + uuid.uuid4().hex[:10]
        root = socket_base() / run_id
        root.mkdir(parents=True, mode=0o700)
        pid = os.getpid()
        run = cls(run_id, pid, _pid_start(pid), socket.gethostname(), root)
        (root / "owner").write_text(f"{run.pid} {run.pid_start}\n")  # read by gc when the owner is gone
        return run

    def uses(self, host: DockerHost) -> None:
        """Note that this run creates containers on ``host`` (before the first create there), so
        its exit hooks and ``boxgym gc`` look there too. A dict lookup once noted."""
        if host.url in self.docker_hosts:
            return
        with _lock:
            if host.url not in self.docker_hosts:
                line = json.dumps({"url": host.url, "tls": asdict(host.tls) if host.tls else None})
                with open(self.socket_root / HOSTS_FILE, "a") as fh:
                    fh.write(line + "\n")
                self.docker_hosts[host.url] = host

    def labels(self) -> dict[str, str]:
        labels = {LABEL_RUN: self.run_id, LABEL_PID: str(self.pid), LABEL_PID_START: self.pid_start, LABEL_HOST: self.host}
        if os.environ.get("BOXGYM_SESSION"):
            labels[LABEL_SESSION] = os.environ["BOXGYM_SESSION"]
        return labels


#: In a run's socket directory: one JSON line per Docker host the run created containers on.
HOSTS_FILE = "hosts"


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


def remove_run_sync(run_id: str, *, hosts: Iterable[DockerHost] = (), timeout: float = 10.0) -> int:
    """Remove every container of ``run_id`` on each of ``hosts`` (default: the default host)
    without an event loop (exit paths). Returns how many."""
    filters = quote(json.dumps({"label": [f"{LABEL_RUN}={run_id}"]}))
    removed = 0
    for host in list(hosts) or [DockerHost()]:
        try:
            status, body = sync_request(host, "GET", f"/{API_VERSION}/containers/json?all=1&filters={filters}", timeout)
            if status != 200:
                continue
            for container in json.loads(body):
                path = f"/{API_VERSION}/containers/{container['Id']}?force=true&v=true"
                status, _ = sync_request(host, "DELETE", path, timeout)
                removed += status in (204, 404, 409)
        except (OSError, EngineError, ValueError):
            continue  # no engine there: nothing it could have left running (or its TTL ends it)
    return removed


def _cleanup(run: Run) -> None:
    if os.getpid() != run.pid:
        return  # a forked child inherited the hook; the run is its parent's
    if run.docker_hosts:
        remove_run_sync(run.run_id, hosts=list(run.docker_hosts.values()))
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


@dataclass(frozen=True, slots=True)
class GcReport:
    """What :func:`gc_hosts` did: the containers it removed (``id``, ``run``, ``pid``, ``host``),
    and the hosts it could not reach, with why."""

    removed: list[dict[str, str]]
    unreachable: dict[str, str]


async def _gc_containers(engine: DockerEngine, dry_run: bool) -> list[dict[str, str]]:
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
        removed.append({"id": container["Id"][:12], "run": labels.get(LABEL_RUN, ""), "pid": pid, "host": engine.host.url})
    return removed


def _run_dirs() -> list[tuple[Path, bool]]:
    """Each run directory under the socket base, and whether its owner is gone."""
    found = []
    for run_dir in socket_base().glob("r*/"):
        try:
            pid, start = (run_dir / "owner").read_text().split()
        except (OSError, ValueError):
            continue  # not a run directory of ours, or still being created
        found.append((run_dir, not _owner_alive(pid, start)))
    return found


def _hosts_of(run_dir: Path) -> list[DockerHost]:
    hosts = []
    try:
        lines = (run_dir / HOSTS_FILE).read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            raw = json.loads(line)
            hosts.append(DockerHost(raw["url"], TLSFiles(**raw["tls"]) if raw.get("tls") else None))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash
    return hosts


def recorded_hosts() -> list[DockerHost]:
    """Every Docker host that a run of this machine (living or not) noted creating containers on."""
    hosts: dict[str, DockerHost] = {}
    for run_dir, _ in _run_dirs():
        for host in _hosts_of(run_dir):
            hosts.setdefault(host.url, host)
    return list(hosts.values())


async def gc(engine: DockerEngine, *, dry_run: bool = False) -> list[dict[str, str]]:
    """Remove the containers on ``engine``'s host whose owner process on this machine is gone,
    and the socket directories of gone owners that used no other host (:func:`gc_hosts` does
    every host). Returns the containers it removed."""
    removed = await _gc_containers(engine, dry_run)
    if not dry_run:
        for run_dir, dead in _run_dirs():
            if dead and {h.url for h in _hosts_of(run_dir)} <= {engine.host.url}:
                shutil.rmtree(run_dir, ignore_errors=True)
    return removed


async def gc_hosts(hosts: Iterable[DockerHost] = (), *, dry_run: bool = False) -> GcReport:
    """:func:`gc` on the default host, on ``hosts``, and on every host a run of this machine
    noted (so the hosts of an owner killed with SIGKILL are found without naming them).

    A host that does not answer is reported and skipped (its containers' TTL still ends them;
    ``boxgym gc --host URL`` cleans it once it is back). A gone owner's socket directory goes
    in any case: what is in it is of no use to anyone once its owner is gone."""
    wanted: dict[str, DockerHost] = {}
    unreachable: dict[str, str] = {}
    try:
        default = DockerHost().resolved()
        wanted[default.url] = default
    except EngineError as exc:
        unreachable["DOCKER_HOST"] = str(exc)
    for host in [*hosts, *recorded_hosts()]:
        wanted.setdefault(host.resolved().url, host.resolved())
    removed: list[dict[str, str]] = []
    for url, host in wanted.items():
        try:
            async with DockerEngine(host=host) as engine:
                removed += await _gc_containers(engine, dry_run)
        except EngineError as exc:
            unreachable[url] = str(exc)
    if not dry_run:
        for run_dir, dead in _run_dirs():
            if dead:
                shutil.rmtree(run_dir, ignore_errors=True)
    return GcReport(removed, unreachable)
