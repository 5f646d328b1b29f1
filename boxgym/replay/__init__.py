"""Replay: debug an agent from what was recorded.

Three modes over a recorded run directory (:class:`boxgym.trajectories.RunDir`), each running many episodes at
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

import importlib
from typing import Any

# Imported on first use: the viewer reads runs through .rundir alone and starts faster without
# the rollout manager, the envs and NumPy behind the other modes.
_EXPORTS = {
    "Branch": ".policy",
    "Comparison": ".diff",
    "DEFAULT_NORMALISERS": ".diff",
    "Needs": ".judging",
    "Normaliser": ".diff",
    "Redriven": ".redriving",
    "RedriveSummary": ".redriving",
    "ReplayConfig": ".drive",
    "ReplayPolicy": ".policy",
    "Rescored": ".rescoring",
    "RescoreSummary": ".rescoring",
    "Resumed": ".resuming",
    "ResumeSummary": ".resuming",
    "open_run": ".rundir",
    "StepDiff": ".diff",
    "compare_steps": ".diff",
    "needs_of": ".judging",
    "redrive": ".redriving",
    "rescore": ".rescoring",
    "resume": ".resuming",
    "submission_of": ".judging",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "Branch",
    "Comparison",
    "DEFAULT_NORMALISERS",
    "Needs",
    "Normaliser",
    "Redriven",
    "RedriveSummary",
    "ReplayConfig",
    "ReplayPolicy",
    "Rescored",
    "RescoreSummary",
    "Resumed",
    "ResumeSummary",
    "open_run",
    "StepDiff",
    "compare_steps",
    "needs_of",
    "redrive",
    "rescore",
    "resume",
    "submission_of",
]
