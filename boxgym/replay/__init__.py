"""Replay: debug an agent from what was recorded.

Three modes over a recorded run directory (:class:`RunDir`), each running many episodes at
once through the rollout manager:

* :func:`rescore`: the current judges on the recorded final state, old reward against new;
  offline where the judge allows it (:class:`Needs`), else after re-executing the actions.
* :func:`redrive`: the recorded actions again in fresh sandboxes, with no model; each new
  observation diffed against the recorded one after normalisation (:class:`Normaliser`).
* :func:`resume`: the recorded actions up to step k, then a live policy; the new episode is a
  branch of the old one (:class:`Branch`, in its ``EpisodeStart.meta["branch_of"]``).

``boxgym replay rescore|redrive|resume`` is the command line; the gateway serves a recorded
episode's model calls back with ``boxgym gateway serve --replay RUN_DIR``
(:mod:`boxgym.gateway.upstream.replay`); ``boxgym view`` shows runs in a browser.
"""

from .diff import DEFAULT_NORMALISERS, Comparison, Normaliser, StepDiff, compare_steps
from .drive import ReplayConfig
from .judging import Needs, needs_of, submission_of
from .policy import Branch, ReplayPolicy
from .redrive import Redriven, RedriveSummary, redrive
from .rescore import Rescored, RescoreSummary, rescore
from .resume import Resumed, ResumeSummary, resume
from .rundir import RecordedEpisode, RunDir

__all__ = [
    "Branch",
    "Comparison",
    "DEFAULT_NORMALISERS",
    "Needs",
    "Normaliser",
    "RecordedEpisode",
    "Redriven",
    "RedriveSummary",
    "ReplayConfig",
    "ReplayPolicy",
    "Rescored",
    "RescoreSummary",
    "Resumed",
    "ResumeSummary",
    "RunDir",
    "StepDiff",
    "compare_steps",
    "needs_of",
    "redrive",
    "rescore",
    "resume",
    "submission_of",
]
