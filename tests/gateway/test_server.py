"""The gateway's own server: slow clients are cut off, SIGTERM drains then exits, and a burst of
1,000 new streaming connections gets through with client retries off."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from openai import AsyncOpenAI

from boxgym.gateway import (
    Gateway,
    GatewayConfig,
    MockEngine,
    MockEngineConfig,
    ServerConfig,
    StoreConfig,
    UpstreamConfig,
    read_calls,
)

from .test_durable import _free_port

BODY = b'{"messages": [{"role": "user", "content": "hi"}]}'


async def _slow_gateway(engine: MockEngine, tmp_path: Path, **server: float) -> Gateway:
    config = GatewayConfig(
        upstream=UpstreamConfig(engine.url), store=StoreConfig(str(tmp_path / "g.jsonl")), server=ServerConfig(**server)
    )
    return Gateway(config)


async def _connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def test_a_client_that_trickles_its_headers_is_disconnected(engine: MockEngine, tmp_path: Path) -> None:
    async with await _slow_gateway(engine, tmp_path, header_timeout=0.5) as gw:
        reader, writer = await _connect(gw.url)
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        t0 = time.monotonic()
        closed = False
        for _ in range(60):  # one byte every 0.05 s: never a complete header block
            await asyncio.sleep(0.05)
            try:
                writer.write(b"a")
                await writer.drain()
            except ConnectionError:
                closed = True
                break
            if reader.at_eof() or (await _read_nowait(reader)) == b"":
                closed = True
                break
        writer.close()
        assert closed and time.monotonic() - t0 < 2.0
        assert gw.records_written == 0  # no request was ever made


async def _read_nowait(reader: asyncio.StreamReader) -> bytes | None:
    try:
        return await asyncio.wait_for(reader.read(1), 0.001)
    except TimeoutError:
        return None


async def test_a_client_that_trickles_its_body_gets_408_and_is_disconnected(
    engine: MockEngine, tmp_path: Path
) -> None:
    async with await _slow_gateway(engine, tmp_path, body_timeout=0.5) as gw:
        reader, writer = await _connect(gw.url)
        head = (
            "POST /episodes/ep-slow/v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
        )
        writer.write(head.encode() + BODY[:5])
        t0 = time.monotonic()

        async def trickle() -> None:
            for byte in BODY[5:-1]:
                await asyncio.sleep(0.1)
                writer.write(bytes([byte]))

        task = asyncio.create_task(trickle())
        answer = await asyncio.wait_for(reader.read(), 5.0)  # until the gateway closes the connection
        task.cancel()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408") and b'"type":"timeout"' in answer
        assert time.monotonic() - t0 < 2.0
        [record] = gw.records("ep-slow")
        assert record.status == 408 and record.error.origin == "client"


class _Served:
    def __init__(self, engine_url: str, store: Path, *extra: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "boxgym", "gateway", "serve", "--upstream", engine_url, "--store", str(store)]
        self.proc = subprocess.Popen([*argv, "--port", str(self.port), *extra], stderr=subprocess.PIPE)

    async def ready(self, s: aiohttp.ClientSession) -> None:
        for _ in range(600):
            assert self.proc.poll() is None, self.proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            try:
                async with s.get(self.url + "/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        raise AssertionError("the gateway did not start")

    async def wait(self, timeout: float) -> int:
        for _ in range(int(timeout / 0.05)):
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.05)
        else:
            self.proc.kill()
        code = self.proc.wait(timeout=10)
        self.proc.stderr.close()  # type: ignore[union-attr]
        return code


@pytest.mark.slow
async def test_sigterm_lets_calls_in_flight_finish_then_exits(tmp_path: Path) -> None:
    store = tmp_path / "g.jsonl"
    async with MockEngine(MockEngineConfig(token_delay=0.02, reply_tokens=40)) as slow:
        served = _Served(slow.url, store, "--shutdown-grace", "5")
        async with aiohttp.ClientSession() as s:
            await served.ready(s)
            url = served.url + "/episodes/ep-t/v1/chat/completions"
            r = await s.post(url, json={"messages": [{"role": "user", "content": "hi"}], "stream": True})
            await r.content.readline()  # the stream has begun: the call is in flight
            t0 = time.monotonic()
            served.proc.send_signal(signal.SIGTERM)
            text = (await r.read()).decode()
            assert text.rstrip().endswith("data: [DONE]")  # it finished
            assert await served.wait(10) == 0
            assert time.monotonic() - t0 < 4.0
    [record] = read_calls(store)
    assert record.status == 200 and record.completion_token_ids and record.delivered


@pytest.mark.slow
async def test_sigterm_does_not_wait_for_a_trickling_client_beyond_the_grace(
    engine: MockEngine, tmp_path: Path
) -> None:
    served = _Served(engine.url, tmp_path / "g.jsonl", "--shutdown-grace", "1")
    async with aiohttp.ClientSession() as s:
        await served.ready(s)
    reader, writer = await _connect(served.url)
    writer.write(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(BODY)}\r\n\r\n{{".encode())
    await writer.drain()
    await asyncio.sleep(0.3)  # the handler is waiting for the rest of the body
    t0 = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    code = await served.wait(10)
    writer.close()
    assert code == 0 and time.monotonic() - t0 < 4.0  # the grace (1 s), twice at most, not the body timeout


@pytest.mark.slow
async def test_a_burst_of_1000_streams_with_client_retries_off(tmp_path: Path) -> None:
    n = 1000
    async with MockEngine(MockEngineConfig(reply_tokens=8)) as engine:
        config = GatewayConfig(
            upstream=UpstreamConfig(engine.url), store=StoreConfig(str(tmp_path / "g.jsonl"), fsync_interval=None)
        )
        async with Gateway(config) as gw, AsyncOpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0) as client:

            async def one(i: int) -> int:
                stream = await client.chat.completions.create(
                    model="m",
                    messages=[{"role": "user", "content": "hi"}],
                    stream=True,
                    extra_headers={"X-Boxgym-Episode-Id": f"ep-{i}"},
                )
                return len([chunk async for chunk in stream])

            # all at once: the client's pool opens 1,000 new connections together
            results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            assert errors == [], f"{len(errors)} streams failed, e.g. {errors[0]!r}"
            assert all(r > 0 for r in results) and len(results) == n
            assert gw.records_written == n and len(gw.state.store.episode_ids()) == n


async def test_the_listen_backlog_reaches_the_socket(engine: MockEngine, tmp_path: Path) -> None:
    import shutil

    if shutil.which("ss") is None or not os.path.exists("/proc/sys/net/core/somaxconn"):
        pytest.skip("needs Linux's ss")
    cap = int(Path("/proc/sys/net/core/somaxconn").read_text())
    async with await _slow_gateway(engine, tmp_path, backlog=1000) as gw:
        port = gw.url.rsplit(":", 1)[1]
        out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    [line] = out.splitlines()
    assert int(line.split()[2]) == min(1000, cap)  # a listening socket's Send-Q is its backlog
