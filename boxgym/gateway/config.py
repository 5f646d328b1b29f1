"""Small frozen configuration objects for the gateway and the scripted engine, one per concern.

config = GatewayConfig(upstream=UpstreamConfig(url="http://127.0.0.1:8000", engine="vllm"),
                       store=StoreConfig(path="runs/r1/gateway.jsonl"))
quick = replace(config, timeouts=replace(config.timeouts, total=30.0))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..trajectories.tokens import REALIGN_TAIL

__all__ = [
    "Engine",
    "UpstreamConfig",
    "Timeouts",
    "StoreConfig",
    "Headers",
    "ServerConfig",
    "GatewayConfig",
    "DEFAULT_EPISODE",
]

Engine = Literal["vllm", "sglang", "openai", "replay"]  # replay: url names a recorded store

#: The episode that calls naming none are recorded under.
DEFAULT_EPISODE = "default"


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """Where the engine is and how to speak to it."""

    url: str  # base URL without /v1, e.g. http://127.0.0.1:8000
    engine: Engine = "vllm"
    api_key: str | None = None  # sent upstream as the bearer; the client's bearer is never forwarded
    max_connections: int = 1024
    # Idle connections to the engine are dropped after this many seconds: below uvicorn's 5 s
    # keep-alive (vLLM, SGLang), so the gateway never reuses a connection the engine just closed.
    keepalive_seconds: float = 4.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Deadlines for one upstream call, in seconds."""

    connect: float = 10.0
    total: float = 600.0  # a whole call; a long generation can take minutes
    read_idle: float = 120.0  # streams only: no byte from the engine for this long ends the stream


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Where records go. ``path=None`` keeps them in memory only (tests, benchmarks of the bare proxy)."""

    path: str | None = None
    # A background thread fsyncs the file this often (seconds); None never fsyncs. A record is
    # always handed to the OS before its response is released, which survives a crash of the
    # gateway process; fsync is only about a crash of the machine.
    fsync_interval: float | None = 1.0
    # Episodes whose records stay in memory (for the prefix check, retries and reads); beyond this
    # the least recently written are dropped from memory (the file keeps them, and an episode's
    # next call reads its records back from there). Size it above the number of episodes in
    # flight, or every call pays for that read.
    max_episodes_in_memory: int = 16384


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """How the gateway's own server accepts connections and reads requests.

    ``backlog`` is the listen queue: a burst of new connections beyond it waits for SYN
    retransmits or fails (aiohttp's default of 128 dropped connections when 1,000 clients
    arrived at once). Linux caps it at ``net.core.somaxconn`` (4096 since kernel 5.4; 128 before),
    and the gateway logs a warning when the cap is lower than the setting.
    """

    backlog: int = 4096
    # A connection must send a request's complete headers within this many seconds of opening
    # (or of its previous response): aiohttp's keep-alive timer, which also closes idle connections.
    header_timeout: float = 75.0
    body_timeout: float = 60.0  # a request's body must arrive within this many seconds: else 408
    # On SIGTERM (``boxgym gateway serve``): stop accepting, let calls in flight finish for up to
    # this long, then cancel them (each is recorded as a client disconnect) and exit.
    shutdown_grace: float = 30.0
    # Processes serving the port (``serve`` only; an embedded Gateway is one). Each owns the
    # episodes boxgym.gateway.parts.worker_of gives it, and writes its own part of the store.
    workers: int = 1


@dataclass(frozen=True, slots=True)
class Headers:
    """Names of the HTTP headers the gateway reads or sends (case-insensitive).

    An episode is named, in this order, by the path (``/episodes/{id}/v1/...``), by the
    ``episode`` header below, or by a bearer token that is not a placeholder; else ``default``.
    """

    # sent upstream with the episode id, for prefix-cache routing; a client may send it to name
    # its episode (it must agree with the path's, if both are given)
    affinity: str = "X-Boxgym-Episode-Id"
    weight_version: str = "X-Weight-Version"  # read from the engine's response, else the setting
    retry_count: str = "X-Stainless-Retry-Count"  # the OpenAI SDKs' retry counter
    parent_call: str = "X-Boxgym-Parent-Call"  # a client may name the call it continues


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Everything the gateway needs. ``port=0`` picks a free port."""

    upstream: UpstreamConfig
    store: StoreConfig = field(default_factory=StoreConfig)
    timeouts: Timeouts = field(default_factory=Timeouts)
    headers: Headers = field(default_factory=Headers)
    server: ServerConfig = field(default_factory=ServerConfig)
    host: str = "127.0.0.1"
    port: int = 0
    max_body_bytes: int = 16 * 1024 * 1024
    weight_version: str | None = None  # used when the engine sends no weight-version header
    # A REALIGN is a difference only inside the last this-many tokens of the previous completion.
    realign_tail_tokens: int = REALIGN_TAIL
    # Required as ``Authorization: Bearer <token>`` by the control routes (weight version, close,
    # records, training view) when set; None leaves them open (a gateway on localhost).
    admin_token: str | None = None
    # Bearer tokens that are API-key placeholders, not episode ids.
    placeholder_bearers: tuple[str, ...] = ("", "EMPTY", "empty", "none", "None", "dummy", "sk-no-key")
