"""What the engine holds of boxgym's images: resolve, ensure, list, prune and copy by recipe.

Another Docker host gets an image by :func:`copy_image`: ``docker save`` on one host streamed
into ``docker load`` on the other, no registry involved. The tag is the recipe's hash, so the
copy is the image a build there would tag.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from dataclasses import dataclass

from boxgym.errors import EngineError, ImageNotFound

from ..hosts import DockerHost
from .build import Progress, build_image
from .dockercli import _docker_binary, docker, host_flags, image_info, list_labelled_images
from .recipes import (
    LABEL_HASH,
    LABEL_RECIPE,
    LABEL_ROOTFS,
    get_recipe,
    image_hash,
    image_tag,
    recipe_names,
    rootfs_hash,
)

__all__ = ["ImageStatus", "copy_image", "ensure_image", "list_images", "prune_images", "resolve_image"]

#: Tags seen to exist in this process. Images are immutable, so a hit stays a hit
#: unless someone prunes underneath us (then starting the sandbox fails loudly).
_present: set[str] = set()


@dataclass(frozen=True, slots=True)
class ImageStatus:
    """One recipe and the image its current definition maps to."""

    recipe: str
    tag: str
    built: bool
    size: int | None = None  # bytes
    created: str | None = None


async def resolve_image(name: str) -> str:
    """The tag of recipe ``name``'s current image; never builds.

    Raises :class:`~boxgym.errors.ImageNotFound` when the recipe is unknown or its
    image is not built, and :class:`~boxgym.errors.EngineUnavailable` when no engine answers.
    """
    recipe = get_recipe(name)
    tag = await asyncio.to_thread(image_tag, recipe)
    if tag in _present:
        return tag
    if await image_info(tag) is None:
        raise ImageNotFound(f"image {tag} of recipe {name!r} is not built; run `boxgym images build {name}`")
    _present.add(tag)
    return tag


async def ensure_image(name: str, *, force: bool = False, progress: Progress | None = None) -> str:
    """The tag of recipe ``name``'s current image, building it (and its bases) when missing."""
    if not force:
        try:
            return await resolve_image(name)
        except ImageNotFound:
            pass
    tag = await build_image(get_recipe(name), force=force, progress=progress)
    _present.add(tag)
    return tag


async def list_images(names: list[str] | None = None, *, host: DockerHost | None = None) -> list[ImageStatus]:
    """The status of each recipe's current image (all known recipes by default) on ``host``."""
    out = []
    for name in names or recipe_names():
        tag = await asyncio.to_thread(image_tag, get_recipe(name))
        info = await image_info(tag, host=host)
        if info is None:
            out.append(ImageStatus(name, tag, built=False))
        else:
            out.append(ImageStatus(name, tag, built=True, size=info.size, created=info.created))
    return out


async def prune_images(
    names: Iterable[str] | None = None, *, everything: bool = False, dry_run: bool = False, host: DockerHost | None = None
) -> tuple[list[str], list[str]]:
    """Remove boxgym images that no known recipe maps to any more (``everything``: all of them).

    ``names`` limits pruning to the images of those recipes (by their label).
    Only images labelled ``boxgym.image.recipe`` are considered; untagged leftovers of a
    forced rebuild go too. Images of recipes this process does not know (registered only
    in some other program) count as stale: load their recipes first.
    Returns ``(removed, failed)`` where ``failed`` holds ``"ref: reason"`` lines.
    """
    keep_final: set[str] = set()
    keep_rootfs: set[str] = set()
    if not everything:
        for name in recipe_names():
            recipe = get_recipe(name)
            keep_final.add(await asyncio.to_thread(image_hash, recipe))
            keep_rootfs.add(await asyncio.to_thread(rootfs_hash, recipe))
    images = await list_labelled_images(LABEL_RECIPE, host=host)
    if names is not None:
        wanted = set(names)
        images = [info for info in images if info.labels.get(LABEL_RECIPE) in wanted]
    # finished images sit on top of their rootfs image: remove them first
    images.sort(key=lambda info: LABEL_HASH not in info.labels)
    removed: list[str] = []
    failed: list[str] = []
    for info in images:
        if LABEL_HASH in info.labels:
            stale = info.labels[LABEL_HASH] not in keep_final
        else:
            stale = info.labels.get(LABEL_ROOTFS) not in keep_rootfs
        if not (stale or not info.tags):
            continue
        for ref in info.tags or (info.id,):
            if dry_run:
                removed.append(ref)
                continue
            try:
                await docker("rmi", ref, host=host)
                removed.append(ref)
            except EngineError as exc:
                failed.append(f"{ref}: {exc.daemon_message or exc}")
    _present.clear()
    return removed, failed


async def copy_image(name: str, *, to: DockerHost, source: DockerHost | None = None, timeout: float = 1800.0) -> tuple[str, bool]:
    """Bring recipe ``name``'s current image from ``source`` (default: the default host) to ``to``.

    Returns ``(tag, copied)``: ``copied`` is False when ``to`` had it already. Raises
    :class:`~boxgym.errors.ImageNotFound` when ``source`` has not built it.
    """
    tag = await asyncio.to_thread(image_tag, get_recipe(name))
    if await image_info(tag, host=to) is not None:
        return tag, False
    if await image_info(tag, host=source) is None:
        raise ImageNotFound(f"image {tag} of recipe {name!r} is not on {source or 'the default host'}: build it there first")
    read, write = os.pipe()
    binary = _docker_binary()
    try:
        save = await asyncio.create_subprocess_exec(
            binary, *host_flags(source), "save", tag, stdout=write, stderr=asyncio.subprocess.PIPE
        )
        try:
            load = await asyncio.create_subprocess_exec(
                binary, *host_flags(to), "load", "--quiet", stdin=read,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
        except BaseException:
            save.kill()
            await save.wait()
            raise
    finally:
        os.close(read)  # the children hold their ends; a dead reader then ends the writer (EPIPE)
        os.close(write)
    try:
        async with asyncio.timeout(timeout):
            (_, save_err), (_, load_err) = await asyncio.gather(save.communicate(), load.communicate())
    except BaseException:
        for proc in (save, load):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        raise
    if save.returncode or load.returncode:
        message = (load_err or save_err).decode(errors="replace").strip()
        raise EngineError(f"copying {tag} to {to} failed: {message}", daemon_message=message)
    return tag, True
