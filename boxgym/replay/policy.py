"""The replay policy: an episode's recorded actions, in order, then (optionally) a live policy.

A replayed episode is a new episode of the rollout manager, run on a :class:`~boxgym.rollout.TaskRef`
whose ``meta["branch_of"]`` is a :class:`Branch`: which recorded episode it replays and how many
of its steps it shares. The manager writes that ``meta`` into the new episode's
``EpisodeStart.meta``, so the record itself says the episode is a branch of the old one and
where the shared prefix ends::

    "meta": {"branch_of": {"run": "/abs/runs/r1", "episode_id": "a1b2c3-7",
                           "shared_steps": 12, "mode": "resume"}, "group_id": ...}

Steps ``0 .. shared_steps-1`` of the new episode replay the recorded actions (no model call:
their ``call_id`` is null); later steps are the live policy's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..rollout.policy import EpisodeAware, EpisodeView, Policy
from ..rollout.types import Completion, TaskRef
from .rundir import RecordedEpisode

__all__ = ["Branch", "Mode", "ReplayPolicy", "branch_task", "recorded_action"]

Mode = Literal["rescore", "redrive", "resume"]


@dataclass(frozen=True, slots=True)
class Branch:
    """What a replayed episode branches from (``EpisodeStart.meta["branch_of"]``)."""

    run: str  # the recorded run directory (absolute)
    episode_id: str  # the recorded episode
    shared_steps: int  # steps replayed from the record before the live policy (if any) took over
    mode: Mode

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run, "episode_id": self.episode_id, "shared_steps": self.shared_steps, "mode": self.mode}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Branch:
        return cls(str(obj["run"]), str(obj["episode_id"]), int(obj["shared_steps"]), obj["mode"])


def branch_task(episode: RecordedEpisode, branch: Branch) -> TaskRef:
    """The task that replays ``episode``: the same env, task and seed, marked as a branch."""
    start = episode.start
    if start is None:
        raise ValueError(f"episode {episode.episode_id} has no start record")
    return TaskRef(start.task_id, start.env_id, seed=start.seed, meta={"branch_of": branch.to_json()})


def recorded_action(action: Any) -> dict[str, Any]:
    """A recorded action as the assistant message the env is given again (text becomes content)."""
    if isinstance(action, Mapping):
        return {"role": "assistant", **action}
    return {"role": "assistant", "content": action if isinstance(action, str) else repr(action)}


class ReplayPolicy:
    """Answers each replayed episode's first ``shared_steps`` turns with its recorded actions.

    ``actions`` maps a recorded episode id to its actions in step order. After the shared
    prefix, ``then`` (a live policy: another model, or the same at another temperature) takes
    over; without one the episode ends there with a final, empty answer (reason ``agent_done``).
    """

    def __init__(self, actions: Mapping[str, Sequence[Any]], then: Policy | None = None) -> None:
        self._actions = actions
        self._then = then

    async def __call__(self, episode: EpisodeView) -> Completion:
        branch = episode.task.meta.get("branch_of") if episode.task.meta else None
        if not isinstance(branch, Mapping):
            raise ValueError(f"episode {episode.episode_id} is not a replay: its task has no branch_of")
        actions = self._actions.get(branch["episode_id"], ())
        turn = episode.turn
        if turn < min(int(branch["shared_steps"]), len(actions)):
            return Completion(recorded_action(actions[turn]))
        if self._then is not None:
            return await self._then(episode)
        return Completion({"role": "assistant", "content": ""}, final=True)

    def episode_ended(self, episode: EpisodeView) -> None:
        if isinstance(self._then, EpisodeAware):
            self._then.episode_ended(episode)
