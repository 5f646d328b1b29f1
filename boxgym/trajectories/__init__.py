"""Trajectories: crash-safe records of every step, and their readers (:class:`RunDir` reads a
whole run directory as one run, sharded over several processes or not)."""

from .records import SCHEMA_VERSION, EndReason, EpisodeEnd, EpisodeStart, Outcome, Record, StepRecord
from .run import RunDir, ShardLost, ShardStarted
from .writer import TrajectoryWriter, encode_record, read_episodes, read_records

__all__ = [
    "SCHEMA_VERSION",
    "EndReason",
    "EpisodeEnd",
    "EpisodeStart",
    "Outcome",
    "Record",
    "RunDir",
    "ShardLost",
    "ShardStarted",
    "StepRecord",
    "TrajectoryWriter",
    "encode_record",
    "read_episodes",
    "read_records",
]
