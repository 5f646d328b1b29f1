"""A container's CPU-seconds and peak memory, read from its cgroup files on the host.

The container is found through its init process: the Engine API's inspect gives the
host pid, the host's ``/proc/<pid>/cgroup`` the container's cgroup path in each
hierarchy, and ``/proc/self/mountinfo`` where each hierarchy is mounted. The path
must name the container's id, so a pid from another pid namespace (boxgym itself in
a container) or a reused pid never reads another container's figures: the answer is
then "not measured" (``None``), never a wrong number.

=========== ===================================== ==========================
            cgroup v1                             cgroup v2
=========== ===================================== ==========================
CPU         ``cpuacct.usage`` (ns)                ``cpu.stat`` ``usage_usec``
peak memory ``memory.max_usage_in_bytes``         ``memory.peak`` (Linux 5.19+)
=========== ===================================== ==========================

Both figures are the whole container's since it started: every process in it (the tool
server's own ~12 MB and its few milliseconds of CPU included) and, for memory, the files
in its tmpfs mounts (the work directory lives in memory). A read is two small file reads,
no daemon call, so an env can take one after every step. The functions here block (file
reads): call them in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .base import SandboxUsage

__all__ = ["CgroupFiles", "locate", "read_usage"]


@dataclass(frozen=True, slots=True)
class CgroupFiles:
    """Where one container's figures are: the CPU file (and its version) and the peak-memory file."""

    cpu: Path
    cpu_v2: bool  # True: cpu.stat's usage_usec; False: cpuacct.usage in nanoseconds
    peak_memory: Path | None


def _mounts(mountinfo: str) -> tuple[dict[str, tuple[str, str]], tuple[str, str] | None]:
    """v1 controller -> (mount root, mount point), and the v2 (root, mount point), from mountinfo."""
    v1: dict[str, tuple[str, str]] = {}
    v2: tuple[str, str] | None = None
    for line in mountinfo.splitlines():
        head, sep, tail = line.partition(" - ")
        fields, extra = head.split(), tail.split()
        if not sep or len(fields) < 5 or len(extra) < 3:
            continue
        root, point, fstype = fields[3], fields[4], extra[0]
        if fstype == "cgroup":
            for option in extra[2].split(","):
                v1.setdefault(option, (root, point))
        elif fstype == "cgroup2" and v2 is None:
            v2 = (root, point)
    return v1, v2


def _join(mount: tuple[str, str], path: str) -> Path:
    root, point = mount
    if root != "/" and path.startswith(root):
        path = path[len(root) :]
    return Path(point) / path.lstrip("/")


def locate(pid: int, container_id: str, *, proc: Path = Path("/proc")) -> CgroupFiles | None:
    """The cgroup files of the container whose init process is ``pid``; None if not found here."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
        v1, v2 = _mounts((proc / "self" / "mountinfo").read_text())
    except OSError:
        return None
    paths: dict[str, str] = {}
    unified: str | None = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if container_id not in path:
            continue  # not this container's cgroup (another namespace's pid, or a reused one)
        if controllers == "":
            unified = path
        for controller in controllers.split(","):
            paths[controller] = path
    cpu: Path | None = None
    cpu_v2 = False
    peak: Path | None = None
    if "cpuacct" in paths and "cpuacct" in v1:
        cpu = _join(v1["cpuacct"], paths["cpuacct"]) / "cpuacct.usage"
    if "memory" in paths and "memory" in v1:
        peak = _join(v1["memory"], paths["memory"]) / "memory.max_usage_in_bytes"
    if unified is not None and v2 is not None:
        base = _join(v2, unified)
        if cpu is None and (base / "cpu.stat").exists():
            cpu, cpu_v2 = base / "cpu.stat", True
        if peak is None and (base / "memory.peak").exists():
            peak = base / "memory.peak"
    if cpu is None or not cpu.exists():
        return None
    return CgroupFiles(cpu, cpu_v2, peak if peak is not None and peak.exists() else None)


def read_usage(files: CgroupFiles) -> SandboxUsage | None:
    """The figures now; None once the container's cgroup is gone (the container was removed)."""
    try:
        text = files.cpu.read_text()
        if files.cpu_v2:
            usec = next(int(line.split()[1]) for line in text.splitlines() if line.startswith("usage_usec "))
            cpu_s = usec / 1e6
        else:
            cpu_s = int(text) / 1e9
        peak = int(files.peak_memory.read_text()) if files.peak_memory is not None else None
    except (OSError, ValueError, StopIteration):
        return None
    return SandboxUsage(cpu_s, peak)
