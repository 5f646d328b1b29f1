"""The LLM gateway: an OpenAI-compatible proxy that records, per episode, the exact tokens an
engine saw and sampled, with their log-probabilities; and a scripted engine to run it against.

Embedding the gateway (the rollout manager)::

    from boxgym.gateway import Gateway, GatewayConfig, UpstreamConfig, StoreConfig, training_view

    config = GatewayConfig(upstream=UpstreamConfig("http://127.0.0.1:8000", engine="vllm"),
                           store=StoreConfig(path="runs/r1/gateway.jsonl"))
    async with Gateway(config) as gw:
        base_url = gw.base_url_for(episode_id)     # give this to the agent's OpenAI client
        ...                                        # the agent runs
        records = gw.records(episode_id)           # list[CallRecord], in call order
        view = gw.training_view(episode_id)        # sequences: token_ids, loss_mask, logprobs
        gw.forget(episode_id)                      # free the memory; the file keeps the records
        await gw.close_episode(episode_id)         # complete: marked in the store, later calls refused
        gw.set_weight_version("step-42")           # after a weight sync

A call's record is written before its response is released, so once the agent's call has
returned, ``gw.records(episode_id)`` holds it; the response's ``id`` is the record's call id.
Offline, :func:`read_calls` reads a store file back (``boxgym gateway export`` does that), or
the parts that ``boxgym gateway serve --workers N`` writes, one per worker, as one store (worker
``worker_of(episode_id, N)`` owns an episode; :func:`store_files` lists a store's files). Over
HTTP: ``GET /episodes/{id}/records`` and ``/training``, ``POST /episodes/{id}/close``,
``PUT /weight_version``, ``/metrics`` (:mod:`boxgym.gateway.control`). The token sequences come
from :mod:`boxgym.trajectories.tokens`, the builder the rollout manager uses too. The whole
story, with the routes, headers and settings: ``docs/gateway.md``.

Replaying scripted replies through the whole pipeline (the demo)::

    from boxgym.gateway import MockEngine, MockEngineConfig, Reply

    async with MockEngine(MockEngineConfig()) as engine:
        engine.script("ep-1", [Reply.call("bash", command="pytest -q"), Reply.say("All tests pass.")])
        config = GatewayConfig(upstream=UpstreamConfig(engine.url, engine="vllm"))

Reply ``i`` of an episode answers the request whose conversation already holds ``i`` assistant
turns; the episode is read from the affinity header the gateway sends (``X-Boxgym-Episode-Id``).
"""

from ..trajectories.tokens import LossRule
from .app import Gateway, create_app, serve
from .config import DEFAULT_EPISODE, GatewayConfig, Headers, ServerConfig, StoreConfig, Timeouts, UpstreamConfig
from .consistency import check_prompt
from .export import TokenView, training_view, view_to_json
from .mock import MockEngine, MockEngineConfig, Reply, ScriptedCall
from .records import (
    SCHEMA_VERSION,
    CallError,
    CallRecord,
    Prefix,
    PrefixCheck,
    Timings,
    record_from_json,
    record_to_json,
)
from .parts import store_files, worker_of
from .store import RecordStore, read_calls

__all__ = [
    # the gateway
    "Gateway",
    "create_app",
    "serve",
    "GatewayConfig",
    "UpstreamConfig",
    "StoreConfig",
    "Timeouts",
    "Headers",
    "ServerConfig",
    "DEFAULT_EPISODE",
    # records
    "CallRecord",
    "CallError",
    "Timings",
    "Prefix",
    "PrefixCheck",
    "SCHEMA_VERSION",
    "record_to_json",
    "record_from_json",
    "RecordStore",
    "read_calls",
    "store_files",
    "worker_of",
    "check_prompt",
    # the training view
    "training_view",
    "view_to_json",
    "TokenView",
    "LossRule",
    # the scripted engine
    "MockEngine",
    "MockEngineConfig",
    "Reply",
    "ScriptedCall",
]
