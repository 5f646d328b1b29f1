"""A gateway of several processes: ``boxgym gateway serve --workers N``.

One event loop tops out near 3,000 requests/s (0.33 ms of CPU per recorded call). N worker
processes share the port; each owns the episodes :func:`boxgym.gateway.parts.worker_of` gives
it, holds their records and prefix state in memory, and writes them to its own part of the
store (``gateway.k-of-N.jsonl``; the readers read the parts as one store).

How a call reaches its episode's owner without a second hop. The kernel spreads new
connections over the workers (SO_REUSEPORT). The worker that accepts one reads each request's
head (:mod:`.routing`): an episode it owns is served there; another worker's gets the
connection itself, handed over with the bytes read so far (:mod:`.handoff`), and that worker
serves it from then on. A proxy hop was measured against it (``boxgym bench gateway``,
docs/gateway.md): forwarding a call to its owner over HTTP costs an HTTP request received and
sent again on every call so forwarded; a hand-over costs about as much, but once per
connection, and an agent's client keeps one connection for its episode.

What concerns every worker goes through the supervisor (:mod:`.supervisor`): the weight
version (set in all before ``PUT /weight_version`` answers), the metrics (summed), the list of
workers. SIGTERM drains every worker; a worker that dies is started again and reloads its
episodes from its part of the store.
"""

from .supervisor import serve_workers

__all__ = ["serve_workers"]
