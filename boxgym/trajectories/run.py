"""A run directory read as one run, whether one process wrote it or several.

    run = RunDir("runs/r1")
    for episode_id, records in run.episodes().items(): ...   # trajectories, grouped by episode
    calls = list(run.gateway_records())                      # boxgym.gateway.CallRecord
    training = list(run.training())                          # boxgym.rollout.TrainingEpisode

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

from .records import Record
from .writer import read_records

if TYPE_CHECKING:
    from ..gateway.records import CallRecord
    from ..rollout.training import TrainingEpisode

__all__ = ["RunDir", "ShardLost", "ShardStarted", "mark_delivered", "record_shard", "root_episode_id"]

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

    def episodes(self) -> dict[str, list[Record]]:
        """The run's records grouped by episode id (ids are unique across shards)."""
        episodes: dict[str, list[Record]] = defaultdict(list)
        for record in self.records():
            episodes[record.episode_id].append(record)
        return dict(episodes)

    def lost(self) -> dict[str, list[Record]]:
        """Episodes of lost shards whose results never reached the driver (they ran again elsewhere)."""
        episodes: dict[str, list[Record]] = defaultdict(list)
        for shard, record in self._trajectories():
            if not shard.counts(record.episode_id):
                episodes[record.episode_id].append(record)
        return dict(episodes)

    def gateway_records(self) -> Iterator[CallRecord]:
        """Every shard's gateway records (their episode ids join them to the trajectories)."""
        from ..gateway.store import read_records as read_calls

        for shard in self.shards:
            path = shard.path / "gateway.jsonl"
            if path.exists():
                yield from read_calls(path)

    def training(self) -> Iterator[TrainingEpisode]:
        """The trainer's view: ``training.jsonl`` at the top, then any in the shards."""
        from ..rollout.training import training_from_json

        paths = [self.path / "training.jsonl", *(s.path / "training.jsonl" for s in self.shards if s.path != self.path)]
        for path in paths:
            for raw in _lines(path):
                yield training_from_json(raw)
