"""A worker's router: the episode a request head names (as the gateway itself names it), where
each request on a connection ends, and when a connection moves to another worker."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from boxgym.gateway import Gateway, worker_of
from boxgym.gateway.workers.handoff import Handoff
from boxgym.gateway.workers.routing import CHUNKED, Router, read_head

AFFINITY = b"x-boxgym-episode-id"
PLACEHOLDERS = frozenset({"", "EMPTY", "dummy"})


def _head(target: str, *headers: str) -> bytes:
    return "\r\n".join([f"POST {target} HTTP/1.1", "Host: x", *headers]).encode()


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        pytest.param(_head("/episodes/ep-1/v1/chat/completions", "Content-Length: 12"), ("ep-1", 12), id="path"),
        pytest.param(_head("/v1/chat/completions", "X-Boxgym-Episode-Id: ep-2"), ("ep-2", 0), id="header"),
        pytest.param(_head("/v1/chat/completions", "x-boxgym-episode-id:   ep-2 "), ("ep-2", 0), id="header-case"),
        pytest.param(_head("/v1/chat/completions", "Authorization: Bearer ep-3"), ("ep-3", 0), id="bearer"),
        pytest.param(_head("/v1/chat/completions", "Authorization: Bearer EMPTY"), ("default", 0), id="placeholder"),
        pytest.param(_head("/v1/chat/completions", "Authorization: Basic ep-3"), ("default", 0), id="not-bearer"),
        pytest.param(
            _head("/episodes/p/v1/chat/completions", "X-Boxgym-Episode-Id: h", "Authorization: Bearer b"),
            ("p", 0),
            id="path-first",
        ),
        pytest.param(
            _head("/v1/chat/completions", "Authorization: Bearer b", "X-Boxgym-Episode-Id: h"),
            ("h", 0),
            id="header-2nd",
        ),
        pytest.param(_head("/episodes/a%2Fb/v1/chat/completions"), ("a/b", 0), id="escaped-slash"),
        pytest.param(_head("/episodes/%41b%20c/records"), ("Ab c", 0), id="escaped"),
        pytest.param(_head("/episodes/q/v1/chat/completions?x=/episodes/z"), ("q", 0), id="query"),
        pytest.param(_head("/health"), ("default", 0), id="none"),
        pytest.param(_head("/v1/completions", "Transfer-Encoding: chunked"), ("default", CHUNKED), id="chunked"),
        pytest.param(b"\r\n" + _head("/episodes/e/v1/models"), ("e", 0), id="leading-crlf"),
    ],
)
def test_the_episode_a_head_names(head: bytes, expected: tuple[str, int]) -> None:
    assert read_head(head, AFFINITY, PLACEHOLDERS) == expected


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(_head("/v1/x", "Content-Length: 3", "Content-Length: 3"), id="two-lengths"),
        pytest.param(_head("/v1/x", "Content-Length: -3"), id="negative-length"),
        pytest.param(_head("/v1/x", "Content-Length: 3", "Transfer-Encoding: chunked"), id="length-and-chunked"),
        pytest.param(_head("/v1/x", "Transfer-Encoding: gzip"), id="other-coding"),
        pytest.param(b"CONNECT host:443 HTTP/1.1\r\nHost: x", id="connect"),
        pytest.param(b"GARBAGE", id="garbage"),
    ],
)
def test_a_head_that_cannot_be_framed_is_left_to_aiohttp(head: bytes) -> None:
    assert read_head(head, AFFINITY, PLACEHOLDERS) is None


async def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    answer = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    return answer


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        pytest.param("/episodes/a%2Fb/v1/chat/completions", "", id="escaped-slash"),
        pytest.param("/episodes/%C3%A9t%C3%A9/v1/chat/completions", "", id="utf8"),
        pytest.param("/episodes/x/../y/v1/chat/completions", "", id="dots"),
        pytest.param("/v1/chat/completions", "X-Boxgym-Episode-Id: hdr\r\n", id="header"),
        pytest.param("/v1/chat/completions", "Authorization: Bearer tok\r\n", id="bearer"),
        pytest.param("/v1/chat/completions", "Authorization: Bearer dummy\r\n", id="placeholder"),
        pytest.param("/episodes/p/v1/chat/completions", "X-Boxgym-Episode-Id: other\r\n", id="conflict"),
        pytest.param("/episodes/nf/v2/unknown", "", id="unknown-route"),
    ],
)
async def test_the_router_names_the_episode_the_gateway_records(gateway: Gateway, target: str, headers: str) -> None:
    body = b'{"messages": [{"role": "user", "content": "hi"}]}'
    head = f"POST {target} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {len(body)}\r\n"
    named = read_head(head.encode().rstrip(), AFFINITY, frozenset(gateway.config.placeholder_bearers))
    assert named is not None
    episode = named[0]
    await _raw(gateway.url, head.encode() + b"\r\n" + body)
    assert gateway.state.store is not None
    assert gateway.state.store.episode_ids() == [episode]


class _Inner(asyncio.Protocol):
    """aiohttp's place: what the router gives it."""

    def __init__(self) -> None:
        self.data = b""
        self.lost = False

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.paused = self.aborted = False
        self.buffered = 0

    def pause_reading(self) -> None:
        self.paused = True

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.aborted

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return "the socket" if name == "socket" else default

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.aborted = True


class _Worker:
    """What a router needs of its worker; its hand-overs are recorded, not sent."""

    def __init__(self, index: int) -> None:
        self.index, self.count = index, 2
        self.affinity, self.placeholders = AFFINITY, PLACEHOLDERS
        self.routers: dict[object, Router] = {}
        self.connections: set[Router] = set()
        self.header_timeout = 0.05
        self.draining = False
        self.inner = _Inner()
        self.handoff = self
        self.sent: list[tuple[int, bytes]] = []

    def http(self) -> _Inner:
        return self.inner

    def send_nowait(self, owner: int, sock: object, pending: bytes) -> bool:
        return False

    async def send(self, owner: int, sock: object, pending: bytes) -> bool:
        self.sent.append((owner, pending))
        return True


MINE = next(e for e in (f"m{i}" for i in range(100)) if worker_of(e, 2) == 0)
THEIRS = next(e for e in (f"t{i}" for i in range(100)) if worker_of(e, 2) == 1)


def _post(episode: str, body: bytes, chunked: bool = False) -> bytes:
    head = f"POST /episodes/{episode}/v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
    if not chunked:
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7]) for i in range(0, len(body), 7))
    return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunks + b"0\r\nTrailer: t\r\n\r\n"


@pytest.mark.parametrize("split", [1, 3, 64, 10_000], ids=lambda n: f"pieces-of-{n}")
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
async def test_requests_are_framed_however_the_bytes_arrive(split: int, chunked: bool) -> None:
    worker = _Worker(0)
    router = Router(worker)  # type: ignore[arg-type]
    transport = _Transport()
    router.connection_made(transport)
    body = b'{"messages": [{"role": "user", "content": "\\r\\n\\r\\n0\\r\\n"}]}'
    mine = _post(MINE, body, chunked) * 2  # pipelined: two of this worker's calls ...
    theirs = _post(THEIRS, body, chunked)  # ... then one of the other worker's
    stream = mine + theirs + _post(MINE, body)
    for i in range(0, len(stream), split):
        router.data_received(stream[i : i + split])
        if transport.paused:
            break
    assert worker.inner.data == mine  # the other worker's call never reached aiohttp
    assert transport.paused and worker.sent == []  # two calls in flight: the connection waits
    router.request_done()
    await asyncio.sleep(0)
    assert worker.sent == []
    transport.buffered = 100  # the last answer is still being written
    router.request_done()
    await asyncio.sleep(0.01)
    assert worker.sent == []
    transport.buffered = 0
    await asyncio.sleep(0.01)
    [(owner, pending)] = worker.sent
    # what was read of the connection past this worker's calls: at least the other call's head
    assert owner == 1 and stream[len(mine) :].startswith(pending) and b"\r\n\r\n" in pending
    assert transport.aborted  # the other worker holds the connection now
    router.connection_lost(None)
    assert worker.inner.lost


async def test_a_connection_handed_over_at_its_first_request_never_meets_aiohttp() -> None:
    worker = _Worker(0)
    router = Router(worker)  # type: ignore[arg-type]
    transport = _Transport()
    router.connection_made(transport)
    router.data_received(_post(THEIRS, b"{}"))
    await asyncio.sleep(0.1)  # past the header deadline: the hand-over stopped it
    assert [owner for owner, _ in worker.sent] == [1] and router.inner is None
    router.connection_lost(None)
    assert worker.connections == set()


async def test_a_connection_that_sends_no_request_is_closed_at_the_header_deadline() -> None:
    worker = _Worker(0)
    router = Router(worker)  # type: ignore[arg-type]
    transport = _Transport()
    router.connection_made(transport)
    router.data_received(b"POST /episodes/x/v1/chat/com")  # and no more
    await asyncio.sleep(0.1)
    assert transport.aborted and router.inner is None and worker.sent == []


async def test_a_connection_handed_over_serves_its_first_request_where_it_lands() -> None:
    worker = _Worker(1)
    request = _post(MINE, b"{}")  # worker 0's episode, handed to worker 1 (never happens: a bug's guard)
    router = Router(worker, request, handed=True)  # type: ignore[arg-type]
    router.connection_made(_Transport())
    assert worker.inner.data == request and worker.sent == []


async def test_an_unframeable_head_pins_the_connection() -> None:
    worker = _Worker(0)
    router = Router(worker)  # type: ignore[arg-type]
    router.connection_made(_Transport())
    bad = b"POST /v1/x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"
    router.data_received(bad + _post(THEIRS, b"{}"))
    assert router.pinned and worker.inner.data == bad + _post(THEIRS, b"{}") and worker.sent == []


async def test_a_connection_crosses_a_unix_socket_with_what_was_read(tmp_path: Path) -> None:
    adopted: list[tuple[int, bytes]] = []
    receiver = Handoff(tmp_path, 1, 5.0, lambda fd, pending: adopted.append((fd, pending)))
    sender = Handoff(tmp_path, 0, 0.3, lambda fd, pending: None)
    import socket

    client, server = socket.socketpair()
    pending = bytes(range(256)) * 1000  # more than one message holds
    assert not await sender.send(1, server, pending)  # nobody listens: refused after the wait
    receiver.listen()
    assert await sender.send(1, server, pending)
    for _ in range(100):
        if adopted:
            break
        await asyncio.sleep(0.01)
    [(fd, received)] = adopted
    assert received == pending
    server.close()  # the sender's descriptor: the connection lives on in the receiver's
    moved = socket.socket(fileno=fd)
    moved.sendall(b"through the new owner")
    assert client.recv(100) == b"through the new owner"
    moved.close()
    client.close()
    # now that the peer is known, a small hand-over goes at once, without a task
    client, server = socket.socketpair()
    assert sender.send_nowait(1, server, b"GET / HTTP/1.1\r\n\r\n")
    for _ in range(100):
        if len(adopted) == 2:
            break
        await asyncio.sleep(0.01)
    assert adopted[1][1] == b"GET / HTTP/1.1\r\n\r\n"
    os.close(adopted[1][0])
    server.close()
    client.close()
    sender.close()
    receiver.close()
    receiver.close()  # idempotent
