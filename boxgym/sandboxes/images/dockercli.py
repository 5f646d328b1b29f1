"""The image builder's one seam to the container engine: the ``docker`` command.

The builder streams a root filesystem into ``docker import`` and copies files into a
created container, which the CLI does well; the few queries (inspect, list, remove)
go the same way so that failures translate in one place. A call can name a Docker host
(:mod:`boxgym.sandboxes.hosts`); the default is the CLI's own (``DOCKER_HOST``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from typing import Any

from boxgym.errors import EngineError, EngineUnavailable

from ..hosts import DockerHost

__all__ = ["ImageInfo", "docker", "host_flags", "image_info", "list_labelled_images"]

_UNAVAILABLE_HINTS = ("Cannot connect to the Docker daemon", "Is the docker daemon running", "error during connect")


@dataclass(frozen=True, slots=True)
class ImageInfo:
    id: str
    tags: tuple[str, ...]
    labels: dict[str, str]
    size: int  # bytes
    created: str  # RFC 3339, as the engine reports it


def _docker_binary() -> str:
    binary = shutil.which("docker")
    if binary is None:
        raise EngineUnavailable("the `docker` command is not on PATH; boxgym builds and lists images through it")
    return binary


def host_flags(host: DockerHost | None) -> list[str]:
    """The docker CLI's global flags that point it at ``host`` (none for the default)."""
    if host is None or not host.url:
        return []
    flags = ["--host", host.url]
    if host.tls is not None:
        flags += ["--tlsverify", "--tlscacert", host.tls.ca, "--tlscert", host.tls.cert, "--tlskey", host.tls.key]
    return flags


async def docker(
    *args: str, stdin: int | bytes | None = None, timeout: float | None = 120.0, host: DockerHost | None = None
) -> str:
    """Run ``docker ARGS`` (on ``host``) and return its stdout; raise an :class:`EngineError` on failure.

    ``stdin`` is a file descriptor to read from, or bytes to send.
    """
    proc = await asyncio.create_subprocess_exec(
        _docker_binary(),
        *host_flags(host),
        *args,
        stdin=stdin
        if isinstance(stdin, int)
        else (asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate(stdin if isinstance(stdin, bytes) else None)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        message = err.decode(errors="replace").strip()
        cls = EngineUnavailable if any(hint in message for hint in _UNAVAILABLE_HINTS) else EngineError
        raise cls(f"`docker {' '.join(args[:3])}` failed: {message}", daemon_message=message)
    return out.decode(errors="replace")


def _info(raw: dict[str, Any]) -> ImageInfo:
    return ImageInfo(
        id=raw["Id"],
        tags=tuple(raw.get("RepoTags") or ()),
        labels=dict((raw.get("Config") or {}).get("Labels") or {}),
        size=int(raw.get("Size") or 0),
        created=raw.get("Created", ""),
    )


async def image_info(ref: str, *, host: DockerHost | None = None) -> ImageInfo | None:
    """The image ``ref`` (a tag or an id), or ``None`` if the engine has no such image."""
    try:
        out = await docker("image", "inspect", ref, host=host)
    except EngineUnavailable:
        raise
    except EngineError as exc:
        if "No such image" in (exc.daemon_message or "") or "No such object" in (exc.daemon_message or ""):
            return None
        raise
    return _info(json.loads(out)[0])


async def list_labelled_images(label: str, *, host: DockerHost | None = None) -> list[ImageInfo]:
    """Every image that carries ``label`` (any value), inspected."""
    ids = (await docker("images", "--quiet", "--no-trunc", "--filter", f"label={label}", host=host)).split()
    if not ids:
        return []
    out = await docker("image", "inspect", *dict.fromkeys(ids), host=host)
    return [_info(raw) for raw in json.loads(out)]
