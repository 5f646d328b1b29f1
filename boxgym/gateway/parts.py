"""A record store written by several gateway workers: which worker owns an episode, and which
files make up the store.

``boxgym gateway serve --workers N --store runs/r1/gateway.jsonl`` runs N processes. Worker ``k``
writes ``runs/r1/gateway.k-of-N.jsonl`` and owns every episode ``e`` with
``worker_of(e, N) == k``: the first 8 bytes of ``blake2b(e)``, big-endian, modulo N. That is the
documented mapping; it does not depend on the process, the machine or Python's hash seed, so a
reader finds an episode's one file without scanning the others.

Readers take the store's name (what ``--store`` was given) and read every part of it
(:func:`store_files`); a part's name says how many workers wrote the store, and a store is
served with that many workers or not at all (:func:`check_layout`): with another count the
episodes would change owners and an episode's records would end up in two files.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from ..errors import GatewayStoreError

__all__ = ["worker_of", "part_path", "store_files", "part_of", "store_of", "check_layout", "may_hold"]


def worker_of(episode_id: str, workers: int) -> int:
    """The worker (0 .. workers-1) that owns ``episode_id`` among ``workers``."""
    if workers <= 1:
        return 0
    digest = hashlib.blake2b(episode_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % workers


def part_path(store: str | os.PathLike[str], index: int, workers: int) -> Path:
    """The file worker ``index`` of ``workers`` writes for the store named ``store``."""
    path = Path(store)
    return path.with_name(f"{path.stem}.{index}-of-{workers}{path.suffix}")


def _parts(store: Path) -> list[tuple[Path, int, int]]:
    pattern = re.compile(re.escape(store.stem) + r"\.(\d+)-of-(\d+)" + re.escape(store.suffix))
    try:
        names = os.listdir(store.parent)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        m = pattern.fullmatch(name)
        if m is not None and int(m[1]) < int(m[2]):
            found.append((store.parent / name, int(m[1]), int(m[2])))
    return sorted(found, key=lambda p: (p[2], p[1]))


_PART = re.compile(r"\.(\d+)-of-(\d+)(\.[^.]*)?$")


def part_of(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(index, workers)`` if ``path`` is a worker's part of a store, else None."""
    m = _PART.search(Path(path).name)
    return (int(m[1]), int(m[2])) if m is not None and int(m[1]) < int(m[2]) else None


def store_of(path: str | os.PathLike[str]) -> Path:
    """The store a file belongs to: the name without ``.k-of-N`` for a part, else the file itself."""
    path = Path(path)
    if part_of(path) is None:
        return path
    return path.with_name(_PART.sub(lambda m: m[3] or "", path.name))


def store_files(store: str | os.PathLike[str]) -> tuple[Path, ...]:
    """The files that make up the store named ``store``: the file itself if it exists (one
    gateway process wrote it), and its workers' parts, in worker order."""
    path = Path(store)
    own = (path,) if path.exists() else ()
    return own + tuple(p for p, _, _ in _parts(path))


def may_hold(path: str | os.PathLike[str], episode_id: str) -> bool:
    """Whether the file can hold records of ``episode_id``: a part holds its worker's episodes only."""
    part = part_of(path)
    return part is None or worker_of(episode_id, part[1]) == part[0]


def check_layout(store: str | os.PathLike[str], workers: int) -> None:
    """Refuse to serve ``store`` with ``workers`` processes if files of another count are there."""
    path = Path(store)
    counts = {n for _, _, n in _parts(path)}
    if path.exists() and path.stat().st_size > 0:
        counts.add(1)
    others = sorted(counts - {workers})
    if others:
        was = "one gateway process" if others == [1] else " and ".join(f"{n} workers" for n in others)
        raise GatewayStoreError(
            f"{path} was written by {was}: serve it with --workers {others[0]}, or give another --store"
            " (each episode belongs to one worker's file, so the count cannot change)"
        )
