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
import contextlib
import fcntl
import io
import os
import re
import shlex
import shutil
import sys
import tarfile
import weakref
from collections.abc import AsyncIterator
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
from .runner import BuildEvent, Progress, Runner, cache_dir, chroot_mounts, path_in_root, release_tree, scratch_tree

__all__ = ["BuildEvent", "Progress", "build_image", "cache_dir"]

DEBIAN_MIRROR = os.environ.get("BOXGYM_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("BOXGYM_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")


# -- the steps ------------------------------------------------------------------------


class _Build:
    def __init__(self, builder: Runner) -> None:
        self.b = builder
        self.cache = builder.cache

    async def base_tarball(self, suite: str) -> Path:
        """The debootstrapped, apt-configured root of ``suite``, built once and cached."""
        path = self.cache / "base" / f"debian-{suite}-{base_hash(suite)[:12]}.tar"
        if path.exists():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        name = f"debian:{suite}"
        async with scratch_tree(self.cache, f"base-{suite}") as scratch:
            root = scratch / "root"
            async with self.b.step(name, f"debootstrap {suite}"):
                include = ",".join(scripts.DEBOOTSTRAP_INCLUDE)
                await self.b.run(
                    ["debootstrap", f"--variant={scripts.DEBOOTSTRAP_VARIANT}", f"--include={include}",
                     suite, str(root), DEBIAN_MIRROR]
                )  # fmt: skip
            setup = scripts.BASE_SETUP.format(mirror=DEBIAN_MIRROR, security_mirror=SECURITY_MIRROR, suite=suite)
            async with self.b.step(name, "configure apt, apply updates"):
                async with chroot_mounts(self.b, root, self.cache / "apt-archives"):
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
        async with scratch_tree(self.cache, f"wheels-{recipe.name}") as scratch, self.b.step(recipe.name, step):
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
            scratch.mkdir()  # for scratch_tree's cleanup
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
            async with scratch_tree(self.cache, f"rootfs-{recipe.name}") as scratch:
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
        async with chroot_mounts(self.b, root, self.cache / "apt-archives"):
            await self.b.chroot(root, scripts.PREPARE)
            if recipe.packages:
                async with self.b.step(name, f"apt-get install {len(recipe.packages)} packages"):
                    await self.b.chroot(root, scripts.APT_INSTALL.format(packages=shlex.join(recipe.packages)))
            if wheels_task is not None:
                wheels = await wheels_task
                async with self.b.step(name, f"pip install {len(recipe.wheels)} requirements offline"):
                    inside = "/tmp/boxgym-wheels"
                    await asyncio.to_thread(shutil.copytree, wheels, path_in_root(root, inside))
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
        stage = path_in_root(root, "/tmp") / "boxgym-files"
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
                    async with scratch_tree(self.cache, "toolserver") as scratch:
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
        builder = Runner(cache, progress, verbose)
        try:
            build = _Build(builder)
            rootfs = await build.rootfs(recipe, force=force)
            return await build.final(recipe, rootfs, tag, full_hash)
        finally:
            builder.close()
