"""The record store: one append-only JSONL file, no server, and an index of it in memory.

Why JSONL rather than SQLite: a record is written on the request path of every call, and one
``os.write`` of one line to an ``O_APPEND`` descriptor costs a few microseconds and never waits on
a lock, where an SQLite commit costs a transaction. Readers need no library either. The line
format (:mod:`boxgym.gateway.lines`) stores a prompt that extends an earlier call as a reference
to it plus the new tokens, so an episode's records grow linearly with its length.

Durability, precisely: a record is handed to the kernel (``os.write`` returned) *before* the
response that it describes is released to the client. A crash of the gateway process at any
point after that loses nothing, because the bytes are in the page cache and the kernel writes
them out. A crash of the *machine* can lose the records of the last ``fsync_interval`` seconds:
a background thread fsyncs the file that often (``None`` turns it off). Fsyncing every record
on the event loop would cost milliseconds per call and block every other episode meanwhile.

Each line is one complete record written by one ``os.write``: lines never interleave. A torn
last line (the disk filled, the machine died mid-write) is cut off when the store is opened
again, so the next record starts on a line of its own.

Memory and the index. The store keeps each episode's records in memory, for the prefix check,
for answering SDK retries and for ``GET /episodes/{id}/records``; :meth:`RecordStore.forget`
drops an episode (its records stay in the file), and beyond ``max_episodes_in_memory`` the least
recently written episodes are dropped the same way. The index maps every episode in the file to
the offsets of its lines; it is built by one pass over the file when the store opens (reading
only the start of each line) and kept as records are appended. An episode that is not in memory
is reloaded from its lines alone, before its next call is checked (:meth:`RecordStore.load`): a
restart or an eviction changes nothing about prefix checks, retries or reads. One store file
has one writer: the store holds an exclusive lock on it while open. A gateway of several
workers gives each its own file, a part of one store (:mod:`boxgym.gateway.parts`).

One caveat on "never blocks": ``os.write`` to the page cache takes microseconds, but a kernel
that is throttling writers because too much dirty data awaits the disk can hold it longer; the
background fsync keeps the file's dirty data small so that this stays rare.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from array import array
from collections import OrderedDict
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import GatewayStoreError
from ..trajectories.images import ImageStore, has_images
from ._json import loads
from .config import StoreConfig
from .lines import decode_line, encode_call, encode_closed, episode_of_line, read_calls
from .parts import check_layout, part_of, store_of
from .records import CallRecord

__all__ = ["RecordStore", "read_calls"]

log = logging.getLogger("boxgym.gateway")

_SCAN_BLOCK = 4 * 1024 * 1024


@dataclass(slots=True)
class _Indexed:
    """Where an episode's lines are in the file."""

    lines: array = field(default_factory=lambda: array("q"))  # offset, length, offset, length, ...
    closed: bool = False


class RecordStore:
    """Appends records to the file (if any) and indexes them per episode. Closing is idempotent.

    Open it with ``await RecordStore.open(config)`` (which builds the index of an existing
    file off the event loop); the constructor alone suits a new or path-less store.
    """

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.path = Path(config.path) if config.path else None
        self._fd: int | None = None
        self._size = 0
        self._index: dict[str, _Indexed] = {}
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            part = part_of(self.path)
            check_layout(store_of(self.path), part[1] if part is not None else 1)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(self._fd)
                self._fd = None
                raise GatewayStoreError(f"{self.path} is in use by another gateway: {exc}") from exc
            self._size = os.fstat(self._fd).st_size
        self._indexed = self._size == 0
        self._episodes: OrderedDict[str, list[CallRecord]] = OrderedDict()  # least recently written first
        self._answered: dict[tuple[str, str], CallRecord] = {}
        self._loading: dict[str, asyncio.Future[None]] = {}
        self._reads: set[asyncio.Future[list[CallRecord]]] = set()  # threads reading the file
        self._dirty = False
        self._closed = False
        self.records_written = 0
        #: Images in requests are stored once each beside the file and referenced from the lines
        #: (boxgym.trajectories.images); records in memory hold the references too, so that a
        #: later request's delta against them stays small.
        self.images = None if self.path is None else ImageStore(self.path.parent)

    @classmethod
    async def open(cls, config: StoreConfig) -> RecordStore:
        store = cls(config)
        try:
            await store.build_index()
        except BaseException:
            await store.aclose()
            raise
        return store

    async def build_index(self) -> None:
        """Index the lines already in the file, in a thread (once; a new file has none)."""
        if self._indexed or self._fd is None:
            return
        t0 = time.perf_counter()
        index, end = await asyncio.to_thread(_scan, self._fd, self._size)
        if end < self._size:
            log.warning("%s: cutting off a torn last line (%d bytes)", self.path, self._size - end)
            os.ftruncate(self._fd, end)
            self._size = end
        self._index, self._indexed = index, True
        log.info(
            "%s: %d episodes indexed in %.2f s", self.path, len(index), time.perf_counter() - t0
        )

    # -- writing ---------------------------------------------------------------

    def _without_inline_images(self, record: CallRecord) -> CallRecord:
        request = record.request
        messages = request.get("messages") if request else None
        if type(messages) is not list or not has_images(messages):
            return record
        assert self.images is not None
        return dataclasses.replace(record, request={**request, "messages": self.images.externalize(messages)})

    def append(self, record: CallRecord) -> None:
        """Hand the record to the OS and index it. Returns once the kernel holds every byte."""
        if self._closed:
            raise GatewayStoreError("the record store is closed")
        if not self._indexed:
            raise GatewayStoreError(f"{self.path} holds records not indexed yet: open it with RecordStore.open")
        if self.images is not None:
            record = self._without_inline_images(record)
        episode = record.episode_id
        held = self._episodes.get(episode)
        if self._fd is not None:
            base = _find(held, record.prefix.parent_call_id) if held is not None else None
            self._write(episode, encode_call(record, base))
        if held is None:
            if self._fd is not None and len(self._index[episode].lines) > 2:
                # earlier records of this episode are in the file only: memory holds an episode
                # whole or not at all, so its next call reloads it, this record included
                self.records_written += 1
                return
            held = self._episodes[episode] = []
            if len(self._episodes) > self.config.max_episodes_in_memory:
                self.forget(next(iter(self._episodes)))
        else:
            self._episodes.move_to_end(episode)
        self._hold(held, record)
        self.records_written += 1

    def _hold(self, held: list[CallRecord], record: CallRecord) -> None:
        held.append(record)
        if record.ok and record.request_hash is not None and record.replay_of is None:
            self._answered[(record.episode_id, record.request_hash)] = record

    def _write(self, episode: str, data: bytes) -> None:
        assert self._fd is not None
        offset = self._size
        try:
            written = os.write(self._fd, data)
            while written < len(data):  # a short write (signal, full disk) must not tear the line
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            raise GatewayStoreError(f"cannot write the record to {self.path}: {exc}") from exc
        self._size += len(data)
        self._dirty = True
        entry = self._index.get(episode)
        if entry is None:
            entry = self._index[episode] = _Indexed()
        entry.lines.append(offset)
        entry.lines.append(len(data))

    async def close_episode(self, episode_id: str) -> bool:
        """Mark the episode complete in the file, fsync, and drop it from memory. False if the
        store has no file. Closing twice writes one marker."""
        entry = self._index.get(episode_id)
        if entry is None or not entry.closed:
            if self._fd is not None:
                self._write(episode_id, encode_closed(episode_id, time.time()))
            self._index.setdefault(episode_id, _Indexed()).closed = True
            await self._fsync()
        self.forget(episode_id)
        return self._fd is not None

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
        if fd is not None and self._dirty and self.config.fsync_interval is not None:
            self._dirty = False
            await asyncio.to_thread(os.fsync, fd)

    async def aclose(self) -> None:
        """Fsync what is pending and close the file."""
        if self._closed:
            return
        self._closed = True
        if self._reads:  # a thread still reading must not see its descriptor closed (or reused)
            await asyncio.gather(*self._reads, return_exceptions=True)
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                if self._dirty and self.config.fsync_interval is not None:
                    await asyncio.to_thread(os.fsync, fd)
            finally:
                os.close(fd)  # releases the lock too

    # -- reading ---------------------------------------------------------------

    def episode(self, episode_id: str) -> list[CallRecord]:
        """The episode's records held in memory, in the order they were written."""
        return list(self._episodes.get(episode_id, ()))

    def history(self, episode_id: str) -> list[CallRecord]:
        """The live list of the episode's records (do not mutate): no copy on the request path."""
        return self._episodes.get(episode_id, [])

    def episode_ids(self) -> list[str]:
        """The episodes held in memory."""
        return list(self._episodes)

    def known(self, episode_id: str) -> bool:
        """The episode has records (or a close marker), in memory or in the file."""
        return episode_id in self._episodes or episode_id in self._index

    def closed(self, episode_id: str) -> bool:
        entry = self._index.get(episode_id)
        return entry is not None and entry.closed

    def needs_load(self, episode_id: str) -> bool:
        """Earlier records of the episode are in the file and not in memory."""
        if episode_id in self._episodes or self._fd is None:
            return False
        entry = self._index.get(episode_id)
        return entry is not None and len(entry.lines) > 0

    def answered(self, episode_id: str, request_hash: str) -> CallRecord | None:
        """The successful record of an identical earlier request in this episode, if any."""
        return self._answered.get((episode_id, request_hash))

    def forget(self, episode_id: str) -> None:
        """Drop an episode from memory (the file keeps it; its next call reloads it)."""
        for r in self._episodes.pop(episode_id, ()):
            if r.request_hash is not None:
                self._answered.pop((episode_id, r.request_hash), None)

    async def load(self, episode_id: str) -> None:
        """Bring an episode that is in the file back into memory, reading only its lines.
        Concurrent calls for one episode share one read."""
        while self.needs_load(episode_id):
            pending = self._loading.get(episode_id)
            if pending is not None:
                await asyncio.wait([pending])  # then look again: the read may have failed
                continue
            pending = self._loading[episode_id] = asyncio.get_running_loop().create_future()
            try:
                records = await self._read_episode(episode_id)
                if not self._closed and episode_id not in self._episodes:
                    held = self._episodes[episode_id] = []
                    for r in records:
                        self._hold(held, r)
                    if len(self._episodes) > self.config.max_episodes_in_memory:
                        self.forget(next(iter(self._episodes)))
            finally:
                del self._loading[episode_id]
                pending.set_result(None)

    async def load_episode(self, episode_id: str) -> list[CallRecord]:
        """The episode's records: from memory, else read from its lines in the file (in a thread)."""
        held = self._episodes.get(episode_id)
        if held is not None or not self.needs_load(episode_id):
            return list(held or ())
        return await self._read_episode(episode_id)

    async def _read_episode(self, episode_id: str) -> list[CallRecord]:
        fd, entry = self._fd, self._index[episode_id]
        if fd is None or self._closed:
            raise GatewayStoreError("the record store is closed")
        records: list[CallRecord] = []
        earlier: dict[str, CallRecord] = {}
        done = 0
        while done < len(entry.lines):  # records appended while a read ran are read in the next round
            spans = entry.lines[done:]
            done = len(entry.lines)
            read = asyncio.ensure_future(asyncio.to_thread(_read_lines, fd, spans, earlier))
            self._reads.add(read)
            read.add_done_callback(self._read_done)
            try:
                records += await asyncio.shield(read)
            except (OSError, ValueError) as exc:
                raise GatewayStoreError(f"cannot read episode {episode_id!r} from {self.path}: {exc}") from exc
        return records

    def _read_done(self, read: asyncio.Future[list[CallRecord]]) -> None:
        self._reads.discard(read)
        if not read.cancelled():
            read.exception()  # retrieved here: its reader may have been cancelled meanwhile


def _find(held: list[CallRecord], call_id: str | None) -> CallRecord | None:
    """The record of ``call_id`` among an episode's records (usually the latest: a short walk back)."""
    if call_id is None:
        return None
    for r in reversed(held):
        if r.call_id == call_id:
            return r
    return None


def _read_lines(fd: int, spans: array, earlier: dict[str, CallRecord]) -> list[CallRecord]:
    out = []
    for i in range(0, len(spans), 2):
        raw = os.pread(fd, spans[i + 1], spans[i])
        d = loads(raw)
        if d.get("kind") is not None:
            continue  # a close marker
        record = decode_line(d, earlier)
        earlier[record.call_id] = record
        out.append(record)
    return out


def _scan(fd: int, size: int) -> tuple[dict[str, _Indexed], int]:
    """Index a file's complete lines by episode, reading only the start of each; returns the
    index and the end of the last complete line."""
    index: dict[str, _Indexed] = {}
    offset = 0
    buf = b""
    while offset + len(buf) < size:
        block = os.pread(fd, min(_SCAN_BLOCK, size - offset - len(buf)), offset + len(buf))
        if not block:
            break
        buf += block
        start = 0
        while (end := buf.find(b"\n", start)) >= 0:
            head = episode_of_line(buf, start)
            if head is None:  # a line of schema 1: parsed whole
                d = loads(buf[start : end + 1])
                head = (d["episode_id"], d.get("kind") is not None)
            entry = index.get(head[0])
            if entry is None:
                entry = index[head[0]] = _Indexed()
            entry.lines.append(offset + start)
            entry.lines.append(end + 1 - start)
            entry.closed = entry.closed or head[1]
            start = end + 1
        offset += start
        buf = buf[start:]
    return index, offset
