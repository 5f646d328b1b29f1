"""An index of a run directory's trajectories: what the viewer's table and pages read.

The run is never loaded whole. One pass over ``trajectories.jsonl`` records, per episode, a
summary row (from its start and end records) and the byte offset and length of each of its
lines, in an SQLite database in a temporary file with a small page cache; an episode's page
then reads only its own lines back. Memory stays flat however large the run grows.

Step lines, the bulk of the file, are not parsed: the writer puts ``"episode_id"`` first and
``"kind"`` last, so the id and the kind are read from the line's two ends (any other line is
parsed). The file is read in blocks, each indexed in one transaction, so the table can show
what is indexed so far while a big run is still being read, and the same code follows a run
that is still being written: :meth:`RunIndex.update` indexes the complete lines appended since
the last call, and says which episodes changed.

SQLite work runs on two threads of the index's own, each with its connection (nothing blocks
the event loop): one writes blocks, one answers queries. The database is in WAL mode, so a
query reads the blocks committed so far and never waits for the one being indexed.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..replay.rundir import RunDir, decode_line
from ..trajectories import EpisodeEnd, EpisodeStart, Record

__all__ = ["RunIndex", "Page", "Query", "SORTABLE"]

_BLOCK = 4 << 20  # bytes read per pass; one transaction each
_FIRST_BLOCK = 1 << 20  # the first pass is short, so the first page of rows comes at once
_STEP_TAIL = b'"kind":"step"}'
_ID_HEAD = b'{"episode_id":"'

_SCHEMA = """
CREATE TABLE episodes(
    id INTEGER PRIMARY KEY, episode_id TEXT UNIQUE NOT NULL,
    env_id TEXT, task_id TEXT, parent TEXT, group_id TEXT, sample_index INTEGER,
    subagent TEXT, spawned_at INTEGER, branch_run TEXT, branch_episode TEXT, shared_steps INTEGER,
    started REAL, ended REAL, outcome TEXT, reason TEXT, reward REAL, parts TEXT,
    steps INTEGER, seen_steps INTEGER DEFAULT 0, tokens INTEGER, error TEXT
);
CREATE TABLE lines(episode INTEGER NOT NULL, file INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL);
CREATE INDEX lines_by_episode ON lines(episode);
CREATE INDEX episodes_by_parent ON episodes(parent);
CREATE INDEX episodes_by_group ON episodes(group_id);
CREATE INDEX episodes_by_branch ON episodes(branch_episode);
"""

#: Table columns one may sort by (the API's names -> SQL).
SORTABLE = {
    "started": "started",
    "episode": "episode_id",
    "env": "env_id",
    "task": "task_id",
    "reward": "reward",
    "reason": "reason",
    "steps": "COALESCE(steps, seen_steps)",
    "tokens": "tokens",
    "seconds": "(ended - started)",
}
_COLUMNS = (
    "episode_id, env_id, task_id, parent, group_id, sample_index, subagent, spawned_at, branch_run, "
    "branch_episode, shared_steps, started, ended, outcome, reason, reward, parts, COALESCE(steps, seen_steps), "
    "tokens, error"
)
_NAMES = (
    "episode_id", "env_id", "task_id", "parent", "group_id", "sample_index", "subagent", "spawned_at", "branch_run",
    "branch_episode", "shared_steps", "started", "ended", "outcome", "reason", "reward", "parts", "steps", "tokens",
    "error",
)  # fmt: skip
_NOT_SCORED = ("infra_failure", "error", "cancelled")


@dataclass(frozen=True, slots=True)
class Query:
    """What the table asks for: filters, an order and a page."""

    env: str | None = None
    reason: str | None = None
    outcome: str | None = None
    text: str | None = None  # a substring of the episode or task id
    failed: bool = False  # not solved: a reward below 1, or no verdict
    subagents: bool = False  # include sub-agent episodes
    sort: str = "started"
    descending: bool = False
    offset: int = 0
    limit: int = 100


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[dict[str, Any]]
    total: int  # rows matching the filters
    facets: dict[str, dict[str, int]] = field(default_factory=dict)  # env/reason/outcome -> value -> count


def _episode_id_of(line: bytes) -> str | None:
    """The id at the head of a line as the writer writes it; None if it needs real parsing."""
    if not line.startswith(_ID_HEAD):
        return None
    end = line.find(b'"', len(_ID_HEAD))
    if end < 0:
        return None
    raw = line[len(_ID_HEAD) : end]
    return None if b"\\" in raw else raw.decode()


class RunIndex:
    """The index of one run directory. Use :meth:`update` to index what is new, then query."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.files = run.trajectory_files
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="boxgym-view-index")
        self._queries = ThreadPoolExecutor(max_workers=1, thread_name_prefix="boxgym-view-query")
        self._tmp: str | None = None
        self._db: sqlite3.Connection | None = None  # the writer's, on the index thread
        self._reader: sqlite3.Connection | None = None  # the query thread's
        self._pos = [0] * len(self.files)  # bytes of each file indexed (complete lines only)
        self._open: dict[str, int] = {}  # episodes started and not ended: id -> row id
        self.indexed_bytes = 0
        self.total_bytes = 0
        self.version = 0  # bumped by every update that indexed something

    # -- the thread's side ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self._tmp = tempfile.mkdtemp(prefix="boxgym-view-")
            db = sqlite3.connect(Path(self._tmp) / "index.sqlite", isolation_level=None)
            # Nothing here needs to survive a crash (the index is rebuilt from the run), hence
            # no syncs; the page cache is small, so memory stays flat however big the run.
            db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA cache_size=-4096;" + _SCHEMA)
            self._db = db
        return self._db

    def _read(self) -> sqlite3.Connection:
        if self._reader is None:
            assert self._tmp is not None, "query before the first update"
            self._reader = sqlite3.connect(Path(self._tmp) / "index.sqlite", isolation_level=None)
            self._reader.execute("PRAGMA cache_size=-4096")
        return self._reader

    def _row_id(self, db: sqlite3.Connection, episode_id: str) -> int:
        rid = self._open.get(episode_id)
        if rid is not None:
            return rid
        found = db.execute("SELECT id FROM episodes WHERE episode_id = ?", (episode_id,)).fetchone()
        if found is not None:
            return int(found[0])
        return int(db.execute("INSERT INTO episodes(episode_id) VALUES (?)", (episode_id,)).lastrowid)

    def _start(self, db: sqlite3.Connection, record: EpisodeStart) -> int:
        rid = self._row_id(db, record.episode_id)
        meta = record.meta if isinstance(record.meta, dict) else {}
        branch = meta.get("branch_of") if isinstance(meta.get("branch_of"), dict) else {}
        db.execute(
            "UPDATE episodes SET env_id=?, task_id=?, parent=?, group_id=?, sample_index=?, subagent=?, spawned_at=?,"
            " branch_run=?, branch_episode=?, shared_steps=?, started=COALESCE(started, ?), ended=NULL, outcome=NULL,"
            " reason=NULL WHERE id=?",
            (record.env_id, record.task_id, record.parent_episode_id, meta.get("group_id"), meta.get("sample_index"),
             meta.get("subagent"), meta.get("spawned_at_step"), branch.get("run"), branch.get("episode_id"),
             branch.get("shared_steps"), record.time, rid),
        )  # fmt: skip
        self._open[record.episode_id] = rid
        return rid

    def _end(self, db: sqlite3.Connection, record: EpisodeEnd) -> int:
        rid = self._row_id(db, record.episode_id)
        tokens = record.meta.get("completion_tokens") if isinstance(record.meta, dict) else None
        db.execute(
            "UPDATE episodes SET ended=?, outcome=?, reason=?, reward=?, parts=?, steps=?, tokens=?, error=? WHERE id=?",
            (record.time, record.outcome.value, None if record.reason is None else record.reason.value, record.reward,
             json.dumps(dict(record.reward_parts)) if record.reward_parts else None, record.steps, tokens,
             record.error, rid),
        )  # fmt: skip
        if record.outcome.value != "paused":
            self._open.pop(record.episode_id, None)
        return rid

    def _index_block(self, limit: int) -> tuple[bool, set[int]]:
        """Index up to ``limit`` bytes of new complete lines; (more to read, episodes touched)."""
        db = self._connect()
        touched: set[int] = set()
        more = False
        self.total_bytes = 0
        for number, path in enumerate(self.files):
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            self.total_bytes += size
            if size < self._pos[number]:
                raise _Rewritten(path)
            if size == self._pos[number] or touched:
                more = more or size > self._pos[number]
                continue
            with path.open("rb") as fh:
                fh.seek(self._pos[number])
                data = fh.read(limit)
                while data and b"\n" not in data:  # one line longer than a block: read it whole
                    chunk = fh.read(limit)
                    if not chunk:
                        break
                    data += chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                continue  # a line still being written
            base = self._pos[number]
            spans: list[tuple[int, int, int, int]] = []
            seen: dict[int, int] = {}  # step lines per episode in this block
            db.execute("BEGIN")
            start = 0
            while start < cut:
                end = data.index(b"\n", start) + 1
                line = data[start : end - 1]
                eid = _episode_id_of(line) if line.endswith(_STEP_TAIL) else None
                if eid is not None:
                    rid: int | None = self._row_id(db, eid)
                    seen[rid] = seen.get(rid, 0) + 1  # type: ignore[index]
                else:
                    rid, is_step = self._parsed(db, line)
                    if is_step and rid is not None:
                        seen[rid] = seen.get(rid, 0) + 1
                if rid is not None:
                    spans.append((rid, number, base + start, end - 1 - start))
                    touched.add(rid)
                start = end
            db.executemany("INSERT INTO lines VALUES (?, ?, ?, ?)", spans)
            db.executemany("UPDATE episodes SET seen_steps = seen_steps + ? WHERE id = ?", [(n, r) for r, n in seen.items()])
            db.execute("COMMIT")
            self._pos[number] = base + cut
            more = more or self._pos[number] < size
        self.indexed_bytes = sum(self._pos)
        return more, touched

    def _parsed(self, db: sqlite3.Connection, line: bytes) -> tuple[int | None, bool]:
        """Index a line the fast path did not take: (its episode's row, whether it is a step)."""
        try:
            record: Record = decode_line(line)
        except (ValueError, KeyError, TypeError):
            return None, False  # not a record: skipped, as every reader skips it
        if isinstance(record, EpisodeStart):
            return self._start(db, record), False
        if isinstance(record, EpisodeEnd):
            return self._end(db, record), False
        return self._row_id(db, record.episode_id), True

    def _update(self, budget: int, limit: int) -> tuple[bool, list[str]]:
        touched: set[int] = set()
        more = True
        try:
            for _ in range(budget):
                more, ids = self._index_block(limit)
                touched |= ids
                if not more:
                    break
        except _Rewritten:
            self._reset()
            return True, []
        if touched:
            self.version += 1
        db = self._connect()
        changed = [r[0] for r in db.execute(
            f"SELECT episode_id FROM episodes WHERE id IN ({','.join('?' * min(len(touched), 500))})",
            list(touched)[:500],
        )] if touched else []  # fmt: skip
        return more, changed

    def _reset(self) -> None:
        """The file shrank (rewritten, not appended to): index it again from the start."""
        db = self._connect()
        db.executescript("DELETE FROM lines; DELETE FROM episodes;")
        self._pos = [0] * len(self.files)
        self._open.clear()
        self.version += 1

    def _page(self, query: Query) -> Page:
        db = self._read()
        where, args = self._where(query)
        order = SORTABLE.get(query.sort, "started")
        direction = "DESC" if query.descending else "ASC"
        sql = (
            f"SELECT {_COLUMNS} FROM episodes {where} ORDER BY {order} IS NULL, {order} {direction}, id "
            f"LIMIT ? OFFSET ?"
        )
        rows = [self._row(r) for r in db.execute(sql, (*args, max(1, min(query.limit, 1000)), max(0, query.offset)))]
        total = db.execute(f"SELECT COUNT(*) FROM episodes {where}", args).fetchone()[0]
        scope = "" if query.subagents else "WHERE parent IS NULL"
        facets = {
            column: dict(db.execute(f"SELECT {column}, COUNT(*) FROM episodes {scope} GROUP BY {column}").fetchall())
            for column in ("env_id", "reason", "outcome")
        }
        return Page(rows, int(total), {k: {str(v): n for v, n in d.items() if v is not None} for k, d in facets.items()})

    @staticmethod
    def _where(query: Query) -> tuple[str, list[Any]]:
        clauses: list[str] = ["env_id IS NOT NULL"]
        args: list[Any] = []
        if not query.subagents:
            clauses.append("parent IS NULL")
        for column, value in (("env_id", query.env), ("reason", query.reason), ("outcome", query.outcome)):
            if value:
                clauses.append(f"{column} = ?")
                args.append(value)
        if query.text:
            clauses.append("(episode_id LIKE ? OR task_id LIKE ?)")
            args += [f"%{query.text}%"] * 2
        if query.failed:
            clauses.append(f"ended IS NOT NULL AND (reward IS NULL OR reward < 1 OR outcome IN {_NOT_SCORED!r})")
        return "WHERE " + " AND ".join(clauses), args

    @staticmethod
    def _row(values: Sequence[Any]) -> dict[str, Any]:
        row = dict(zip(_NAMES, values))
        row["parts"] = json.loads(row["parts"]) if row["parts"] else {}
        started, ended = row["started"], row["ended"]
        row["seconds"] = ended - started if started is not None and ended is not None else None
        return row

    def _summary(self, episode_id: str) -> dict[str, Any] | None:
        found = self._read().execute(f"SELECT {_COLUMNS} FROM episodes WHERE episode_id = ?", (episode_id,)).fetchone()
        return None if found is None else self._row(found)

    def _children(self, episode_id: str) -> list[dict[str, Any]]:
        sql = f"SELECT {_COLUMNS} FROM episodes WHERE parent = ? ORDER BY spawned_at, id"
        return [self._row(r) for r in self._read().execute(sql, (episode_id,))]

    def _group(self, group_id: str) -> list[dict[str, Any]]:
        sql = f"SELECT {_COLUMNS} FROM episodes WHERE group_id = ? AND parent IS NULL ORDER BY sample_index, id"
        return [self._row(r) for r in self._read().execute(sql, (group_id,))]

    def _branches(self, episode_id: str) -> list[dict[str, Any]]:
        sql = f"SELECT {_COLUMNS} FROM episodes WHERE branch_episode = ? ORDER BY started, id"
        return [self._row(r) for r in self._read().execute(sql, (episode_id,))]

    def _lines(self, episode_id: str) -> list[Record]:
        db = self._read()
        sql = "SELECT file, offset, length FROM lines JOIN episodes ON lines.episode = episodes.id WHERE episode_id = ?"
        spans = db.execute(sql + " ORDER BY lines.rowid", (episode_id,)).fetchall()
        records: list[Record] = []
        handles: dict[int, Any] = {}
        try:
            for number, offset, length in spans:
                fh = handles.get(number)
                if fh is None:
                    fh = handles[number] = self.files[number].open("rb")
                fh.seek(offset)
                records.append(decode_line(fh.read(length)))
        finally:
            for fh in handles.values():
                fh.close()
        return records

    def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # -- the event loop's side -----------------------------------------------------------------

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._queries, fn, *args)

    async def update(self, *, blocks: int = 1, first: bool = False) -> tuple[bool, list[str]]:
        """Index up to ``blocks`` blocks of new lines: (more is waiting, ids of episodes changed).
        ``first``: a short block, for a first page of rows at once."""
        limit = _FIRST_BLOCK if first else _BLOCK
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._update, blocks, limit)

    async def page(self, query: Query) -> Page:
        return await self._call(self._page, query)

    async def summary(self, episode_id: str) -> dict[str, Any] | None:
        return await self._call(self._summary, episode_id)

    async def children(self, episode_id: str) -> list[dict[str, Any]]:
        return await self._call(self._children, episode_id)

    async def group(self, group_id: str) -> list[dict[str, Any]]:
        return await self._call(self._group, group_id)

    async def branches(self, episode_id: str) -> list[dict[str, Any]]:
        return await self._call(self._branches, episode_id)

    async def records(self, episode_id: str) -> list[Record]:
        """The episode's records, read back from the run's files by their indexed offsets."""
        return await self._call(self._lines, episode_id)

    async def aclose(self) -> None:
        """Close the database and remove its file. Idempotent."""
        loop = asyncio.get_running_loop()
        for executor, close in ((self._queries, self._close_reader), (self._executor, self._close)):
            try:
                await loop.run_in_executor(executor, close)
            except RuntimeError:  # the executor was shut down already
                pass
            executor.shutdown(wait=False)


class _Rewritten(Exception):
    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} shrank")
