"""The container's own resource counters, read from its cgroup (v1 or v2).

The server reads them to tell the truth in ``health`` (a sandbox whose pids
are exhausted is not ok) and to name what happened when a command cannot
start. Inside a container the cgroup file system shows the container's own
group at ``/sys/fs/cgroup``.
"""

from __future__ import annotations

from dataclasses import dataclass

ROOT = "/sys/fs/cgroup"

# (v2 path, v1 path) of each counter, relative to ROOT.
_PIDS_CURRENT = ("pids.current", "pids/pids.current")
_PIDS_MAX = ("pids.max", "pids/pids.max")
_MEMORY_CURRENT = ("memory.current", "memory/memory.usage_in_bytes")
_MEMORY_MAX = ("memory.max", "memory/memory.limit_in_bytes")
_OOM_EVENTS = ("memory.events", "memory/memory.oom_control")  # both have a line "oom_kill N"
_UNLIMITED = 1 << 62  # v1 says "no limit" with a number near 2**63


@dataclass(frozen=True, slots=True)
class Usage:
    """What the container uses against its limits; None where the kernel does not say."""

    pids: int | None
    pids_max: int | None
    memory: int | None
    memory_max: int | None
    oom_kills: int | None  # processes the memory limit's OOM killer killed so far

    @property
    def pids_exhausted(self) -> bool:
        # Two short: the server's own pids are counted too, and it needs one to start anything.
        return self.pids is not None and self.pids_max is not None and self.pids >= self.pids_max - 2


def _read(paths: tuple[str, str], root: str) -> str | None:
    for rel in paths:
        try:
            with open(f"{root}/{rel}") as fh:
                return fh.read()
        except OSError:
            continue
    return None


def _number(paths: tuple[str, str], root: str) -> int | None:
    text = _read(paths, root)
    if text is None or text.strip() == "max":
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return None if value >= _UNLIMITED else value


def _oom_kills(root: str) -> int | None:
    text = _read(_OOM_EVENTS, root)
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


def pids(root: str = ROOT) -> tuple[int | None, int | None]:
    """The pids in use and the limit alone: two small reads, cheap enough after every cell."""
    return _number(_PIDS_CURRENT, root), _number(_PIDS_MAX, root)


def usage(root: str = ROOT) -> Usage:
    return Usage(
        pids=_number(_PIDS_CURRENT, root),
        pids_max=_number(_PIDS_MAX, root),
        memory=_number(_MEMORY_CURRENT, root),
        memory_max=_number(_MEMORY_MAX, root),
        oom_kills=_oom_kills(root),
    )
