"""``boxgym view``: a local web viewer of run directories.

An aiohttp app (:func:`create_app`) serves a JSON API over an index of each run
(:class:`RunIndex`: the run is never loaded whole) and a small static front end with no build
step: a table of episodes with filters and sort, one episode (prompt, steps, tool calls,
observations, images, timings, the verdict and its evidence, the sub-agent tree with its
critical path, the tokens of every model call coloured by logprob), two episodes side by side
from their first divergence, all updating live while a run is being written.
"""

from .app import RUNS, Runs, create_app
from .index import Page, Query, RunIndex

__all__ = ["create_app", "Runs", "RUNS", "RunIndex", "Query", "Page"]
