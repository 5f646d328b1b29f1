"""Naming a Docker host: a Unix socket, or ``tcp://`` with TLS and a client certificate.

A sandbox's tool server listens on a Unix socket in a directory that the container
bind-mounts from the machine its daemon runs on, and boxgym connects to that socket
directly (no network, no ``docker exec``). So a process can only run sandboxes on Docker
engines of *its own machine*: its default socket, a second daemon's socket, or a daemon's
``tcp://`` address on this machine (the API then goes over TLS, the tool server still over
the Unix socket). An engine on another machine is reached by running a process there: the
Ray actor on that node (:mod:`boxgym.rollout.ray` places one manager per node). A Unix
socket cannot be connected across machines, not even on a shared filesystem, so a
``tcp://`` address of another machine is refused with :class:`~boxgym.errors.EngineMisconfigured`
before anything is created (:func:`check_on_this_machine`); a daemon that cannot see the
socket directory for another reason (a forwarded socket, a daemon in another mount
namespace) is refused at its first sandbox (see :mod:`boxgym.sandboxes.docker`).

Nothing here talks to a daemon; :class:`~boxgym.sandboxes.engine.DockerEngine` does.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..errors import EngineMisconfigured

if TYPE_CHECKING:
    import ssl

__all__ = ["DockerHost", "TLSFiles", "check_on_this_machine", "default_host", "sync_request"]

DEFAULT_SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """The client side of a TLS-protected daemon: the CA that signed the daemon's certificate,
    and this client's certificate and key (the daemon runs with ``--tlsverify``)."""

    ca: str
    cert: str
    key: str

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str]) -> "TLSFiles":
        """Docker's layout (``DOCKER_CERT_PATH``): ``ca.pem``, ``cert.pem`` and ``key.pem``."""
        base = Path(directory)
        return cls(str(base / "ca.pem"), str(base / "cert.pem"), str(base / "key.pem"))

    def context(self) -> "ssl.SSLContext":
        """A client context that checks the daemon against ``ca`` and presents ``cert``. Reads files."""
        import ssl  # not at import: SandboxSpec (which names a host) loads with ``import boxgym``

        try:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca)
            ctx.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise EngineMisconfigured(f"cannot load the TLS files {self}: {exc}") from None
        return ctx


@dataclass(frozen=True, slots=True)
class DockerHost:
    """One Docker engine: ``unix:///path/docker.sock``, or ``tcp://HOST:PORT`` with ``tls``.

    ``DockerHost()`` is this process's default engine: ``DOCKER_HOST`` (with
    ``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH`` for ``tcp://``) or ``/var/run/docker.sock``,
    read when an engine is opened on it (:meth:`resolved`).
    """

    url: str = ""
    tls: TLSFiles | None = None

    def __post_init__(self) -> None:
        if not self.url:
            if self.tls is not None:
                raise ValueError("DockerHost(): TLS files without a tcp:// url")
            return
        scheme = self.url.split("://", 1)[0] if "://" in self.url else ""
        if scheme == "unix":
            if not self.url[len("unix://") :].startswith("/"):
                raise ValueError(f"DockerHost({self.url!r}): a unix:// url names an absolute socket path")
            if self.tls is not None:
                raise ValueError(f"DockerHost({self.url!r}): TLS is for tcp:// hosts; a Unix socket has none")
        elif scheme == "tcp":
            parts = urlsplit(self.url)
            if not parts.hostname or parts.port is None or parts.path not in ("", "/"):
                raise ValueError(f"DockerHost({self.url!r}): write tcp://HOST:PORT")
            if self.tls is None:
                raise ValueError(
                    f"DockerHost({self.url!r}): a tcp:// engine needs TLS with a client certificate "
                    "(tls=TLSFiles(...)); a plain tcp:// Docker API gives root to whoever reaches the port"
                )
        else:
            raise ValueError(f"DockerHost({self.url!r}): a Docker host is unix:///path or tcp://HOST:PORT")

    @classmethod
    def parse(cls, url: str, *, tls_dir: str | None = None) -> "DockerHost":
        """A host from a command line: ``tcp://`` takes its TLS files from ``tls_dir``
        (default ``DOCKER_CERT_PATH``, else ``~/.docker``)."""
        if url.startswith("tcp://"):
            directory = tls_dir or os.environ.get("DOCKER_CERT_PATH") or str(Path.home() / ".docker")
            return cls(url, TLSFiles.from_dir(directory))
        return cls(url)

    def resolved(self) -> "DockerHost":
        """This host with the default made concrete (reads the environment)."""
        return self if self.url else default_host()

    @property
    def address(self) -> str:
        """What the host is called in messages, labels and limit files: its url."""
        return self.resolved().url

    @property
    def socket_path(self) -> str | None:
        url = self.resolved().url
        return url[len("unix://") :] if url.startswith("unix://") else None

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        url = self.resolved().url
        if not url.startswith("tcp://"):
            return None
        parts = urlsplit(url)
        return parts.hostname or "", parts.port or 0

    @property
    def limits_suffix(self) -> str:
        """How this host's limit files are told from others': nothing for the standard
        socket (so boxgym processes of every version share those), else a readable slug
        and a hash of the url."""
        url = self.resolved().url
        if url == f"unix://{DEFAULT_SOCKET}":
            return ""
        slug = re.sub(r"[^A-Za-z0-9.-]+", "_", url.split("://", 1)[1]).strip("_")[-40:]
        return f"@{slug}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"

    def __str__(self) -> str:
        return self.address


def default_host() -> DockerHost:
    """``DOCKER_HOST`` as the docker CLI reads it, else the standard socket."""
    url = os.environ.get("DOCKER_HOST", "")
    if not url:
        return DockerHost(f"unix://{DEFAULT_SOCKET}")
    if url.startswith("tcp://"):
        if os.environ.get("DOCKER_TLS_VERIFY", "") in ("", "0"):
            raise EngineMisconfigured(
                f"DOCKER_HOST={url}: boxgym talks to a tcp:// engine only over TLS with a client "
                "certificate (set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH)"
            )
        return DockerHost.parse(url)
    try:
        return DockerHost(url)
    except ValueError as exc:
        raise EngineMisconfigured(f"DOCKER_HOST={url!r}: {exc}") from None


def _is_local_address(address: str) -> bool:
    """True when ``address`` belongs to this machine: loopback, or one of its interfaces
    (binding to an address succeeds only where the kernel owns it)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.is_loopback:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


def check_on_this_machine(host: DockerHost) -> None:
    """Refuse a ``tcp://`` host of another machine (see the module docstring). Blocks on DNS:
    call it in a thread. A Unix socket is on this machine by definition (whether its daemon
    sees this machine's files is checked at the first sandbox)."""
    tcp = host.tcp_address
    if tcp is None:
        return
    name, port = tcp
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)}
    except OSError as exc:
        raise EngineMisconfigured(f"Docker host {host}: cannot resolve {name!r}: {exc}") from None
    if not any(_is_local_address(a) for a in addresses):
        raise EngineMisconfigured(
            f"Docker host {host} is another machine ({', '.join(sorted(addresses))} is not an address of "
            "this one). A sandbox's tool server is reached through a Unix socket in a directory the "
            "container bind-mounts from its daemon's machine, and a Unix socket cannot be connected from "
            "another machine. Run the sandboxes of that host from a process on it: a Ray actor on that "
            "node (boxgym.rollout.ray, Placement(actors=None) puts one manager on every node, each using "
            "its node's engine). docs/hosts.md has the details."
        )


# -- synchronous calls, for exit paths that have no event loop ------------------------------


def sync_request(host: DockerHost, method: str, path: str, timeout: float) -> tuple[int, bytes]:
    """One blocking Engine API call (``path`` includes the API version). Raises OSError
    (``ssl.SSLError`` included) when the daemon cannot be reached."""
    import http.client

    class UnixHTTPConnection(http.client.HTTPConnection):
        def __init__(self, path: str, timeout: float) -> None:
            super().__init__("localhost", timeout=timeout)
            self._path = path

        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            self.sock.connect(self._path)

    host = host.resolved()
    conn: http.client.HTTPConnection
    if host.socket_path is not None:
        conn = UnixHTTPConnection(host.socket_path, timeout)
    else:
        name, port = host.tcp_address or ("", 0)
        assert host.tls is not None  # __post_init__ guarantees it for tcp://
        try:
            context = host.tls.context()
        except EngineMisconfigured as exc:
            raise OSError(str(exc)) from None
        conn = http.client.HTTPSConnection(name, port, timeout=timeout, context=context)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()
