"""A run directory read as one run, whether one process wrote it or several.

    run = RunDir("runs/r1")
    for episode in run.episodes(): ...          # RecordedEpisode: start, steps, end, streamed
    calls = run.calls(episode.episode_id)       # that episode's boxgym.gateway.CallRecords
    training = list(run.training())             # boxgym.rollout.TrainingEpisode

Everything that reads a run (replay, the viewer, a trainer) reads it through this class.
:meth:`RunDir.episodes` hands each episode over as soon as its end is read, so memory holds
only the episodes still open at that point (about the run's concurrency), never the whole run.
Gateway records are read only through the gateway's own reader (a prompt may be stored there
as a reference to its parent call plus the new suffix).

One process writes ``trajectories.jsonl`` and ``gateway.jsonl`` at the top of the run
directory. A run spread over several processes (:mod:`boxgym.rollout.ray`: one rollout
manager per Ray actor) gives each a shard, ``shards/<name>/``, holding the same files, and
its driver appends to ``shards.jsonl`` one :class:`ShardStarted` per shard and one
:class:`ShardLost` per shard whose process died. ``training.jsonl`` is written by whoever
consumes the results, at the top (and read from the shards too, should they hold one).

A lost shard's episodes whose results never reached the driver were run again in another
shard, so they are left out of :meth:`RunDir.records` and :meth:`RunDir.episodes` (and
listed by :meth:`RunDir.lost`): no episode counts twice. What reached the driver: the ids in
the shard's ``delivered.jsonl`` (one JSON list of root episode ids per batch, appended by the
shard once the driver asked for the next batch) and in its ``ShardLost`` record (the last
batch, which the driver received but never acknowledged).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .records import EpisodeEnd, EpisodeStart, Outcome, Record, StepRecord
from .writer import FILENAME, read_records

if TYPE_CHECKING:
    from ..gateway.records import CallRecord
    from ..rollout.training import TrainingEpisode

__all__ = [
    "RecordedEpisode",
    "RunDir",
    "ShardLost",
    "ShardStarted",
    "mark_delivered",
    "record_shard",
    "root_episode_id",
]

MANIFEST = "shards.jsonl"
SHARDS = "shards"
DELIVERED = "delivered.jsonl"


@dataclass(frozen=True, slots=True)
class ShardStarted:
    """A shard's process started: its manager's name (the prefix of its episode ids) and where it ran."""

    name: str
    node_id: str
    host: str
    pid: int
    time: float
    kind: Literal["shard_started"] = "shard_started"


@dataclass(frozen=True, slots=True)
class ShardLost:
    """A shard's process died; ``delivered``: root episode ids received but not yet acknowledged."""

    name: str
    error: str
    time: float
    delivered: tuple[str, ...] = ()
    kind: Literal["shard_lost"] = "shard_lost"


ShardRecord = ShardStarted | ShardLost


def root_episode_id(episode_id: str) -> str:
    """The id of the root episode a record belongs to: children are ``<root>.<n>`` and a
    retry after an infrastructure failure is ``<root>~retry<n>`` (see the rollout driver)."""
    return episode_id.split(".", 1)[0].split("~", 1)[0]


def record_shard(run_dir: str | os.PathLike[str], record: ShardRecord) -> None:
    """Append one manifest record (the driver's, once per shard event: rare, so written whole)."""
    line = json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in asdict(record).items()}) + "\n"
    path = Path(run_dir) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(line)


def mark_delivered(shard_dir: str | os.PathLike[str], episode_ids: Iterable[str]) -> None:
    """Append one acknowledged batch of root episode ids to the shard's ``delivered.jsonl``."""
    with (Path(shard_dir) / DELIVERED).open("a") as fh:
        fh.write(json.dumps(sorted({root_episode_id(i) for i in episode_ids})) + "\n")


def _lines(path: Path) -> Iterator[Any]:
    """Complete JSON lines of ``path`` (a torn last line, a crash mid-write, is skipped)."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                return
            yield json.loads(raw)


@dataclass(frozen=True, slots=True)
class Shard:
    """One writer's part of a run: its directory, and what is known of its end."""

    name: str
    path: Path
    started: ShardStarted | None = None
    lost: ShardLost | None = None
    delivered: frozenset[str] = field(default=frozenset())  # root ids; read only for a lost shard

    def counts(self, episode_id: str) -> bool:
        """Whether the episode's records belong to the run (not lost with its process)."""
        return self.lost is None or root_episode_id(episode_id) in self.delivered


@dataclass(frozen=True, slots=True)
class RecordedEpisode:
    """One episode as recorded: its start, its steps in order, its end (``None`` while open)."""

    episode_id: str
    start: EpisodeStart | None
    steps: tuple[StepRecord, ...]
    end: EpisodeEnd | None

    @property
    def env_id(self) -> str:
        return self.start.env_id if self.start is not None else ""

    @property
    def task_id(self) -> str:
        return self.start.task_id if self.start is not None else ""

    @property
    def parent_episode_id(self) -> str | None:
        return self.start.parent_episode_id if self.start is not None else None

    @property
    def reward(self) -> float | None:
        return self.end.reward if self.end is not None else None

    @property
    def branch_of(self) -> dict[str, Any] | None:
        """What a replay recorded this episode as a branch of (see :mod:`boxgym.replay`)."""
        branch = self.start.meta.get("branch_of") if self.start is not None else None
        return branch if isinstance(branch, dict) else None


class _Open:
    """An episode being collected while its lines are read."""

    __slots__ = ("end", "start", "steps")

    def __init__(self) -> None:
        self.start: EpisodeStart | None = None
        self.steps: dict[int, StepRecord] = {}  # by index: a resumed episode's steps go on counting
        self.end: EpisodeEnd | None = None

    def freeze(self, episode_id: str) -> RecordedEpisode:
        steps = tuple(self.steps[i] for i in sorted(self.steps))
        return RecordedEpisode(episode_id, self.start, steps, self.end)


class RunDir:
    """A run directory, sharded or not, read as one run. Reading never writes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"no run directory at {self.path}")
        self.shards = self._shards()

    def _shards(self) -> tuple[Shard, ...]:
        root = self.path / SHARDS
        if not root.is_dir():
            return (Shard("", self.path),)
        started: dict[str, ShardStarted] = {}
        lost: dict[str, ShardLost] = {}
        for raw in _lines(self.path / MANIFEST):
            if raw.get("kind") == "shard_started":
                started[raw["name"]] = ShardStarted(**raw)
            elif raw.get("kind") == "shard_lost":
                lost[raw["name"]] = ShardLost(**{**raw, "delivered": tuple(raw.get("delivered") or ())})
        shards = []
        for path in sorted(p for p in root.iterdir() if p.is_dir()):
            gone = lost.get(path.name)
            delivered: frozenset[str] = frozenset()
            if gone is not None:
                acked = (i for batch in _lines(path / DELIVERED) for i in batch)
                delivered = frozenset((*acked, *(root_episode_id(i) for i in gone.delivered)))
            shards.append(Shard(path.name, path, started.get(path.name), gone, delivered))
        return tuple(shards)

    def _trajectories(self) -> Iterator[tuple[Shard, Record]]:
        for shard in self.shards:
            if (shard.path / "trajectories.jsonl").exists():
                for record in read_records(shard.path):
                    yield shard, record

    def records(self) -> Iterator[Record]:
        """Every trajectory record of the run, shard after shard (a shard's in the order written)."""
        for shard, record in self._trajectories():
            if shard.counts(record.episode_id):
                yield record

    @property
    def trajectory_files(self) -> tuple[Path, ...]:
        """The trajectory files of the run, one per shard that has one."""
        return tuple(s.path / FILENAME for s in self.shards if (s.path / FILENAME).exists())

    @property
    def gateway_files(self) -> tuple[Path, ...]:
        """The gateway record files of the run: per shard, its ``gateway.jsonl`` or, when a
        gateway of several workers wrote it, their parts (:mod:`boxgym.gateway.parts`)."""
        from ..gateway.parts import store_files

        return tuple(f for s in self.shards for f in store_files(s.path / "gateway.jsonl"))

    def episodes(self, only: Iterable[str] | None = None) -> Iterator[RecordedEpisode]:
        """Every episode (or those named in ``only``), each as soon as its end is read.

        A paused episode goes on when it is resumed, so it is handed over at its final end;
        episodes still open when the records end (a run still going, or one that crashed) come
        last, with ``end=None``.
        """
        wanted = None if only is None else set(only)
        open_: dict[str, _Open] = {}
        for record in self.records():
            eid = record.episode_id
            if wanted is not None and eid not in wanted:
                continue
            held = open_.get(eid)
            if held is None:
                held = open_[eid] = _Open()
            if isinstance(record, EpisodeStart):
                if held.start is None:  # a resumed episode writes its start again: keep the first
                    held.start = record
                held.end = None
            elif isinstance(record, StepRecord):
                held.steps[record.index] = record
            else:
                held.end = record
                if record.outcome is not Outcome.PAUSED:
                    yield open_.pop(eid).freeze(eid)
        for eid, held in open_.items():
            yield held.freeze(eid)

    def episode(self, episode_id: str) -> RecordedEpisode | None:
        """One episode, or None if the run has none of that id."""
        for episode in self.episodes(only=(episode_id,)):
            return episode
        return None

    def calls(self, episode_id: str) -> list[CallRecord]:
        """The episode's model calls as the gateway recorded them, in call order (none without
        a gateway file). Scans the gateway files: call it off the event loop."""
        from ..gateway.store import read_calls

        return [call for path in self.gateway_files for call in read_calls(path, episode_id)]

    def lost(self) -> dict[str, list[Record]]:
        """Episodes of lost shards whose results never reached the driver (they ran again elsewhere)."""
        episodes: dict[str, list[Record]] = defaultdict(list)
        for shard, record in self._trajectories():
            if not shard.counts(record.episode_id):
                episodes[record.episode_id].append(record)
        return dict(episodes)

    def gateway_records(self) -> Iterator[CallRecord]:
        """Every shard's gateway records (their episode ids join them to the trajectories)."""
        from ..gateway.store import read_calls

        for path in self.gateway_files:
            yield from read_calls(path)

    def training(self) -> Iterator[TrainingEpisode]:
        """The trainer's view: ``training.jsonl`` at the top, then any in the shards."""
        from ..rollout.training import training_from_json

        paths = [self.path / "training.jsonl", *(s.path / "training.jsonl" for s in self.shards if s.path != self.path)]
        for path in paths:
            for raw in _lines(path):
                yield training_from_json(raw)
