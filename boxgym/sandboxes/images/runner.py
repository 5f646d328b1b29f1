"""How the image builder runs things: commands with a log and a tail, mounts, scratch trees.

Every command runs in its own process group, so cancelling a step (Ctrl-C, SIGTERM,
a caller's timeout) ends the whole tree it started, not just the direct child.
Scratch trees live in the cache (they can be gigabytes) and are deleted only after
everything mounted beneath them is unmounted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from boxgym.errors import ImageBuildError

from . import scripts

__all__ = [
    "BuildEvent",
    "Progress",
    "Runner",
    "cache_dir",
    "chroot_mounts",
    "kill_group",
    "path_in_root",
    "release_tree",
    "scratch_tree",
]

_CHROOT_ENV = ("PATH=" + scripts.ENV_PATH, "HOME=/root", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive")
_TAIL_LINES = 40
_TAIL_BYTES = 16 * 1024
_KEEP_OUTPUT = 1024 * 1024
_KEEP_LOGS = 20


@dataclass(frozen=True, slots=True)
class BuildEvent:
    """A build step started (``step_s is None``) or ended (``step_s`` = its duration)."""

    recipe: str
    step: str
    elapsed_s: float  # since this build started
    step_s: float | None = None


Progress = Callable[[BuildEvent], None]


def cache_dir() -> Path:
    """``$BOXGYM_CACHE``, else ``$XDG_CACHE_HOME/boxgym``, else ``~/.cache/boxgym``."""
    if os.environ.get("BOXGYM_CACHE"):
        return Path(os.environ["BOXGYM_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "boxgym"


# -- running commands -------------------------------------------------------------------


class Runner:
    """One ``build_image`` call: its log, its progress and the processes it starts."""

    def __init__(self, cache: Path, progress: Progress | None, verbose: bool) -> None:
        self.cache = cache
        self.progress = progress
        self.verbose = verbose
        # a hung mirror or index must not hang the build (and CI) forever
        self.command_timeout = float(os.environ.get("BOXGYM_BUILD_COMMAND_TIMEOUT", "1800"))
        self.started = time.monotonic()
        (cache / "logs").mkdir(parents=True, exist_ok=True)
        for old in sorted((cache / "logs").glob("build-*.log"))[:-_KEEP_LOGS]:
            old.unlink(missing_ok=True)
        self.log_path = cache / "logs" / f"build-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        self.log = open(self.log_path, "ab")  # noqa: SIM115 -- closed in close()

    def close(self) -> None:
        self.log.close()

    @contextlib.asynccontextmanager
    async def step(self, recipe: str, name: str) -> AsyncIterator[None]:
        began = time.monotonic()
        self._emit(BuildEvent(recipe, name, began - self.started))
        self.log.write(f"\n=== [{recipe}] {name}\n".encode())
        yield
        now = time.monotonic()
        self._emit(BuildEvent(recipe, name, now - self.started, now - began))

    def _emit(self, event: BuildEvent) -> None:
        if self.progress is not None:
            self.progress(event)

    async def run(
        self, argv: Sequence[str], *, stdin: int | None = None, stdout: int | None = None, shown: str | None = None
    ) -> str:
        """Run ``argv`` to completion; its output goes to the log. Returns the output (or stderr).

        ``shown`` is how a failure names the command (default: ``argv``).
        """
        proc = await self.spawn(argv, stdin=stdin, stdout=stdout)
        return await self.wait(proc, argv, shown=shown)

    async def spawn(self, argv: Sequence[str], *, stdin: int | None = None, stdout: int | None = None):
        self.log.write(f"$ {shlex.join(argv)}\n".encode())
        self.log.flush()
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL if stdin is None else stdin,
                stdout=asyncio.subprocess.PIPE if stdout is None else stdout,
                stderr=asyncio.subprocess.STDOUT if stdout is None else asyncio.subprocess.PIPE,
                start_new_session=True,  # a terminal's Ctrl-C reaches us, and we end the whole group
            )
        except FileNotFoundError as exc:
            raise ImageBuildError(f"`{argv[0]}` is not installed; the image builder needs it") from exc

    async def wait(self, proc: asyncio.subprocess.Process, argv: Sequence[str], *, shown: str | None = None) -> str:
        stream = proc.stdout if proc.stdout is not None else proc.stderr
        assert stream is not None
        output = bytearray()  # the first _KEEP_OUTPUT bytes, returned
        tail = bytearray()  # the last _TAIL_BYTES, shown when the command fails
        what = shown or "`" + shlex.join(argv)[:500] + "`"
        try:
            async with asyncio.timeout(self.command_timeout):
                while chunk := await stream.read(65536):  # chunks, not lines: a line may be any length
                    self.log.write(chunk)
                    if len(output) < _KEEP_OUTPUT:
                        output += chunk[: _KEEP_OUTPUT - len(output)]
                    tail = (tail + chunk)[-_TAIL_BYTES:]
                    if self.verbose:
                        sys.stderr.write(chunk.decode(errors="replace"))
                await proc.wait()
        except TimeoutError:
            await kill_group(proc)
            lines = tail.decode(errors="replace").splitlines()[-_TAIL_LINES:]
            raise ImageBuildError(
                f"{what} ran longer than {self.command_timeout:g}s (BOXGYM_BUILD_COMMAND_TIMEOUT) and was killed; "
                "last lines:\n" + "\n".join(lines) + f"\n(full log: {self.log_path})"
            ) from None
        except BaseException:
            await kill_group(proc)
            raise
        finally:
            self.log.flush()
        if proc.returncode != 0:
            lines = tail.decode(errors="replace").splitlines()[-_TAIL_LINES:]
            raise ImageBuildError(
                f"{what} exited with {proc.returncode}; last lines:\n"
                + "\n".join(lines)
                + f"\n(full log: {self.log_path})"
            )
        return output.decode(errors="replace")

    async def chroot(self, root: Path, script: str) -> str:
        argv = ["chroot", str(root), "/usr/bin/env", "-i", *_CHROOT_ENV, "/bin/sh", "-c", script]
        return await self.run(argv, shown=f"`{script.strip()[:500]}` in the image's root")

    async def pipe(self, producer: Sequence[str], consumer: Sequence[str]) -> str:
        """``producer | consumer``; returns the consumer's output."""
        read_fd, write_fd = os.pipe()
        try:
            first = await self.spawn(producer, stdout=write_fd)
            os.close(write_fd)
            write_fd = -1
            try:
                second = await self.spawn(consumer, stdin=read_fd)
            except BaseException:
                await kill_group(first)
                raise
            os.close(read_fd)
            read_fd = -1
            _, out = await gather_or_kill(self.wait(first, producer), self.wait(second, consumer))
            return out
        finally:
            for fd in (read_fd, write_fd):
                if fd >= 0:
                    os.close(fd)


async def gather_or_kill(*aws):
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def kill_group(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 30.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.shield(asyncio.wait_for(proc.wait(), grace))
            return
        except (TimeoutError, asyncio.CancelledError):
            continue


# -- mounts and scratch trees -------------------------------------------------------------


def mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            raw = line.split()[4]
            points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), raw))
    return points


def mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()).rstrip("/") + "/"
    return [p for p in mount_points() if p.startswith(prefix) or p + "/" == prefix]


def release_tree(root: Path) -> None:
    """Unmount everything under ``root``, deepest first, then delete it.

    Refuses to delete while anything is still mounted there (a bind mount of the
    host's /dev would otherwise be emptied).
    """
    for _attempt in range(3):
        mounted = sorted(mounts_under(root), key=len, reverse=True)
        if not mounted:
            break
        for point in mounted:
            if subprocess.run(["umount", point], capture_output=True, check=False).returncode != 0:
                subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
    left = mounts_under(root)
    if left:
        raise ImageBuildError(f"could not unmount {left}; unmount them by hand, then remove {root}")
    # rm is several times faster than shutil.rmtree on a root of 50,000 files, and never crosses a mount
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], capture_output=True, check=False)


@contextlib.asynccontextmanager
async def scratch_tree(cache: Path, label: str) -> AsyncIterator[Path]:
    """A temporary tree in the cache (same filesystem, may be big), released whatever happens."""
    parent = cache / "tmp"
    parent.mkdir(parents=True, exist_ok=True)
    path = parent / f"{label}-{os.getpid()}-{time.monotonic_ns()}"
    path.mkdir()
    try:
        yield path
    finally:
        # in a thread that is not cancelled: a second Ctrl-C must not leave mounts behind
        await asyncio.shield(asyncio.to_thread(release_tree, path))


def path_in_root(root: Path, path: str) -> Path:
    """``path`` of the image under ``root`` on the host, refusing one that a symlink leads out of root."""
    host = root / path.lstrip("/")
    resolved = host.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ImageBuildError(f"{path} in the image resolves to {resolved} on the host, outside the build root")
    return host


class _Mounts:
    """Mounts made inside one chroot; ``release`` is safe to call twice."""

    def __init__(self, builder: Runner, root: Path) -> None:
        self.builder = builder
        self.root = root

    async def proc(self) -> None:
        await self.builder.run(["mount", "-t", "proc", "proc", str(path_in_root(self.root, "/proc"))])

    async def bind(self, source: Path, target: str) -> None:
        dest = path_in_root(self.root, target)
        dest.mkdir(parents=True, exist_ok=True)
        await self.builder.run(["mount", "--bind", str(source), str(dest)])

    async def release(self) -> None:
        for point in sorted(mounts_under(self.root), key=len, reverse=True):
            await self.builder.run(["umount", point])


@contextlib.asynccontextmanager
async def chroot_mounts(builder: Runner, root: Path, apt_cache: Path) -> AsyncIterator[None]:
    mounts = _Mounts(builder, root)
    (apt_cache / "partial").mkdir(parents=True, exist_ok=True)
    resolv = root / "etc" / "resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    resolv = path_in_root(root, "/etc/resolv.conf")
    shutil.copyfile("/etc/resolv.conf", resolv)
    try:
        await mounts.proc()
        await mounts.bind(apt_cache, "/var/cache/apt/archives")
        yield
    finally:
        await asyncio.shield(mounts.release())
