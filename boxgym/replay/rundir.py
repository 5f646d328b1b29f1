"""Opening a recorded run for replay and the viewer.

Runs are read through :class:`boxgym.trajectories.RunDir`, the one reader of a run directory
(sharded over Ray actors or not). This module adds what replay needs on top: a run that must
have trajectories (:func:`open_run` says so with a :class:`~boxgym.errors.ReplayError`), an
episode that must exist (:func:`recorded_episode`), and steps joined to their calls.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from ..errors import ReplayError
from ..gateway.records import CallRecord
from ..trajectories import Record
from ..trajectories.records import from_json
from ..trajectories.run import RecordedEpisode, RunDir

__all__ = ["RecordedEpisode", "RunDir", "call_index", "decode_line", "open_run", "recorded_episode"]


def open_run(path: str | os.PathLike[str]) -> RunDir:
    """The run at ``path``; raises :class:`ReplayError` if it is not one or holds no trajectories."""
    try:
        run = RunDir(path)
    except FileNotFoundError:
        raise ReplayError(f"{path} is not a run directory") from None
    if not run.trajectory_files:
        raise ReplayError(f"{path} is not a run directory: it has no trajectories.jsonl")
    return run


def recorded_episode(run: RunDir, episode_id: str) -> RecordedEpisode:
    episode = run.episode(episode_id)
    if episode is None:
        raise ReplayError(f"no episode {episode_id!r} in {run.path}")
    return episode


def decode_line(raw: bytes) -> Record:
    """One trajectory line (with or without its newline) as its typed record."""
    return from_json(json.loads(raw))


def call_index(calls: Iterable[CallRecord]) -> dict[str, CallRecord]:
    """Calls by the id a step names: a step's ``call_id`` is the gateway record's ``call_id``."""
    return {call.call_id: call for call in calls}
