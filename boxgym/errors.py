"""The one exception tree of boxgym.

Every error that boxgym raises derives from :class:`BoxgymError`. Errors of the
systems underneath (the Docker Engine API, aiohttp, the tool server, an LLM
engine) are translated at the boundary where they are caught; none escapes raw.

The names say who broke it: ``Closed`` means *you* closed it, ``Broken`` means
it broke under you, ``Refused`` means the request itself was not acceptable.

    BoxgymError
    ├── SandboxError
    │   ├── SandboxClosed          the caller closed the sandbox (or its pool)
    │   ├── SandboxBroken          the container died, the tool server vanished
    │   ├── SandboxWrecked         the agent's own actions left the sandbox unusable
    │   ├── SandboxTimeout         an operation passed its deadline (also a TimeoutError)
    │   ├── ToolUnavailable        a tool in the sandbox cannot run (its kernel or browser does not start)
    │   ├── ToolServerError        a bug in the tool server or one of its plugins (an ``internal`` answer)
    │   └── SandboxRefused         the operation was refused: bad arguments, unknown
    │       │                      operation, a path outside what is allowed
    │       ├── SandboxBusy        the sandbox is in use by a call that cannot share it
    │       └── SandboxFileNotFound  a path does not exist (also a FileNotFoundError)
    ├── EngineError                the container engine failed; carries the daemon's message
    │   ├── EngineUnavailable      no engine answers (daemon down, socket missing)
    │   ├── EngineOverloaded       the engine answered too slowly or with 5xx under load
    │   ├── EngineMisconfigured    the engine cannot serve sandboxes as configured (another
    │   │                          machine's, no TLS, its daemon cannot see the socket directory)
    │   └── ImageNotFound          the requested image is not built
    ├── ImageBuildError            building an image from its recipe failed
    ├── GatewayError               the LLM gateway or its upstream failed
    │   ├── GatewayRefused         a client's request was not acceptable (carries status, type)
    │   ├── GatewayStoreError      a record could not be written or read
    │   └── UpstreamError          the engine behind the gateway failed or was unreachable
    │       ├── UpstreamUnavailable    no engine answers at the upstream URL
    │       ├── UpstreamTimeout        the engine passed its deadline (also a TimeoutError)
    │       ├── UpstreamProtocolError  the engine answered something that is not its API
    │       └── UpstreamRefused        the engine answered with an error status (carries it)
    ├── EnvBusy                    a second reset/step on an env while one runs (one env per thread)
    ├── ToolCallError              an agent's tool call was malformed (becomes an observation)
    ├── AgentSessionError          a black-box agent misused its session (two steps at once)
    │   └── AgentSessionClosed     the session is over: its episode ended or its policy was closed
    ├── TaskError                  a task or task set is malformed
    ├── JudgeError                 a judge could not reach a verdict (infrastructure, not reward 0)
    ├── SimulatorError             a world model or simulated user gave no usable answer (infrastructure)
    ├── ReplayError                a recorded run cannot be replayed as asked (says why)
    └── RolloutActorsLost          every Ray actor of a run died and none could replace them

Who is at fault (:func:`fault_of`, the one rule, used by the environments and the
rollout manager alike):

* ``Fault.AGENT``: the agent caused it. A tool turns what the agent asked for into an
  observation (``ok=False``); what reaches the episode (``SandboxWrecked``) ends it with a
  reward of 0 and the reason recorded. Never retried: a reward of ``None`` is a free retry,
  and the agent must not be able to buy one.
* ``Fault.INFRA``: the infrastructure broke (``SandboxBroken``, ``SandboxClosed``,
  ``SandboxTimeout`` and any ``TimeoutError``, ``ToolUnavailable``, ``EngineError``, ``ImageBuildError``,
  ``GatewayError``, ``JudgeError``, ``SimulatorError``): reward ``None``, retried by the rollout
  manager.
* ``Fault.BUG``: code, data or setup is wrong (a malformed task, a Docker host that cannot
  serve sandboxes (``EngineMisconfigured``), a refused request that a toolset
  should have turned into an observation, a tool-server plugin that raised where it should
  have answered (``ToolServerError``), any other exception): reward ``None``, reported with
  its cause, not retried (a retry would fail the same way).

What the agent caused, in a sandbox (where :class:`SandboxWrecked` comes from; the sandbox
decides it, with the evidence, and nothing else raises it):

1. What the agent asks for that cannot be done is refused by name (``SandboxRefused.reason``:
   a FIFO, too large, read-only, no space, pids exhausted, ...), and a command that runs too
   long is killed at its timeout. Both are observations: the episode goes on. Only a caller
   that is not the agent's toolset can let a refusal end an episode, and then it is a bug.
2. The sandbox is the agent's wreck when its own protections could not contain what the
   agent ran or left behind, which the tool server's limits make the only way:

   - its processes could not all be killed, or the pids they held were not freed, within
     10 s of ``kill(-1)`` from its uid (``kill_agent_processes``, which judges call first);
   - the container ended because its memory limit's OOM killer killed the tool server: its
     init saw the server die of SIGKILL while the cgroup's OOM killer had struck and the
     limit had been reached (without that witness, the engine's ``OOMKilled``). The
     server's own memory is bounded (reads, outputs and frames are capped), so the memory
     was filled by the agent's processes (which the OOM killer takes first) or its files;
   - a judge's runner, started after the agent's processes were killed, was killed by the
     OOM killer: the memory is filled by what the agent left.

3. Everything else that ends a sandbox is the infrastructure's (``SandboxBroken``): the
   container killed or removed from outside (``docker kill``: its init never wrote why it
   ended), the tool server killed by any signal but the memory limit's (``docker exec kill``),
   the daemon gone, the TTL passed, a deadline on the host.

Known limits of the rule: a host-wide OOM that kills a tool server in a container that had
already reached its own memory limit counts as the agent's; and with
``Hardening(agent_user=False)`` the agent is root and could kill its tool server itself,
which would count as the infrastructure's: do not train with that setting.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "BoxgymError",
    "SandboxError",
    "SandboxClosed",
    "SandboxBroken",
    "SandboxWrecked",
    "SandboxTimeout",
    "ToolUnavailable",
    "ToolServerError",
    "SandboxRefused",
    "SandboxBusy",
    "SandboxFileNotFound",
    "EngineError",
    "EngineUnavailable",
    "EngineOverloaded",
    "EngineMisconfigured",
    "ImageNotFound",
    "ImageBuildError",
    "GatewayError",
    "UpstreamError",
    "GatewayRefused",
    "GatewayStoreError",
    "UpstreamUnavailable",
    "UpstreamTimeout",
    "UpstreamProtocolError",
    "UpstreamRefused",
    "EnvBusy",
    "ToolCallError",
    "AgentSessionError",
    "AgentSessionClosed",
    "TaskError",
    "JudgeError",
    "SimulatorError",
    "ReplayError",
    "RolloutActorsLost",
    "Fault",
    "fault_of",
]


class BoxgymError(Exception):
    """Root of every error boxgym raises."""


# -- sandboxes -----------------------------------------------------------------


class SandboxError(BoxgymError):
    """A sandbox operation failed."""


class SandboxClosed(SandboxError):
    """The sandbox was closed by its owner; it is not usable any more."""


class SandboxBroken(SandboxError):
    """The sandbox broke under the caller: container died, engine gone, server lost.

    This is an infrastructure failure, never the agent's score.
    """


class SandboxWrecked(SandboxError):
    """The agent's own actions left the sandbox unusable, and it could not be recovered.

    For example: its processes exhausted the container's pids or memory and could not be
    killed, or what it ran killed the tool server. The episode is scored 0 with this message
    as the reason (:data:`Fault.AGENT`), never retried as an infrastructure failure.
    """


class ToolUnavailable(SandboxError):
    """A tool inside the sandbox cannot run: its kernel cannot be (re)started, its browser or
    display does not start. The infrastructure's fault; the episode is retried elsewhere."""


class ToolServerError(SandboxError):
    """The tool server or one of its plugins raised where it should have answered: a bug,
    reported and not retried (the same request would fail the same way)."""


class SandboxTimeout(SandboxError, TimeoutError):
    """A sandbox operation did not finish before its deadline."""


class SandboxRefused(SandboxError):
    """The tool server refused the request as asked.

    ``reason`` names why, one of ``boxgym.sandboxes.REFUSALS``: ``bad_request`` (bad arguments,
    an unknown operation), ``bad_name``, ``bad_content``, ``not_regular`` (a FIFO, socket or
    device), ``is_directory``, ``not_directory``, ``exists``, ``symlink``, ``too_large`` (the
    message says how to split the work), ``read_only``, ``no_space``, ``name_too_long``,
    ``permission``, ``pids_exhausted`` (no command can start), ``os_error``; and ``busy`` and
    ``not_found`` for the two subclasses. docs/security.md lists what an agent sees for each.
    """

    reason = "bad_request"

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class SandboxBusy(SandboxRefused):
    """The sandbox is in use by a call that cannot run concurrently with this one."""

    reason = "busy"


class SandboxFileNotFound(SandboxRefused, FileNotFoundError):
    """A path named in a sandbox operation does not exist."""

    reason = "not_found"


# -- container engine ----------------------------------------------------------


class EngineError(BoxgymError):
    """The container engine failed. ``daemon_message`` holds what the daemon said."""

    def __init__(self, message: str, *, status: int | None = None, daemon_message: str | None = None):
        super().__init__(message)
        self.status = status
        self.daemon_message = daemon_message


class EngineUnavailable(EngineError):
    """No container engine answers (the daemon is down or its socket is missing)."""


class EngineOverloaded(EngineError):
    """The engine is up but too slow or failing under load."""


class EngineMisconfigured(EngineError):
    """The engine cannot serve sandboxes as configured: a ``tcp://`` host of another machine,
    ``tcp://`` without TLS, TLS files that do not load or do not match, or a daemon that cannot
    see the sandbox socket directory (:mod:`boxgym.sandboxes.hosts`). A bug of the setup, not
    retried: every retry would fail the same way."""


class ImageNotFound(EngineError):
    """The requested image does not exist; build it with ``boxgym images build``."""


class ImageBuildError(BoxgymError):
    """Building a sandbox image from its recipe failed."""


# -- gateway -------------------------------------------------------------------


class GatewayError(BoxgymError):
    """The LLM gateway failed."""


class UpstreamError(GatewayError):
    """The engine behind the gateway failed, timed out or answered garbage.

    ``status`` is the HTTP status the gateway answers its client with; ``body`` is what the
    engine said, if anything.
    """

    status = 502
    error_type = "upstream_error"

    def __init__(self, message: str, *, body: str | None = None) -> None:
        super().__init__(message)
        self.body = body


class GatewayRefused(GatewayError):
    """A client's request was not acceptable: malformed JSON, missing fields, too large."""

    def __init__(
        self, message: str, *, status: int = 400, error_type: str = "invalid_request_error", param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.param = param


class GatewayStoreError(GatewayError):
    """A record could not be written to (or read from) the record store."""


class UpstreamUnavailable(UpstreamError):
    """No engine answers at the upstream URL (connection refused, reset, DNS)."""

    status = 502
    error_type = "upstream_unavailable"


class UpstreamTimeout(UpstreamError, TimeoutError):
    """The engine did not answer (or stopped streaming) before the deadline."""

    status = 504
    error_type = "upstream_timeout"


class UpstreamProtocolError(UpstreamError):
    """The engine answered, but not in its API's shape (not JSON, missing fields, broken SSE)."""

    status = 502
    error_type = "upstream_protocol_error"


class UpstreamRefused(UpstreamError):
    """The engine answered with an error status; the gateway passes the status on."""

    error_type = "upstream_refused"

    def __init__(self, message: str, *, status: int, body: str | None = None) -> None:
        super().__init__(message, body=body)
        self.status = status


# -- environments, tasks and judges ---------------------------------------------


class EnvBusy(BoxgymError):
    """A reset or step was called on an env while another of its calls runs.

    An env runs one episode at a time; give each thread (or task) its own env.
    """


class ToolCallError(BoxgymError):
    """An agent's tool call could not be parsed or executed as asked.

    Environments turn it into an observation; it never ends a rollout.
    """


class AgentSessionError(BoxgymError):
    """A black-box agent used its :class:`~boxgym.rollout.AgentSession` wrongly (a bug of that
    agent: recorded as its episode's error)."""


class AgentSessionClosed(AgentSessionError):
    """The agent's session is over: its episode ended (the env finished it, a budget or deadline
    ran out, it was cancelled) or its :class:`~boxgym.rollout.AgentPolicy` was closed."""


class TaskError(BoxgymError):
    """A task or a task set is malformed."""


class JudgeError(BoxgymError):
    """A judge could not reach a verdict. Recorded as an infrastructure failure."""


class SimulatorError(BoxgymError):
    """A model that plays part of the environment (the world model of a simulated env, a simulated
    user) gave no usable answer: its endpoint failed or refused, or its answers still did not fit
    after it was asked again. Recorded as an infrastructure failure: the simulator's failure is
    not the agent's score (:mod:`boxgym.simulated`)."""


class ReplayError(BoxgymError):
    """A recorded run cannot be replayed as asked: not a run directory, an unknown episode, an
    env that cannot be rebuilt. The message says why and what would do instead."""
class RolloutActorsLost(BoxgymError):
    """Every Ray actor of a run died (``boxgym.rollout.ray``) and no replacement was left:
    the run cannot go on. Its episodes lost with the actors are not reported as results."""


# -- who is at fault ---------------------------------------------------------------


class Fault(StrEnum):
    """Who caused a failure; decides reward and retry (see the module docstring)."""

    AGENT = "agent"  # reward 0 with the reason recorded; never retried
    INFRA = "infra"  # reward None; retried
    BUG = "bug"  # reward None; reported, not retried


_AGENT_ERRORS = (SandboxWrecked, ToolCallError)
_BUG_ERRORS = (SandboxRefused, ToolServerError, TaskError, AgentSessionError, EngineMisconfigured)
_INFRA_ERRORS = (SandboxError, EngineError, ImageBuildError, GatewayError, JudgeError, SimulatorError, TimeoutError)


def fault_of(exc: BaseException) -> Fault:
    """The one rule that says who caused ``exc``, for an exception that ended an episode's stage.

    The order matters: ``SandboxRefused`` and ``SandboxWrecked`` are sandbox errors that are
    not the infrastructure's.
    """
    if isinstance(exc, _AGENT_ERRORS):
        return Fault.AGENT
    if isinstance(exc, _BUG_ERRORS):
        return Fault.BUG
    if isinstance(exc, _INFRA_ERRORS):
        return Fault.INFRA
    return Fault.BUG
