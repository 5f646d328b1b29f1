"""Trajectories: crash-safe records of every step, and their readers."""

from .records import SCHEMA_VERSION, EndReason, EpisodeEnd, EpisodeStart, Outcome, Record, StepRecord
from .writer import TrajectoryWriter, encode_record, read_episodes, read_records

__all__ = [
    "SCHEMA_VERSION",
    "EndReason",
    "EpisodeEnd",
    "EpisodeStart",
    "Outcome",
    "Record",
    "StepRecord",
    "TrajectoryWriter",
    "encode_record",
    "read_episodes",
    "read_records",
]
