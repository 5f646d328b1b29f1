"""Small frozen configuration objects for sandboxes, one per concern.

A :class:`SandboxSpec` says what to start (image), where (a Docker host, by
default this process's engine) and how (limits, hardening, deadlines). Every
hardening default can be overridden per environment with
:func:`dataclasses.replace`::

    spec = SandboxSpec(image="slim")
    roomy = replace(spec, limits=replace(spec.limits, memory_mb=8192))
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .hosts import DockerHost

__all__ = ["ResourceLimits", "Hardening", "SandboxDeadlines", "SandboxSpec", "AGENT_UID", "WORKDIR"]

#: The uid/gid that the agent's commands run as inside the container.
AGENT_UID = 10001
#: The agent's writable work directory inside the container.
WORKDIR = "/workspace"


@dataclass(frozen=True, slots=True)
class ResourceLimits:
    """Resource limits of one sandbox."""

    memory_mb: int = 2048
    cpus: float = 1.0
    pids: int = 512
    workdir_mb: int = 1024  # size of the tmpfs at WORKDIR
    tmp_mb: int = 256  # size of the tmpfs at /tmp
    max_output_bytes: int = 64 * 1024  # per stream, per command, unless a call says otherwise
    log_max_size: str = "1m"  # json-file log driver cap


@dataclass(frozen=True, slots=True)
class Hardening:
    """How the container is locked down. Every field can be relaxed per environment."""

    network: str = "none"
    # The tool server runs as root with only these capabilities (the agent's commands get none):
    #   KILL           kill the agent's process trees (a timed-out command, kill_agent_processes)
    #   SETUID/SETGID  run commands as AGENT_UID, give file threads the agent's fs identity,
    #                  and let one thread take the agent's uid to kill(-1) all of its processes
    #   DAC_OVERRIDE   root-side file operations and judges reach whatever the agent left,
    #                  whatever modes it set (root writing into the agent-owned /workspace
    #                  needs it), and the server can create its socket in the host user's
    #                  0700 directory when that user is not root
    # CHOWN and FOWNER are not needed (measured: the Docker tests pass without them): files
    # take the agent's ownership from the fs identity, and the socket is 0666 in a directory
    # only the host user can enter. docs/security.md has the list and how it was decided.
    cap_add: tuple[str, ...] = ("DAC_OVERRIDE", "KILL", "SETUID", "SETGID")
    no_new_privileges: bool = True
    read_only_root: bool = True
    agent_user: bool = True  # False runs agent commands as root (never by default)
    extra_tmpfs: tuple[tuple[str, str], ...] = ()  # (path, options) pairs, e.g. ("/home/agent", "size=64m")


@dataclass(frozen=True, slots=True)
class SandboxDeadlines:
    """How long each lifecycle step may take, in seconds."""

    create: float = 60.0  # create + start the container
    ready: float = 30.0  # until the tool server answers
    call: float = 30.0  # default for a single call that names none
    close: float = 15.0  # kill + remove
    ttl: float = 3600.0  # the container ends itself after this, even if the host died


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    """What to start and how."""

    image: str  # a recipe name ("slim", "desktop") or an image reference
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    hardening: Hardening = field(default_factory=Hardening)
    deadlines: SandboxDeadlines = field(default_factory=SandboxDeadlines)
    env: tuple[tuple[str, str], ...] = ()  # extra environment for every command
    labels: tuple[tuple[str, str], ...] = ()  # extra container labels
    # The Docker host to start it on (None: DOCKER_HOST or the standard socket). It must be an
    # engine of this machine; a pool can spread over several (SandboxPool(hosts=...)).
    host: DockerHost | None = None
    # Plugin operations called once, without arguments, as the sandbox is created (within the
    # ``ready`` deadline): ``("ipython.ready",)`` starts the kernel before a pool hands the
    # sandbox out, so the agent's first call does not wait for it.
    warm: tuple[str, ...] = ()
