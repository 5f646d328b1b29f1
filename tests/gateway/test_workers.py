"""``boxgym gateway serve --workers 2``: every call reaches its episode's owner however it names
it and whichever worker accepted its connection; control reaches every worker; the records read
back as one store; SIGTERM drains every worker; a worker that dies comes back with its episodes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from boxgym.gateway import MockEngine, MockEngineConfig, Prefix, RecordStore, StoreConfig, read_calls, worker_of
from boxgym.gateway.mock.tokenizer import ByteTokenizer
from boxgym.gateway.parts import part_path

from .test_durable import _free_port

MESSAGES = [{"role": "user", "content": "hi"}]


class _Workers:
    """``boxgym gateway serve --workers N`` in a child process, its log in a file."""

    def __init__(self, engine_url: str, store: Path, *extra: str, workers: int = 2) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = store.parent / "serve.log"
        argv = [sys.executable, "-m", "boxgym", "gateway", "serve", "--upstream", engine_url, "--store", str(store),
                "--port", str(self.port), "--workers", str(workers), "--fsync-interval", "0", *extra]  # fmt: skip
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def ready(
        self, s: aiohttp.ClientSession, workers: int = 2, headers: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        for _ in range(600):
            assert self.proc.poll() is None, self.output()[-3000:]
            try:
                async with s.get(self.url + "/workers", headers=headers) as r:
                    if r.status == 200:
                        listed = (await r.json())["workers"]
                        if len(listed) == workers:
                            return listed
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError("the gateway did not start: " + self.output()[-3000:])

    async def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return await self.wait(timeout)

    async def wait(self, timeout: float) -> int:
        for _ in range(int(timeout / 0.05)):
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.05)
        else:
            self.proc.kill()
        return self.proc.wait(timeout=10)


def _episodes(tag: str, owner: int, n: int) -> list[str]:
    return [e for e in (f"{tag}-{i}" for i in range(500)) if worker_of(e, 2) == owner][:n]


async def _chat(s: aiohttp.ClientSession, url: str, messages: list[dict[str, Any]], **headers: str) -> dict[str, Any]:
    async with s.post(url, json={"model": "m", "messages": messages}, headers=headers) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def _turns(s: aiohttp.ClientSession, url: str, **headers: str) -> None:
    """Two turns of one episode, the second extending the first."""
    first = await _chat(s, url, MESSAGES, **headers)
    reply = first["choices"][0]["message"]
    await _chat(s, url, [*MESSAGES, {"role": "assistant", "content": reply["content"]},
                         {"role": "user", "content": "more"}], **headers)  # fmt: skip


@pytest.mark.slow
async def test_every_call_reaches_its_owner_however_it_names_its_episode(tmp_path: Path) -> None:
    store = tmp_path / "gateway.jsonl"
    async with MockEngine(MockEngineConfig()) as engine:
        served = _Workers(engine.url, store)
        try:
            # one keep-alive connection for everything: it moves between the workers
            one = aiohttp.TCPConnector(limit=1)
            async with aiohttp.ClientSession() as s, aiohttp.ClientSession(connector=one) as shared:
                await served.ready(s)
                named: dict[str, tuple[str, dict[str, str]]] = {}
                for owner in (0, 1):
                    by_path, by_header, by_bearer = _episodes(f"w{owner}", owner, 3)
                    named[by_path] = (f"/episodes/{by_path}/v1/chat/completions", {})
                    named[by_header] = ("/v1/chat/completions", {"X-Boxgym-Episode-Id": by_header})
                    named[by_bearer] = ("/v1/chat/completions", {"Authorization": f"Bearer {by_bearer}"})
                for episode, (path, headers) in named.items():
                    await _turns(shared, served.url + path, **headers)

                # pipelined on one connection, one call for each worker, the second one chunked
                (a,), (b,) = _episodes("pipe", 0, 1), _episodes("pipe", 1, 1)
                body = json.dumps({"messages": MESSAGES}).encode()
                head = "POST /episodes/{}/v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
                reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
                writer.write(head.format(a).encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body
                             + head.format(b).encode() + b"Transfer-Encoding: chunked\r\n\r\n" + chunked)  # fmt: skip
                ids = []
                for _ in range(2):
                    status = await reader.readline()
                    assert status.startswith(b"HTTP/1.1 200"), status
                    length = 0
                    while (line := await reader.readline()) != b"\r\n":
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    ids.append(json.loads(await reader.readexactly(length))["id"])
                writer.close()
                named[a], named[b] = ("", {}), ("", {})

                # control: the weight version reaches both workers before the answer
                async with s.put(served.url + "/weight_version", json={"weight_version": "step-7"}) as r:
                    assert r.status == 200
                tagged = {owner: _episodes("tagged", owner, 1)[0] for owner in (0, 1)}
                for episode in tagged.values():
                    await _chat(s, f"{served.url}/episodes/{episode}/v1/chat/completions", MESSAGES)
                    named[episode] = ("", {})

                # reads answer for any episode, whichever worker the request reached
                for episode in named:
                    async with s.get(f"{served.url}/episodes/{episode}/records") as r:
                        assert r.status == 200, episode
                        assert all(rec["episode_id"] == episode for rec in (await r.json())["records"])
                async with s.get(served.url + "/metrics") as r:
                    metrics = await r.text()
                async with s.get(served.url + "/workers") as r:
                    workers = (await r.json())["workers"]
        finally:
            assert await served.stop() == 0, served.output()[-3000:]
    total = 2 * 6 + 2 + 2
    assert 'boxgym_gateway_requests_total{endpoint="chat.completions",status="200",stream="false"} 16' in metrics
    assert sorted(w["index"] for w in workers) == [0, 1] and sum(w["records_written"] for w in workers) == total

    # each episode's records are in its owner's part alone, and the store reads back as one
    for owner in (0, 1):
        held = {r.episode_id for r in read_calls(part_path(store, owner, 2))}
        assert held == {e for e in named if worker_of(e, 2) == owner}
    records = list(read_calls(store))
    assert len(records) == total and {r.episode_id for r in records} == set(named)
    for episode, (path, _) in named.items():
        calls = list(read_calls(store, episode))
        if path:  # two turns: the second extends the first, as checked by its owner
            assert [c.prefix.kind for c in calls] == [Prefix.ROOT, Prefix.CLEAN]
            assert calls[1].prefix.parent_call_id == calls[0].call_id
    assert sorted(r.call_id for r in records if r.episode_id in (a, b)) == sorted(ids)
    assert [r.weight_version for e in tagged.values() for r in read_calls(store, e)] == ["step-7", "step-7"]


@pytest.mark.slow
async def test_sigterm_drains_every_worker(tmp_path: Path) -> None:
    store = tmp_path / "gateway.jsonl"
    async with MockEngine(MockEngineConfig(token_delay=0.02, reply_tokens=40)) as slow:
        served = _Workers(slow.url, store, "--shutdown-grace", "5")
        async with aiohttp.ClientSession() as s:
            await served.ready(s)
            streams = []
            for owner in (0, 1):
                (episode,) = _episodes("drain", owner, 1)
                url = f"{served.url}/episodes/{episode}/v1/chat/completions"
                r = await s.post(url, json={"messages": MESSAGES, "stream": True})
                await r.content.readline()  # the stream has begun: the call is in flight
                streams.append(r)
            served.proc.send_signal(signal.SIGTERM)
            for r in streams:
                assert (await r.read()).decode().rstrip().endswith("data: [DONE]")  # it finished
        assert await served.stop() == 0
    records = list(read_calls(store))
    assert len(records) == 2 and all(r.status == 200 and r.delivered for r in records)
    assert {worker_of(r.episode_id, 2) for r in records} == {0, 1}


@pytest.mark.slow
async def test_the_episode_routes_answer_from_the_owner_behind_the_admin_token(tmp_path: Path) -> None:
    """The Responses API, the training view, closing an episode and /tokenize, on one connection
    that moves between the workers: each episode's state is its owner's."""
    store = tmp_path / "gateway.jsonl"
    admin = {"Authorization": "Bearer s3cret"}
    async with MockEngine(MockEngineConfig()) as engine:
        served = _Workers(engine.url, store, "--admin-token", "s3cret")
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as s:
                await served.ready(s, headers=admin)
                episodes = [e for owner in (0, 1) for e in _episodes("resp", owner, 1)]
                for episode in episodes:
                    base = f"{served.url}/episodes/{episode}"
                    async with s.post(base + "/v1/responses", json={"model": "m", "input": "hi"}) as r:
                        assert r.status == 200, await r.text()
                        assert (await r.json())["object"] == "response"
                    assert (await s.get(base + "/training")).status == 401
                    async with s.get(base + "/training", headers=admin) as r:
                        assert r.status == 200 and [q["start"] for q in (await r.json())["sequences"]] == ["ROOT"]
                    async with s.post(base + "/close", headers=admin) as r:
                        assert r.status == 200 and (await r.json())["closed"] is True
                    async with s.post(base + "/v1/chat/completions", json={"messages": MESSAGES}) as r:
                        assert r.status == 409 and (await r.json())["error"]["type"] == "episode_closed"
                async with s.post(served.url + "/tokenize", json={"model": "m", "prompt": "hi"}) as r:
                    assert (await r.json())["tokens"] == ByteTokenizer().encode("hi")
        finally:
            assert await served.stop() == 0, served.output()[-3000:]
    for episode in episodes:
        assert [(c.endpoint, c.status) for c in read_calls(store, episode)] == [
            ("responses", 200), ("chat.completions", 409)
        ]
        owner = part_path(store, worker_of(episode, 2), 2).read_bytes()
        assert owner.count(b'"kind":"episode_closed"') == 1 and episode.encode() in owner


async def _dead(pid: int) -> None:
    for _ in range(200):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state in ("Z", "X"):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"process {pid} did not die")


@pytest.mark.slow
async def test_a_worker_that_dies_comes_back_with_its_episodes(tmp_path: Path) -> None:
    store = tmp_path / "gateway.jsonl"
    async with MockEngine(MockEngineConfig()) as engine:
        served = _Workers(engine.url, store)
        try:
            async with aiohttp.ClientSession() as s:
                workers = await served.ready(s)
                (episode,) = _episodes("phoenix", 1, 1)
                url = f"{served.url}/episodes/{episode}/v1/chat/completions"
                first = await _chat(s, url, MESSAGES)
                os.kill(workers[1]["pid"], signal.SIGKILL)  # its connections die with it
                await _dead(workers[1]["pid"])  # (a connection queued to a worker as it dies is lost)
            follow = [*MESSAGES, {"role": "assistant", "content": first["choices"][0]["message"]["content"]},
                      {"role": "user", "content": "go on"}]  # fmt: skip
            async with aiohttp.ClientSession() as s:  # a new connection: worker 0 takes it, and waits
                second = await _chat(s, url, follow)
                retried = await _chat(s, url, follow, **{"X-Stainless-Retry-Count": "1"})
                back = await served.ready(s)
        finally:
            assert await served.stop() == 0, served.output()[-3000:]
    assert back[1]["pid"] != workers[1]["pid"] and back[0]["pid"] == workers[0]["pid"]
    assert "gateway worker 1" in served.output() and "starting it again" in served.output()
    calls = list(read_calls(store, episode))
    assert [c.call_id for c in calls] == [first["id"], second["id"], calls[2].call_id]
    # the prefix state came back from the worker's part: the second call extends the first
    assert calls[1].prefix.kind is Prefix.CLEAN and calls[1].prefix.parent_call_id == first["id"]
    assert retried["id"] == second["id"] and calls[2].replay_of == second["id"]  # an SDK retry, deduplicated


def test_an_embedded_gateway_is_one_process() -> None:
    from boxgym.gateway import Gateway, GatewayConfig, ServerConfig, UpstreamConfig

    with pytest.raises(ValueError, match="one process"):
        Gateway(GatewayConfig(upstream=UpstreamConfig("http://127.0.0.1:1"), server=ServerConfig(workers=2)))


async def test_a_store_of_another_count_of_workers_is_refused(engine: MockEngine, tmp_path: Path) -> None:
    store = tmp_path / "gateway.jsonl"
    part_path(store, 0, 3).write_text("")
    served = _Workers(engine.url, store)
    assert await served.wait(timeout=30) == 1
    assert "written by 3 workers: serve it with --workers 3" in served.output()


@pytest.mark.slow
async def test_a_worker_that_cannot_start_stops_the_gateway(engine: MockEngine, tmp_path: Path) -> None:
    store = tmp_path / "gateway.jsonl"
    other = await RecordStore.open(StoreConfig(str(part_path(store, 1, 2))))  # another gateway holds it
    try:
        served = _Workers(engine.url, store)
        assert await served.wait(timeout=60) == 1
    finally:
        await other.aclose()
    assert "worker 1 could not start" in served.output() and "in use by another gateway" in served.output()
