"""An async client for the Docker Engine API of one Docker host.

It speaks HTTP to the host's Unix socket (``/var/run/docker.sock`` by default), or
HTTPS with a client certificate to a ``tcp://`` host of this machine
(:mod:`.hosts`), with aiohttp, so no call blocks the event loop and no ``docker``
process is spawned per call. It also protects the daemon, which slows sharply and
can hang under high churn: at most ``max_concurrent`` API calls are in flight and
at most ``creates_per_s`` containers are created per second, counted across every
boxgym process on the machine, per Docker host (see :mod:`.hostlimits`). Errors are
translated into boxgym's tree with the daemon's own message kept.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from ..errors import EngineError, EngineMisconfigured, EngineOverloaded, EngineUnavailable, ImageNotFound
from .hostlimits import HostRate, HostSlots
from .hosts import DockerHost, check_on_this_machine

__all__ = ["EngineLimits", "DockerEngine", "docker_socket_path"]

API_VERSION = "v1.41"  # Docker 20.10; newer engines accept it


def docker_socket_path() -> str:
    """The default host's Unix socket (``DOCKER_HOST`` or the standard one)."""
    path = DockerHost().socket_path
    if path is None:
        raise EngineUnavailable(f"DOCKER_HOST={os.environ.get('DOCKER_HOST')!r} is not a unix:// socket")
    return path


@dataclass(frozen=True, slots=True)
class EngineLimits:
    """How hard boxgym may push the daemon."""

    max_concurrent: int = 32  # API calls in flight at once, per Docker host, across processes
    creates_per_s: float = 20.0  # container creations per second, sustained, per Docker host
    create_burst: int = 8  # creations allowed back to back before the rate applies
    call_timeout: float = 60.0  # one API call


class DockerEngine:
    """One connection pool to one Docker host (default: this process's). Close with :meth:`aclose`.

    ``socket_path`` is a shorthand for ``host=DockerHost("unix://" + socket_path)``.
    """

    def __init__(
        self, limits: EngineLimits | None = None, *, host: DockerHost | None = None, socket_path: str | None = None
    ) -> None:
        self.limits = limits or EngineLimits()
        if socket_path is not None:
            host = DockerHost(f"unix://{socket_path}")
        self.host = (host or DockerHost()).resolved()
        tcp = self.host.tcp_address
        self._base = f"https://{tcp[0]}:{tcp[1]}/{API_VERSION}" if tcp else f"http://docker/{API_VERSION}"
        self._session: aiohttp.ClientSession | None = None
        # The local semaphore keeps this process's waiters off the host-wide lock files.
        self._local = asyncio.Semaphore(self.limits.max_concurrent)
        suffix = self.host.limits_suffix
        self._host_slots = HostSlots("docker-api" + suffix, self.limits.max_concurrent)
        self._creates = HostRate("docker-create" + suffix, self.limits.creates_per_s, self.limits.create_burst)
        #: Whether this host's daemon has been seen to create sandbox socket directories where
        #: this process reads them (set by the first sandbox; see :mod:`.docker`).
        self.sees_socket_dirs = False

    async def _open(self) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(total=self.limits.call_timeout)
        path = self.host.socket_path
        if path is not None:
            connector: aiohttp.BaseConnector = aiohttp.UnixConnector(path=path, limit=self.limits.max_concurrent)
        else:
            # Both read files or resolve names: off the event loop, once per session.
            await asyncio.to_thread(check_on_this_machine, self.host)
            assert self.host.tls is not None
            context = await asyncio.to_thread(self.host.tls.context)
            connector = aiohttp.TCPConnector(ssl=context, limit=self.limits.max_concurrent)
        if self._session is not None and not self._session.closed:  # another call opened it meanwhile
            await connector.close()
            return self._session
        session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        if path is None:
            await self._first_tls_call(session)
            if self._session is not None and not self._session.closed:  # opened meanwhile, again
                await session.close()
                return self._session
        self._session = session
        return session

    async def _first_tls_call(self, session: aiohttp.ClientSession) -> None:
        """A daemon with ``--tlsverify`` completes the handshake and then resets a client whose
        certificate its CA did not sign: at the first call that is a setup error, and is said so."""
        try:
            async with session.get(f"{self._base}/_ping") as resp:
                await resp.read()
        except aiohttp.ClientConnectorError:
            await session.close()
            raise
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
            await session.close()
            raise EngineMisconfigured(
                f"the Docker host {self.host} closed the TLS connection at the first call ({exc}): a daemon "
                f"with --tlsverify does that to a client whose certificate ({self.host.tls.cert if self.host.tls else '-'}) "
                "its CA did not sign"
            ) from None
        except BaseException:
            await session.close()
            raise

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        ok: tuple[int, ...] = (200, 201, 204),
        timeout: float | None = None,
    ) -> Any:
        """One API call; returns the decoded JSON body (or None). Raises EngineError subclasses."""
        url = self._base + path
        kwargs: dict[str, Any] = {"params": params}
        if body is not None:
            kwargs["json"] = body
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout)
        async with self._local, self._host_slots.hold():
            try:
                session = self._session
                if session is None or session.closed:
                    session = await self._open()
                async with session.request(method, url, **kwargs) as resp:
                    raw = await resp.read()
                    status = resp.status
            except aiohttp.ClientSSLError as exc:
                raise EngineMisconfigured(
                    f"the TLS handshake with the Docker host {self.host} failed: {exc}. The daemon's "
                    f"certificate must be signed by {self.host.tls.ca if self.host.tls else 'the CA'} and name "
                    "the address used, and the daemon must accept this client's certificate"
                ) from None
            except (aiohttp.ClientConnectorError, FileNotFoundError, ConnectionRefusedError) as exc:
                raise EngineUnavailable(
                    f"no Docker engine answers at {self.host}: {exc}. "
                    "Start one (`./run.sh setup` installs and starts dockerd) and retry."
                ) from None
            except asyncio.TimeoutError:
                raise EngineOverloaded(f"Docker engine did not answer {method} {path} in time") from None
            except aiohttp.ClientError as exc:
                raise EngineError(f"Docker engine call {method} {path} on {self.host} failed: {exc}") from None
        if status in ok:
            return json.loads(raw) if raw and raw[:1] in (b"{", b"[") else None
        try:
            message = json.loads(raw).get("message", "")
        except ValueError:
            message = raw.decode(errors="replace").strip()
        if status == 404 and ("image" in message.lower() and "no such" in message.lower()):
            raise ImageNotFound(f"image not found on {self.host}: {message}", status=status, daemon_message=message)
        cls = EngineOverloaded if status in (502, 503, 504) else EngineError
        raise cls(
            f"Docker engine {self.host} refused {method} {path} ({status}): {message}", status=status, daemon_message=message
        )

    # -- containers ----------------------------------------------------------

    async def create_container(self, config: dict[str, Any], *, name: str | None = None) -> str:
        await self._creates.take()
        params = {"name": name} if name else None
        result = await self.request("POST", "/containers/create", params=params, body=config)
        return result["Id"]

    async def start_container(self, container_id: str) -> None:
        await self.request("POST", f"/containers/{container_id}/start", ok=(204, 304))

    async def inspect_container(self, container_id: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", f"/containers/{container_id}/json")
        except EngineError as exc:
            if exc.status == 404:
                return None
            raise

    async def remove_container(self, container_id: str, *, timeout: float | None = None) -> None:
        """Kill and remove; a container that is already gone or going is fine."""
        await self.request(
            "DELETE",
            f"/containers/{container_id}",
            params={"force": "true", "v": "true"},
            ok=(204, 404, 409),  # 409: removal already in progress (AutoRemove)
            timeout=timeout,
        )

    async def list_containers(self, *, labels: dict[str, str | None], all: bool = True) -> list[dict[str, Any]]:
        wanted = [k if v is None else f"{k}={v}" for k, v in labels.items()]
        filters = json.dumps({"label": wanted})
        return await self.request("GET", "/containers/json", params={"all": "1" if all else "0", "filters": filters})

    # -- images --------------------------------------------------------------

    async def inspect_image(self, ref: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", f"/images/{quote(ref, safe='')}/json")
        except EngineError as exc:
            if exc.status == 404:
                return None
            raise

    async def ping(self) -> None:
        await self.request("GET", "/_ping", timeout=5)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._host_slots.close()
        self._creates.close()

    async def __aenter__(self) -> "DockerEngine":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
