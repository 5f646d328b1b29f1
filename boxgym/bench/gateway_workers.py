"""workers_scaling: the gateway's throughput with 2 worker processes against 1, in one run.

On a 2-core machine the clients and the engine share the cores with the gateway, so both must
cost far less than the gateway's ~0.33 ms of CPU per call, or they, not the gateway, set the
pace (the aiohttp client and the scripted engine of the other measurements cost ~0.1 ms each).
So here:

* the engine is canned: a raw asyncio server answering every call with one answer the scripted
  engine gave to the gateway's request (token ids and logprobs included), so the gateway does
  all of its usual work, parsing and recording included, for an engine that costs ~20 µs;
* the clients are raw asyncio connections sending pre-encoded requests, one connection per
  episode (an agent's client keeps one connection), ``--concurrency`` of them.

Both gateways (``--workers 1`` and ``--workers 2``) run side by side, each with its own store,
and are measured in alternating rounds, so that a neighbour's load hits both alike. Reported:
the median throughput of each, their ratio (``workers_scaling``), and each one's CPU per call
(its whole process tree's user+system time over its calls).

Why a hand-over and not a hop: ``handoff_cpu_ms_per_req`` is the 2-worker gateway's CPU per
call when every call of a connection names an episode of the other worker than the call before
(each call is handed over: the worst case), and ``hop_cpu_ms_per_req`` the CPU per call of a
minimal aiohttp forwarder in front of the 1-worker gateway (what a worker would spend passing a
call on to its owner, on top of the owner's own work).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from .procs import Child, cpu_seconds, free_port

__all__ = ["workers_scaling", "canned_answer"]


def _http_response(body: bytes, content_type: bytes = b"application/json") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (content_type, len(body), body)


def _content_length(head: bytes) -> int:
    k = head.lower().find(b"\r\ncontent-length:")
    if k < 0:
        return 0
    end = head.find(b"\r\n", k + 2)
    return int(head[k + 17 : end if end > 0 else len(head)])


class _Canned(asyncio.Protocol):
    """The canned engine's side of one connection: every request (keep-alive, Content-Length
    framed, as the gateway sends them) gets the same answer; ``/health`` gets ``ok``."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        while (j := buf.find(b"\r\n\r\n")) >= 0:
            head = buf[:j]
            size = _content_length(head)
            end = j + 4 + size
            if len(buf) < end:
                break
            assert self.transport is not None
            self.transport.write(_HEALTH if head.startswith(b"GET /health") else self.answer)
            buf = buf[end:]
        self.buf = buf


_HEALTH = _http_response(b"ok", b"text/plain")


async def _serve_canned(port: int, answer_file: str) -> None:
    answer = _http_response(Path(answer_file).read_bytes())
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Canned(answer), "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


async def _serve_forwarder(port: int, to: str) -> None:
    """A minimal HTTP hop: what a worker would spend forwarding a call to its owner (a lower
    bound: a real one would also stream, and pass the headers on)."""
    import aiohttp
    from aiohttp import web

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {"Content-Type": request.content_type}
        async with session.request(request.method, to + request.path_qs, data=body, headers=headers) as r:
            return web.Response(body=await r.read(), status=r.status, content_type=r.content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        await asyncio.Event().wait()


async def canned_answer(body: dict[str, Any]) -> bytes:
    """What the scripted engine answers to ``body`` as the gateway sends it (vLLM: token ids, logprobs)."""
    import aiohttp

    from boxgym.gateway import MockEngine, MockEngineConfig

    asked = body | {"return_token_ids": True, "logprobs": True}
    async with MockEngine(MockEngineConfig(reply_tokens=24)) as engine, aiohttp.ClientSession() as session:
        async with session.post(engine.url + "/v1/chat/completions", json=asked) as r:
            assert r.status == 200, await r.text()
            return await r.read()


class _Budget:
    def __init__(self, n: int) -> None:
        self.left = n
        self.busy = 0
        self.failures = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class _Client(asyncio.Protocol):
    """One keep-alive connection: sends its requests in turn, one at a time, while the budget lasts."""

    def __init__(self, requests: list[bytes]) -> None:
        self.requests = requests
        self.sent = 0
        self.buf = b""
        self.need = -1  # bytes of the answer being read; -1: its head is not complete yet
        self.budget: _Budget | None = None
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def run(self, budget: _Budget) -> None:
        self.budget = budget
        budget.busy += 1
        self._next()

    def _next(self) -> None:
        budget = self.budget
        assert budget is not None and self.transport is not None
        if budget.left <= 0:
            budget.busy -= 1
            if not budget.busy and not budget.done.done():
                budget.done.set_result(None)
            return
        budget.left -= 1
        self.transport.write(self.requests[self.sent % len(self.requests)])
        self.sent += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.need < 0:
                j = self.buf.find(b"\r\n\r\n")
                if j < 0:
                    return
                head = self.buf[:j]
                if not head.startswith(b"HTTP/1.1 200"):
                    assert self.budget is not None
                    self.budget.failures += 1
                self.need = j + 4 + _content_length(head)
            if len(self.buf) < self.need:
                return
            self.buf, self.need = self.buf[self.need :], -1
            self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        budget = self.budget
        if budget is not None and not budget.done.done() and self.transport is not None:
            budget.done.set_exception(ConnectionError(f"a benchmark connection closed: {exc!r}"))


def _request(episode: str, payload: bytes) -> bytes:
    return (
        f"POST /episodes/{episode}/v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


async def _connect(port: int, plans: list[list[bytes]]) -> list[_Client]:
    loop = asyncio.get_running_loop()
    clients = []
    for requests in plans:
        _, client = await loop.create_connection(lambda r=requests: _Client(r), "127.0.0.1", port)
        clients.append(client)
    return clients


async def _drive(clients: list[_Client], n: int) -> float:
    budget = _Budget(n)
    t0 = time.perf_counter()
    for c in clients:
        c.run(budget)
    await budget.done
    if budget.failures:
        raise RuntimeError(f"{budget.failures} calls failed")
    return time.perf_counter() - t0


async def workers_scaling(
    work: Path, body: dict[str, Any], *, concurrency: int, requests: int, rounds: int
) -> dict[str, Any]:
    import aiohttp

    from boxgym.gateway.parts import worker_of

    py = sys.executable
    work.mkdir(parents=True, exist_ok=True)
    answer = work / "canned.json"
    answer.write_bytes(await canned_answer(body))
    e_port = free_port()
    engine_url = f"http://127.0.0.1:{e_port}"
    argv = [py, "-m", "boxgym.bench.gateway_workers", "--port", str(e_port), "--answer", str(answer)]
    children = [Child("canned engine", argv, engine_url + "/health", work / "canned.log")]
    gateways: dict[int, tuple[Child, int]] = {}
    payload = json.dumps(body).encode()
    hop_port = free_port()
    try:
        for n in (1, 2):
            port = free_port()
            gw_argv = [py, "-m", "boxgym", "gateway", "serve", "--upstream", engine_url, "--port", str(port),
                       "--store", str(work / f"w{n}" / "gateway.jsonl"), "--workers", str(n)]  # fmt: skip
            child = Child(f"gateway --workers {n}", gw_argv, f"http://127.0.0.1:{port}/health", work / f"w{n}.log")
            children.append(child)
            gateways[n] = (child, port)
        hop_argv = [py, "-m", "boxgym.bench.gateway_workers", "--port", str(hop_port), "--forward",
                    f"http://127.0.0.1:{gateways[1][1]}"]  # fmt: skip
        hop = Child("HTTP hop", hop_argv, f"http://127.0.0.1:{hop_port}/health", work / "hop.log")
        children.append(hop)
        async with aiohttp.ClientSession() as session:
            for child in children:
                await child.wait_ready(session, 60)
        plans = [[_request(f"agent-{i}", payload)] for i in range(concurrency)]
        clients = {n: await _connect(port, plans) for n, (_, port) in gateways.items()}
        for n in gateways:
            await _drive(clients[n], concurrency * 10)  # warm up; every connection finds its owner
        rps: dict[int, list[float]] = {1: [], 2: []}
        cpu: dict[int, float] = {1: 0.0, 2: 0.0}
        others = {"engine": 0.0, "clients": 0.0}  # what the gateway is not: it must stay small
        for _ in range(rounds):
            for n, (child, _) in gateways.items():
                c0, e0, b0 = cpu_seconds(child.proc.pid), cpu_seconds(children[0].proc.pid), time.process_time()
                elapsed = await _drive(clients[n], requests)
                others["clients"] += time.process_time() - b0
                cpu[n] += cpu_seconds(child.proc.pid) - c0
                others["engine"] += cpu_seconds(children[0].proc.pid) - e0
                rps[n].append(requests / elapsed)
        # every call handed over: each connection alternates between an episode of each worker
        owned: dict[int, list[str]] = {0: [], 1: []}
        i = 0
        while min(len(v) for v in owned.values()) < concurrency:
            owned[worker_of(f"hop-{i}", 2)].append(f"hop-{i}")
            i += 1
        hops = [[_request(owned[0][k], payload), _request(owned[1][k], payload)] for k in range(concurrency)]
        hop_clients = await _connect(gateways[2][1], hops)
        await _drive(hop_clients, concurrency * 4)
        child2 = gateways[2][0]
        c0 = cpu_seconds(child2.proc.pid)
        await _drive(hop_clients, requests)
        handoff_cpu = cpu_seconds(child2.proc.pid) - c0
        # one HTTP hop in front of the 1-worker gateway: what forwarding each call would cost
        hopping = await _connect(hop_port, [[_request(f"hop-agent-{i}", payload)] for i in range(concurrency)])
        await _drive(hopping, concurrency * 4)
        c0 = cpu_seconds(hop.proc.pid)
        await _drive(hopping, requests)
        hop_cpu = cpu_seconds(hop.proc.pid) - c0
        for c in [*clients[1], *clients[2], *hop_clients, *hopping]:
            assert c.transport is not None
            c.transport.close()
    finally:
        for child in reversed(children):
            child.stop()
    median = {n: statistics.median(v) for n, v in rps.items()}
    per_req = {n: cpu[n] * 1000 / (requests * rounds) for n in cpu}
    print(
        f"workers: 1 -> {median[1]:.0f} rps ({per_req[1]:.3f} ms CPU/req), 2 -> {median[2]:.0f} rps"
        f" ({per_req[2]:.3f} ms CPU/req): {median[2] / median[1]:.2f}x; every call handed over:"
        f" {handoff_cpu * 1000 / requests:.3f} ms CPU/req; an HTTP hop: {hop_cpu * 1000 / requests:.3f} ms CPU/req",
        file=sys.stderr,
    )
    return {
        "workers_scaling": round(median[2] / median[1], 3),
        "workers_rps": {str(n): round(v, 1) for n, v in median.items()},
        "workers_rps_rounds": {str(n): [round(x, 1) for x in v] for n, v in rps.items()},
        "workers_cpu_ms_per_req": {str(n): round(v, 4) for n, v in per_req.items()},
        "workers_engine_cpu_ms_per_req": round(others["engine"] * 1000 / (2 * requests * rounds), 4),
        "workers_clients_cpu_ms_per_req": round(others["clients"] * 1000 / (2 * requests * rounds), 4),
        "handoff_cpu_ms_per_req": round(handoff_cpu * 1000 / requests, 4),
        "hop_cpu_ms_per_req": round(hop_cpu * 1000 / requests, 4),
        "workers_requests": requests * rounds,
        "workers_concurrency": concurrency,
    }


def _main() -> None:
    parser = argparse.ArgumentParser(description="the canned engine, or the HTTP hop, of workers_scaling")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--answer", help="be the canned engine: the JSON body every call is answered with")
    parser.add_argument("--forward", metavar="URL", help="be an HTTP hop to URL")
    args = parser.parse_args()
    if args.forward:
        asyncio.run(_serve_forwarder(args.port, args.forward))
    else:
        asyncio.run(_serve_canned(args.port, args.answer))


if __name__ == "__main__":
    _main()
