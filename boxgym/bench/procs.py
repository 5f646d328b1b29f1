"""The benchmarks' child processes: start one in its own session, wait until it answers, read
the CPU its whole tree used, stop it."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

__all__ = ["Child", "cpu_seconds", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                raw = fh.read()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
        children.setdefault(ppid, []).append(int(entry))
        stats[int(entry)] = (utime, stime)
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += sum(stats.get(p, (0, 0)))
        todo.extend(children.get(p, ()))
    return total / tick


class Child:
    def __init__(
        self, name: str, argv: list[str], health_url: str, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name, self.health_url = name, health_url
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})}
        )

    async def wait_ready(self, session: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            try:
                async with session.get(self.health_url) as r:
                    if r.status == 200:
                        return
            except Exception:
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} did not become ready in {timeout:.0f}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 15)  # its own session: the whole tree, and only it
                self.proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=10)
        self._log.close()
