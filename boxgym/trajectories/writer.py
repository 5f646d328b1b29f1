"""Append-only, crash-safe trajectory writing and reading.

One ``O_APPEND`` file per run; each record is one ``os.write`` of one line, so
lines from concurrent episodes never interleave inside a line and a record is
in the OS's hands before the call returns (it survives a crash of the
process; ``fsync=True`` also makes it survive a crash of the machine, at a
large cost per step).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from .records import Record, from_json, to_json

__all__ = ["TrajectoryWriter", "read_records", "read_episodes"]

FILENAME = "trajectories.jsonl"


def _default(obj: object) -> object:
    # Enums, tuples of records and anything else JSON does not know become strings
    # rather than losing the whole record.
    if hasattr(obj, "value"):
        return obj.value
    return repr(obj)


class TrajectoryWriter:
    """Writes records to ``<run_dir>/trajectories.jsonl``. Closing is idempotent."""

    def __init__(self, run_dir: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(run_dir) / FILENAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._fsync = fsync
        self.records_written = 0

    def write(self, record: Record) -> None:
        if self._fd is None:
            raise ValueError("trajectory writer is closed")
        line = json.dumps(to_json(record), separators=(",", ":"), default=_default) + "\n"
        os.write(self._fd, line.encode())
        if self._fsync:
            os.fsync(self._fd)
        self.records_written += 1

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> "TrajectoryWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_records(run_dir: str | os.PathLike[str]) -> Iterator[Record]:
    """Yield every complete record; a torn last line (a crash mid-write) is skipped."""
    path = Path(run_dir) / FILENAME
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                return
            yield from_json(json.loads(raw))


def read_episodes(run_dir: str | os.PathLike[str]) -> dict[str, list[Record]]:
    """Group the run's records by episode, in the order they were written."""
    episodes: dict[str, list[Record]] = defaultdict(list)
    for record in read_records(run_dir):
        episodes[record.episode_id].append(record)
    return dict(episodes)
