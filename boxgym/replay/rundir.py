"""Reading a recorded run directory: the one place replay and the viewer read runs from.

A run directory (``boxgym demo`` writes one under ``runs/``) holds:

==================== ===========================================================
trajectories.jsonl   every episode's start, steps and end (:mod:`boxgym.trajectories`)
gateway.jsonl        every model call with its token ids and logprobs (:mod:`boxgym.gateway`)
training.jsonl       the trainer's view (:mod:`boxgym.rollout.training`)
==================== ===========================================================

Trajectory lines of many episodes interleave. :meth:`RunDir.episodes` streams them and hands
each episode over as soon as its end record is read, so memory holds only the episodes still
open at that point of the file (about the run's concurrency), never the whole run. Gateway
records are read only through the gateway's own reader (its store format is the gateway's
business: a prompt may be stored as a reference to its parent call plus the new suffix).

Everything else in :mod:`boxgym.replay` and :mod:`boxgym.viewer` reads runs through this
module, so a run directory written by several processes (one file per shard) can be presented
as one by changing :attr:`RunDir.trajectory_files` and :meth:`RunDir.calls` alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ReplayError
from ..gateway.records import CallRecord
from ..gateway.store import read_calls as _read_calls
from ..trajectories import EpisodeEnd, EpisodeStart, Outcome, Record, StepRecord
from ..trajectories.records import from_json

__all__ = ["RecordedEpisode", "RunDir", "TRAJECTORIES", "GATEWAY", "decode_line"]

TRAJECTORIES = "trajectories.jsonl"
GATEWAY = "gateway.jsonl"


def decode_line(raw: bytes) -> Record:
    """One trajectory line (with or without its newline) as its typed record."""
    return from_json(json.loads(raw))


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
    """A run directory, read lazily. Raises :class:`ReplayError` if it holds no trajectories."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not (self.path / TRAJECTORIES).is_file():
            raise ReplayError(f"{self.path} is not a run directory: it has no {TRAJECTORIES}")

    @property
    def trajectory_files(self) -> tuple[Path, ...]:
        """The trajectory files of the run, in order (one; a sharded run would list its shards)."""
        return (self.path / TRAJECTORIES,)

    @property
    def gateway_file(self) -> Path | None:
        path = self.path / GATEWAY
        return path if path.is_file() else None

    def records(self) -> Iterator[Record]:
        """Every complete record, file by file; a torn last line (a crash mid-write) is skipped."""
        for path in self.trajectory_files:
            with path.open("rb") as fh:
                for raw in fh:
                    if not raw.endswith(b"\n"):
                        break
                    yield decode_line(raw)

    def episodes(self, only: Iterable[str] | None = None) -> Iterator[RecordedEpisode]:
        """Every episode (or those named in ``only``), each as soon as its end is read.

        A paused episode goes on when it is resumed, so it is handed over at its final end;
        episodes still open when the file ends (a run still going, or one that crashed) come
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

    def episode(self, episode_id: str) -> RecordedEpisode:
        for episode in self.episodes(only=(episode_id,)):
            return episode
        raise ReplayError(f"no episode {episode_id!r} in {self.path}")

    def calls(self, episode_id: str) -> list[CallRecord]:
        """The episode's model calls as the gateway recorded them, in call order (none without
        a gateway file). Scans the gateway's file: call it off the event loop."""
        path = self.gateway_file
        if path is None:
            return []
        return list(_read_calls(path, episode_id))


def call_index(calls: Iterable[CallRecord]) -> dict[str, CallRecord]:
    """Calls by the id a step names: a step's ``call_id`` is the gateway record's ``call_id``."""
    return {call.call_id: call for call in calls}
