"""Building a recipe's image: debootstrap, apt and pip inside a chroot, then ``docker import``.

No registry is involved. A ``debian:<suite>`` base is debootstrapped once and kept
as a tarball in the cache; a recipe that extends another starts from that recipe's
root filesystem image. Each build makes two images:

* ``boxgym/<name>:rootfs-<hash12>``: packages, wheels, files, run commands, the
  agent user and directories. Only a change to these rebuilds it (minutes).
* ``boxgym/<name>:<hash12>``: the rootfs image plus the tool server, one thin
  layer on top (``docker commit``), so a tool-server change rebuilds in seconds.

Python wheels are built on the host (``pip wheel``, cached per requirement set)
because the chroot cannot reach the index, and installed inside with
``pip install --no-index``. A failed step raises :class:`~boxgym.errors.ImageBuildError`
with the command and the tail of its output; the full log stays in the cache.
Mounts under a build root are always released and temporary trees removed, also
on cancellation; an image is tagged only after a smoke check passed in it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import io
import os
import re
import shlex
import shutil
import signal
import sys
import tarfile
import time
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from boxgym.errors import EngineError, ImageBuildError

from . import scripts
from .dockercli import docker, image_info
from .recipes import (
    LABEL_HASH,
    LABEL_RECIPE,
    LABEL_ROOTFS,
    REPOSITORY_PREFIX,
    TOOLSERVER_DEST,
    TOOLSERVER_HELPERS,
    TOOLSERVER_SKIP,
    TOOLSERVER_SOURCE,
    Recipe,
    _sha,
    base_hash,
    get_recipe,
    image_hash,
    iter_tree,
    rootfs_hash,
    rootfs_tag,
)

__all__ = ["BuildEvent", "Progress", "build_image", "cache_dir"]

DEBIAN_MIRROR = os.environ.get("BOXGYM_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("BOXGYM_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
_CHROOT_ENV = ("PATH=" + scripts.ENV_PATH, "HOME=/root", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive")
_TAIL_LINES = 40
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


class _Builder:
    """One ``build_image`` call: its log, its progress and the processes it starts."""

    def __init__(self, cache: Path, progress: Progress | None, verbose: bool) -> None:
        self.cache = cache
        self.progress = progress
        self.verbose = verbose
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

    async def run(self, argv: Sequence[str], *, stdin: int | None = None, stdout: int | None = None) -> str:
        """Run ``argv`` to completion; its output goes to the log. Returns the output (or stderr)."""
        proc = await self.spawn(argv, stdin=stdin, stdout=stdout)
        return await self.wait(proc, argv)

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

    async def wait(self, proc: asyncio.subprocess.Process, argv: Sequence[str]) -> str:
        stream = proc.stdout if proc.stdout is not None else proc.stderr
        tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        chunks: list[str] = []
        try:
            assert stream is not None
            async for raw in stream:
                self.log.write(raw)
                line = raw.decode(errors="replace").rstrip("\n")
                tail.append(line)
                if len(chunks) < 10_000:
                    chunks.append(line)
                if self.verbose:
                    print(f"    {line}", file=sys.stderr)
            await proc.wait()
        except BaseException:
            await _kill_group(proc)
            raise
        finally:
            self.log.flush()
        if proc.returncode != 0:
            raise ImageBuildError(
                f"`{shlex.join(argv)[:300]}` exited with {proc.returncode}; last lines:\n"
                + "\n".join(tail)
                + f"\n(full log: {self.log_path})"
            )
        return "\n".join(chunks)

    async def chroot(self, root: Path, script: str) -> str:
        return await self.run(["chroot", str(root), "/usr/bin/env", "-i", *_CHROOT_ENV, "/bin/sh", "-c", script])

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
                await _kill_group(first)
                raise
            os.close(read_fd)
            read_fd = -1
            _, out = await _gather_or_kill(self.wait(first, producer), self.wait(second, consumer))
            return out
        finally:
            for fd in (read_fd, write_fd):
                if fd >= 0:
                    os.close(fd)


async def _gather_or_kill(*aws):
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
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


def _mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            raw = line.split()[4]
            points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), raw))
    return points


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()).rstrip("/") + "/"
    return [p for p in _mount_points() if p.startswith(prefix) or p + "/" == prefix]


def release_tree(root: Path) -> None:
    """Unmount everything under ``root``, deepest first, then delete it.

    Refuses to delete while anything is still mounted there (a bind mount of the
    host's /dev would otherwise be emptied).
    """
    import subprocess

    for _attempt in range(3):
        mounted = sorted(_mounts_under(root), key=len, reverse=True)
        if not mounted:
            break
        for point in mounted:
            if subprocess.run(["umount", point], capture_output=True, check=False).returncode != 0:
                subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
    left = _mounts_under(root)
    if left:
        raise ImageBuildError(f"could not unmount {left}; unmount them by hand, then remove {root}")
    # rm is several times faster than shutil.rmtree on a root of 50,000 files, and never crosses a mount
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], capture_output=True, check=False)


@contextlib.asynccontextmanager
async def _scratch(cache: Path, label: str) -> AsyncIterator[Path]:
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


class _Mounts:
    """Mounts made inside one chroot; ``release`` is safe to call twice."""

    def __init__(self, builder: _Builder, root: Path) -> None:
        self.builder = builder
        self.root = root

    async def proc(self) -> None:
        await self.builder.run(["mount", "-t", "proc", "proc", str(self.root / "proc")])

    async def bind(self, source: Path, target: str) -> None:
        dest = self.root / target.lstrip("/")
        dest.mkdir(parents=True, exist_ok=True)
        await self.builder.run(["mount", "--bind", str(source), str(dest)])

    async def release(self) -> None:
        for point in sorted(_mounts_under(self.root), key=len, reverse=True):
            await self.builder.run(["umount", point])


@contextlib.asynccontextmanager
async def _chroot_mounts(builder: _Builder, root: Path, apt_cache: Path) -> AsyncIterator[None]:
    mounts = _Mounts(builder, root)
    (apt_cache / "partial").mkdir(parents=True, exist_ok=True)
    resolv = root / "etc" / "resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    shutil.copyfile("/etc/resolv.conf", resolv)
    try:
        await mounts.proc()
        await mounts.bind(apt_cache, "/var/cache/apt/archives")
        yield
    finally:
        await asyncio.shield(mounts.release())


# -- the steps ------------------------------------------------------------------------


class _Build:
    def __init__(self, builder: _Builder) -> None:
        self.b = builder
        self.cache = builder.cache

    async def base_tarball(self, suite: str) -> Path:
        """The debootstrapped, apt-configured root of ``suite``, built once and cached."""
        path = self.cache / "base" / f"debian-{suite}-{base_hash(suite)[:12]}.tar"
        if path.exists():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        name = f"debian:{suite}"
        async with _scratch(self.cache, f"base-{suite}") as scratch:
            root = scratch / "root"
            async with self.b.step(name, f"debootstrap {suite}"):
                include = ",".join(scripts.DEBOOTSTRAP_INCLUDE)
                await self.b.run(
                    ["debootstrap", f"--variant={scripts.DEBOOTSTRAP_VARIANT}", f"--include={include}",
                     suite, str(root), DEBIAN_MIRROR]
                )  # fmt: skip
            setup = scripts.BASE_SETUP.format(mirror=DEBIAN_MIRROR, security_mirror=SECURITY_MIRROR, suite=suite)
            async with self.b.step(name, "configure apt, apply updates"):
                async with _chroot_mounts(self.b, root, self.cache / "apt-archives"):
                    await self.b.chroot(root, setup)
                await self.b.chroot(root, "rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin")
                _drop_debs(root)
            async with self.b.step(name, "cache the base root"):
                partial = path.with_suffix(".tar.partial")
                await self.b.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."])
                partial.rename(path)
        return path

    async def wheels(self, recipe: Recipe, python: tuple[int, int]) -> Path:
        """A directory of wheels for ``recipe.wheels`` (and pip itself), built on the host once."""
        key = _sha({"wheels": recipe.wheels, "pip": scripts.BUILD_PIP, "python": python})[:16]
        dest = self.cache / "wheels" / key
        if (dest / ".complete").exists():
            return dest
        interpreter = _host_python(python)
        step = f"build {len(recipe.wheels)} wheels and their dependencies on the host"
        async with _scratch(self.cache, f"wheels-{recipe.name}") as scratch, self.b.step(recipe.name, step):
            pip = [interpreter, "-m", "pip", "--disable-pip-version-check"]
            await self.b.run([*pip, "wheel", "--progress-bar", "off", "--wheel-dir", str(scratch), *recipe.wheels])
            await self.b.run(
                [*pip, "download", "--no-deps", "--only-binary=:all:", "--progress-bar", "off", "--dest", str(scratch),
                 scripts.BUILD_PIP]
            )  # fmt: skip
            (scratch / ".complete").touch()
            shutil.rmtree(dest, ignore_errors=True)
            dest.parent.mkdir(parents=True, exist_ok=True)
            scratch.rename(dest)
            scratch.mkdir()  # for _scratch's cleanup
        return dest

    async def rootfs(self, recipe: Recipe, *, force: bool) -> str:
        """Make sure ``recipe``'s rootfs image exists; return its tag."""
        tag = rootfs_tag(recipe)
        if not force and await image_info(tag) is not None:
            return tag
        suite = recipe.debian_suite
        parent = None if suite is not None else get_recipe(recipe.base)
        parent_tag = None if parent is None else await self.rootfs(parent, force=False)
        python = scripts.SUITE_PYTHON.get(_suite_of(recipe), (3, 11))
        wheels_task = asyncio.ensure_future(self.wheels(recipe, python)) if recipe.wheels else None
        try:
            async with _scratch(self.cache, f"rootfs-{recipe.name}") as scratch:
                root = scratch / "root"
                root.mkdir()
                if parent_tag is None:
                    assert suite is not None
                    tarball = await self.base_tarball(suite)
                    async with self.b.step(recipe.name, f"unpack the debian:{suite} base"):
                        await self.b.run(["tar", "-C", str(root), "--numeric-owner", "-xpf", str(tarball)])
                else:
                    async with self.b.step(recipe.name, f"unpack {parent_tag}"):
                        await self._export(parent_tag, root)
                await self._fill(recipe, root, wheels_task)
                return await self._import(recipe, root, tag)
        finally:
            if wheels_task is not None and not wheels_task.done():
                wheels_task.cancel()
                await asyncio.gather(wheels_task, return_exceptions=True)

    async def _export(self, image: str, root: Path) -> None:
        container = (await docker("create", image, "/bin/true")).strip()
        try:
            await self.b.pipe(["docker", "export", container], ["tar", "-C", str(root), "--numeric-owner", "-xpf", "-"])
        finally:
            with contextlib.suppress(EngineError):
                await asyncio.shield(docker("rm", "--force", container))
        (root / ".dockerenv").unlink(missing_ok=True)

    async def _fill(self, recipe: Recipe, root: Path, wheels_task: asyncio.Future[Path] | None) -> None:
        name = recipe.name
        async with _chroot_mounts(self.b, root, self.cache / "apt-archives"):
            await self.b.chroot(root, scripts.PREPARE)
            if recipe.packages:
                async with self.b.step(name, f"apt-get install {len(recipe.packages)} packages"):
                    await self.b.chroot(root, scripts.APT_INSTALL.format(packages=shlex.join(recipe.packages)))
            if wheels_task is not None:
                wheels = await wheels_task
                async with self.b.step(name, f"pip install {len(recipe.wheels)} requirements offline"):
                    inside = "/tmp/boxgym-wheels"
                    await asyncio.to_thread(shutil.copytree, wheels, root / inside.lstrip("/"))
                    pip_wheel = next(wheels.glob("pip-*.whl")).name
                    await self.b.chroot(
                        root,
                        scripts.PIP_INSTALL.format(
                            pip=f"{inside}/{pip_wheel}", wheels=inside, requirements=shlex.join(recipe.wheels)
                        ),
                    )
            if recipe.files:
                async with self.b.step(name, f"copy {len(recipe.files)} files"):
                    await self._copy_files(recipe, root)
            for command in recipe.run:
                async with self.b.step(name, f"run {command[:60]!r}"):
                    await self.b.chroot(root, command)
            async with self.b.step(name, "add the agent user and boxgym directories"):
                await self.b.chroot(root, scripts.BOXGYM_LAYER)
        async with self.b.step(name, "clean up"):
            await self.b.chroot(root, scripts.CLEANUP)
            _drop_debs(root)

    async def _copy_files(self, recipe: Recipe, root: Path) -> None:
        # Stage under the root's /tmp, then copy from inside the chroot, where symlinks in
        # the destination path resolve inside the image and never onto the host.
        stage = root / "tmp" / "boxgym-files"
        commands = []
        for index, (dest, source) in enumerate(recipe.files):
            staged = stage / str(index)
            if isinstance(source, bytes):
                staged.parent.mkdir(parents=True, exist_ok=True)
                staged.write_bytes(source)
                staged.chmod(0o644)
            elif source.is_dir():
                await asyncio.to_thread(
                    shutil.copytree, source, staged, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            else:
                staged.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, staged)
            inside = f"/tmp/boxgym-files/{index}"
            if staged.is_dir():
                commands.append(f"mkdir -p {shlex.quote(dest)} && cp -R {inside}/. {shlex.quote(dest)}")
            else:
                commands.append(f'mkdir -p "$(dirname {shlex.quote(dest)})" && cp {inside} {shlex.quote(dest)}')
        await self.b.chroot(root, "set -eu; umask 022; " + "; ".join(commands) + "; rm -rf /tmp/boxgym-files")

    async def _import(self, recipe: Recipe, root: Path, tag: str) -> str:
        changes = [
            *scripts.IMAGE_CHANGES,
            f"LABEL {LABEL_RECIPE}={recipe.name}",
            f"LABEL {LABEL_ROOTFS}={rootfs_hash(recipe)}",
        ]
        async with self.b.step(recipe.name, "docker import"):
            out = await self.b.pipe(
                ["tar", "-C", str(root), "--numeric-owner", "-c", "."],
                ["docker", "import", *(f"--change={c}" for c in changes), "-"],
            )
            image_id = _image_id(out)
            await _tag_checked(image_id, tag, check=None)
        return tag

    async def final(self, recipe: Recipe, rootfs: str, tag: str, full_hash: str) -> str:
        toolserver = TOOLSERVER_SOURCE if TOOLSERVER_SOURCE.is_dir() else None
        async with self.b.step(recipe.name, "add the tool server" if toolserver else "finish (no tool server found)"):
            container = (await docker("create", rootfs, "/bin/true")).strip()
            try:
                if toolserver is not None:
                    async with _scratch(self.cache, "toolserver") as scratch:
                        helpers = await self._compile_helpers(toolserver, scratch)
                        archive = await asyncio.to_thread(_toolserver_tar, toolserver, helpers)
                    await docker("cp", "-", f"{container}:{Path(TOOLSERVER_DEST).parent}", stdin=archive)
                image_id = (await docker("commit", f"--change=LABEL {LABEL_HASH}={full_hash}", container)).strip()
            finally:
                with contextlib.suppress(EngineError):
                    await asyncio.shield(docker("rm", "--force", container))
        async with self.b.step(recipe.name, f"check and tag {tag}"):
            await _tag_checked(image_id, tag, check=scripts.SMOKE_CHECK.format(toolserver=toolserver is not None))
        return tag

    async def _compile_helpers(self, toolserver: Path, scratch: Path) -> dict[str, Path]:
        """``{path in the tool server: compiled binary}`` for each C helper whose source is there."""
        out = {}
        for source, target in TOOLSERVER_HELPERS.items():
            if (toolserver / source).is_file():
                binary = scratch / Path(target).name
                compiler = os.environ.get("CC", "cc")
                await self.b.run([compiler, *scripts.CC_FLAGS, "-o", str(binary), str(toolserver / source)])
                out[target] = binary
        return out


def _drop_debs(root: Path) -> None:
    """Packages that debootstrap or apt left in the root's own cache (the shared one is unmounted)."""
    for path in (root / "var/cache/apt/archives").glob("*.deb"):
        path.unlink()


def _suite_of(recipe: Recipe) -> str:
    from .recipes import lineage

    return lineage(recipe)[0].debian_suite or ""


def _image_id(output: str) -> str:
    found = re.findall(r"sha256:[0-9a-f]{64}", output)
    if not found:
        raise ImageBuildError(f"`docker import` printed no image id: {output[-500:]!r}")
    return found[-1]


async def _tag_checked(image_id: str, tag: str, *, check: str | None) -> None:
    """Smoke-check ``image_id`` and tag it; an image that fails is removed, never tagged."""
    previous = await image_info(tag)
    try:
        if check is not None:
            try:
                await docker(
                    "run", "--rm", "--network", "none", "--label", "boxgym.sandbox=image-build", image_id,
                    "python3", "-I", "-c", check, timeout=120,
                )  # fmt: skip
            except EngineError as exc:
                raise ImageBuildError(f"the built image failed its smoke check: {exc.daemon_message}") from exc
        await docker("tag", image_id, tag)
    except BaseException:
        with contextlib.suppress(EngineError):
            await asyncio.shield(docker("rmi", "--force", image_id))
        raise
    if previous is not None and previous.id != image_id:  # a forced rebuild: drop the old image if unused
        with contextlib.suppress(EngineError):
            await docker("rmi", previous.id)


def _toolserver_tar(source: Path, helpers: dict[str, Path]) -> bytes:
    """The tool server as a tar of root-owned, world-readable files under ``toolserver/``."""
    buffer = io.BytesIO()
    base = Path(TOOLSERVER_DEST).name
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_tarinfo(base, tarfile.DIRTYPE, 0o755))
        dirs = {base}
        files = [*iter_tree(source, skip=TOOLSERVER_SKIP), *sorted(helpers.items())]
        for rel, path in files:
            parent = Path(base, rel).parent
            for d in reversed([parent, *parent.parents][:-1]):
                if d.as_posix() not in dirs:
                    dirs.add(d.as_posix())
                    tar.addfile(_tarinfo(d.as_posix(), tarfile.DIRTYPE, 0o755))
            data = path.read_bytes()
            executable = rel in helpers or os.access(path, os.X_OK)
            info = _tarinfo(f"{base}/{rel}", tarfile.REGTYPE, 0o755 if executable else 0o644)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _tarinfo(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _host_python(version: tuple[int, int]) -> str:
    """A host interpreter of the image's Python version, to build wheels that fit it."""
    if sys.version_info[:2] == version:
        return sys.executable
    candidate = shutil.which(f"python{version[0]}.{version[1]}")
    if candidate is None:
        raise ImageBuildError(
            f"the image's Python is {version[0]}.{version[1]}; building its wheels needs a host "
            f"python{version[0]}.{version[1]} with pip on PATH (this is Python {sys.version_info[0]}.{sys.version_info[1]})"
        )
    return candidate


# -- the entry point --------------------------------------------------------------------

_loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def _build_lock(cache: Path, progress: Progress | None) -> AsyncIterator[None]:
    """One build at a time per cache, across processes (they share the base and apt caches)."""
    async with _loop_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
        (cache / "locks").mkdir(parents=True, exist_ok=True)
        lock = await asyncio.to_thread(open, cache / "locks" / "build.lock", "w")
        with lock:
            announced = False
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not announced and progress is not None:
                        progress(BuildEvent("*", "waiting for another boxgym image build to finish", 0.0))
                    announced = True
                    await asyncio.sleep(1.0)
            try:
                # scratch trees of a build that was killed outright (SIGKILL, power loss)
                for stale in (cache / "tmp").glob("*") if (cache / "tmp").is_dir() else ():
                    await asyncio.to_thread(release_tree, stale)
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


async def build_image(
    recipe: Recipe, *, force: bool = False, progress: Progress | None = None, verbose: bool = False
) -> str:
    """Build ``recipe``'s image unless it exists (or ``force``); return its tag.

    Bases that are missing are built too; ``force`` rebuilds only this recipe's own
    images, reusing its bases and the cached Debian root.
    """
    full_hash = await asyncio.to_thread(image_hash, recipe)
    tag = f"{REPOSITORY_PREFIX}{recipe.name}:{full_hash[:12]}"
    if not force and await image_info(tag) is not None:
        return tag
    if os.geteuid() != 0:
        raise ImageBuildError(f"building {tag} needs root (debootstrap, chroot, mount); run the build with sudo")
    cache = cache_dir()
    async with _build_lock(cache, progress):
        if not force and await image_info(tag) is not None:  # another process built it meanwhile
            return tag
        builder = _Builder(cache, progress, verbose)
        try:
            build = _Build(builder)
            rootfs = await build.rootfs(recipe, force=force)
            return await build.final(recipe, rootfs, tag, full_hash)
        finally:
            builder.close()
