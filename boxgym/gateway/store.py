"""The record store: one append-only JSONL file, no server.

Why JSONL rather than SQLite: a record is written on the request path of every call, and one
``os.write`` of one line to an ``O_APPEND`` descriptor costs a few microseconds and never waits on
a lock, where an SQLite commit costs a transaction. Readers need no library either.

Durability, precisely: a record is handed to the kernel (``os.write`` returned) *before* the
response that it describes is released to the client. A crash of the gateway process at any
point after that loses nothing, because the bytes are in the page cache and the kernel writes
them out. A crash of the *machine* can lose the records of the last ``fsync_interval`` seconds:
a background thread fsyncs the file that often (``None`` turns it off). Fsyncing every record
on the event loop would cost milliseconds per call and block every other episode meanwhile.

Each line is one complete record written by one ``os.write``: lines never interleave, and a
torn last line (the disk filled, the machine died mid-write) is skipped by :func:`read_records`.

The store also keeps each episode's records in memory, for the prefix check, for answering SDK
retries and for ``GET /episodes/{id}/records``; :meth:`RecordStore.forget` drops a finished
episode (its records stay in the file and are read back from there if asked for), and beyond
``max_episodes_in_memory`` the least recently written episodes are dropped the same way.

One caveat on "never blocks": ``os.write`` to the page cache takes microseconds, but a kernel
that is throttling writers because too much dirty data awaits the disk can hold it longer; the
background fsync keeps the file's dirty data small so that this stays rare.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from ..errors import GatewayStoreError
from ._json import dumps, loads
from .config import StoreConfig
from .records import CallRecord, record_from_json, record_to_json

__all__ = ["RecordStore", "read_records"]


class RecordStore:
    """Appends records to the file (if any) and indexes them per episode. Closing is idempotent."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.path = Path(config.path) if config.path else None
        self._fd: int | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._episodes: OrderedDict[str, list[CallRecord]] = OrderedDict()  # least recently written first
        self._answered: dict[tuple[str, str], CallRecord] = {}
        self._dirty = False
        self._closed = False
        self.records_written = 0

    # -- writing ---------------------------------------------------------------

    def append(self, record: CallRecord) -> None:
        """Hand the record to the OS and index it. Returns once the kernel holds every byte."""
        if self._closed:
            raise GatewayStoreError("the record store is closed")
        if self._fd is not None:
            data = dumps(record_to_json(record)) + b"\n"
            try:
                written = os.write(self._fd, data)
                while written < len(data):  # a short write (signal, full disk) must not tear the line
                    written += os.write(self._fd, data[written:])
            except OSError as exc:
                raise GatewayStoreError(f"cannot write the record to {self.path}: {exc}") from exc
            self._dirty = True
        held = self._episodes.get(record.episode_id)
        if held is None:
            held = self._episodes[record.episode_id] = []
            if len(self._episodes) > self.config.max_episodes_in_memory:
                self.forget(next(iter(self._episodes)))
        else:
            self._episodes.move_to_end(record.episode_id)
        held.append(record)
        if record.ok and record.request_hash is not None and record.replay_of is None:
            self._answered[(record.episode_id, record.request_hash)] = record
        self.records_written += 1

    async def run_fsync(self) -> None:
        """Fsync the file every ``fsync_interval`` seconds, off the event loop, until cancelled."""
        interval = self.config.fsync_interval
        if self._fd is None or interval is None:
            return
        while True:
            await asyncio.sleep(interval)
            await self._fsync()

    async def _fsync(self) -> None:
        fd = self._fd
        if fd is not None and self._dirty:
            self._dirty = False
            await asyncio.to_thread(os.fsync, fd)

    async def aclose(self) -> None:
        """Fsync what is pending and close the file."""
        if self._closed:
            return
        self._closed = True
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                if self._dirty and self.config.fsync_interval is not None:
                    await asyncio.to_thread(os.fsync, fd)
            finally:
                os.close(fd)

    # -- reading ---------------------------------------------------------------

    def episode(self, episode_id: str) -> list[CallRecord]:
        """The episode's records held in memory, in the order they were written."""
        return list(self._episodes.get(episode_id, ()))

    def history(self, episode_id: str) -> list[CallRecord]:
        """The live list of the episode's records (do not mutate): no copy on the request path."""
        return self._episodes.get(episode_id, [])

    def episode_ids(self) -> list[str]:
        return list(self._episodes)

    def answered(self, episode_id: str, request_hash: str) -> CallRecord | None:
        """The successful record of an identical earlier request in this episode, if any."""
        return self._answered.get((episode_id, request_hash))

    def forget(self, episode_id: str) -> None:
        """Drop a finished episode from memory (the file keeps it)."""
        for r in self._episodes.pop(episode_id, ()):
            if r.request_hash is not None:
                self._answered.pop((episode_id, r.request_hash), None)

    async def load_episode(self, episode_id: str) -> list[CallRecord]:
        """The episode's records: from memory, else read back from the file in a thread."""
        held = self._episodes.get(episode_id)
        if held is not None or self.path is None:
            return list(held or ())
        path = self.path
        return await asyncio.to_thread(lambda: [r for r in read_records(path) if r.episode_id == episode_id])


def read_records(path: str | os.PathLike[str]) -> Iterator[CallRecord]:
    """Yield every complete record of a store file; a torn last line is skipped."""
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                return
            yield record_from_json(loads(raw))
