"""Trajectories: crash-safe records of every step and their readers (:class:`RunDir` reads a
whole run directory as one run, sharded over several processes or not); the token sequences a
trainer reads (one builder, :mod:`.tokens`); images stored once per run (:mod:`.images`)."""

from .images import Image, ImageStore
from .records import SCHEMA_VERSION, EndReason, EpisodeEnd, EpisodeStart, Outcome, Record, StepRecord
from .run import RunDir, ShardLost, ShardStarted
from .tokens import LossRule, Prefix, TokenSequence, build_sequences
from .writer import TrajectoryWriter, encode_record, read_episodes, read_records

__all__ = [
    "SCHEMA_VERSION",
    "EndReason",
    "EpisodeEnd",
    "EpisodeStart",
    "Image",
    "ImageStore",
    "LossRule",
    "Outcome",
    "Prefix",
    "Record",
    "RunDir",
    "ShardLost",
    "ShardStarted",
    "StepRecord",
    "TokenSequence",
    "TrajectoryWriter",
    "build_sequences",
    "encode_record",
    "read_episodes",
    "read_records",
]
