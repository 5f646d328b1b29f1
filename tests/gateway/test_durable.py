"""Episodes survive a kill -9 and an eviction: history, retries and reads come back from the
store's index; the store's lines stay linear and rebuild every record exactly."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from boxgym.gateway import (
    Gateway,
    GatewayConfig,
    MockEngine,
    Prefix,
    RecordStore,
    StoreConfig,
    UpstreamConfig,
    read_calls,
    training_view,
)
from boxgym.gateway import store as store_module
from boxgym.gateway.lines import encode_call

from .conftest import TOOLS
from .test_consistency import rec

OTHERS = 100_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fill(path: Path, n: int) -> None:
    """``n`` records of 1,000 other episodes, written as the store writes them."""
    template = rec("o", [1, 2, 3], [4, 5])
    lines = [encode_call(replace(template, call_id=f"o{i}", episode_id=f"other-{i % 1000}"), None) for i in range(n)]
    path.write_bytes(b"".join(lines))


class _Served:
    """``boxgym gateway serve`` in a child process."""

    def __init__(self, engine_url: str, store: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "boxgym", "gateway", "serve", "--upstream", engine_url, "--store", str(store)]
        self.proc = subprocess.Popen(
            [*argv, "--port", str(self.port), "--fsync-interval", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    async def ready(self, s: aiohttp.ClientSession) -> None:
        for _ in range(600):
            if self.proc.poll() is not None:
                stderr = self.proc.stderr.read().decode()  # type: ignore[union-attr]
                raise AssertionError(f"the gateway exited: {stderr[-2000:]}")
            try:
                async with s.get(self.url + "/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        raise AssertionError("the gateway did not start")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)  # no cleanup, no flush, no fsync
        self.proc.wait(timeout=10)
        self.proc.stderr.close()  # type: ignore[union-attr]


async def _turn(s: aiohttp.ClientSession, url: str, messages: list[dict], retry: int = 0) -> dict[str, Any]:
    headers = {"X-Stainless-Retry-Count": str(retry)}
    async with s.post(url, json={"model": "m", "messages": messages, "tools": TOOLS}, headers=headers) as r:
        assert r.status == 200, await r.text()
        return await r.json()


def _extend(messages: list[dict], answer: dict[str, Any], output: str) -> list[dict]:
    msg = answer["choices"][0]["message"]
    out = [*messages, {k: v for k, v in msg.items() if k in ("role", "content", "tool_calls")}]
    for call in msg.get("tool_calls") or ():
        out.append({"role": "tool", "tool_call_id": call["id"], "content": output})
    return out


@pytest.mark.slow
async def test_an_episode_goes_on_after_kill_9_on_a_store_of_100k_other_records(
    engine: MockEngine, tmp_path: Path
) -> None:
    store = tmp_path / "gateway.jsonl"
    _fill(store, OTHERS)
    first = _Served(engine.url, store)
    messages: list[dict] = [{"role": "user", "content": "look around"}]
    try:
        async with aiohttp.ClientSession() as s:
            await first.ready(s)
            url = first.url + "/episodes/ep-d/v1/chat/completions"
            for i in range(3):
                answer = await _turn(s, url, messages)
                if i < 2:
                    messages = _extend(messages, answer, f"output {i}")
    finally:
        first.kill()
    sent = engine.stats.requests
    second = _Served(engine.url, store)
    try:
        async with aiohttp.ClientSession() as s:
            await second.ready(s)
            url = second.url + "/episodes/ep-d/v1/chat/completions"
            again = await _turn(s, url, messages, retry=1)  # the SDK retries the call answered before the kill
            assert again == answer and engine.stats.requests == sent  # from the record, not the engine
            await _turn(s, url, _extend(messages, answer, "output 2"))
            async with s.get(second.url + "/episodes/ep-d/records") as r:
                listed = (await r.json())["records"]
    finally:
        second.kill()
    records = [r for r in read_calls(store) if r.episode_id == "ep-d"]
    assert [r["call_id"] for r in listed] == [r.call_id for r in records] and len(records) == 5
    c1, c2, c3, replay, c4 = records
    assert replay.replay_of == c3.call_id and again["id"] == c3.call_id
    assert [r.prefix.kind for r in (c1, c2, c3, c4)] == [Prefix.ROOT, Prefix.CLEAN, Prefix.CLEAN, Prefix.CLEAN]
    assert c4.prefix.parent_call_id == c3.call_id  # the history came back after the restart
    view = training_view(records)
    [sequence] = view.sequences  # one branch, not two ROOTs
    assert sequence.call_ids == (c1.call_id, c2.call_id, c3.call_id, c4.call_id)
    assert [c for c, _ in view.skipped] == [replay.call_id]


async def test_reloading_an_episode_reads_its_lines_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.jsonl"
    _fill(path, 5000)
    with open(path, "ab") as fh:
        a = replace(rec("a", [1, 2], [3, 4], request_hash="h-a"), episode_id="ep")
        b = replace(rec("b", [1, 2, 3, 4, 5], [6], request_hash="h-b"), episode_id="ep")
        fh.write(encode_call(a, None) + encode_call(b, a))
    store = await RecordStore.open(StoreConfig(str(path), fsync_interval=None))
    reads: list[int] = []
    real = store_module.os.pread
    monkeypatch.setattr(store_module.os, "pread", lambda fd, n, off: reads.append(n) or real(fd, n, off))
    assert store.needs_load("ep") and store.episode("ep") == []
    await asyncio.gather(store.load("ep"), store.load("ep"))  # concurrent loads share one read
    assert len(reads) == 2 and sum(reads) == len(encode_call(a, None) + encode_call(b, a))
    assert [r.call_id for r in store.episode("ep")] == ["a", "b"] and store.answered("ep", "h-b") is not None
    await store.aclose()


async def test_an_evicted_episode_comes_back_whole(engine: MockEngine, tmp_path: Path) -> None:
    config = GatewayConfig(
        upstream=UpstreamConfig(engine.url),
        store=StoreConfig(str(tmp_path / "g.jsonl"), fsync_interval=None, max_episodes_in_memory=2),
    )
    async with Gateway(config) as gw, aiohttp.ClientSession() as s:
        url = gw.base_url_for("ep-a") + "/chat/completions"
        messages: list[dict] = [{"role": "user", "content": "go"}]
        answer = await _turn(s, url, messages)
        messages = _extend(messages, answer, "out")
        second = await _turn(s, url, messages)
        for other in ("ep-b", "ep-c"):  # ep-a is the least recently written: it leaves memory
            await _turn(s, gw.base_url_for(other) + "/chat/completions", [{"role": "user", "content": other}])
        assert "ep-a" not in gw.state.store.episode_ids() and gw.records("ep-a") == []
        sent = engine.stats.requests
        assert await _turn(s, url, messages, retry=2) == second and engine.stats.requests == sent
        await _turn(s, url, _extend(messages, second, "more"))
        records = gw.records("ep-a")
    assert len(records) == 4 and records[2].replay_of == records[1].call_id
    assert (records[3].prefix.kind, records[3].parent_call_id) == (Prefix.CLEAN, records[1].call_id)


async def test_store_lines_are_linear_and_rebuild_every_record(gateway: Gateway, store_path: Path) -> None:
    messages: list[dict] = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "work"}]
    sizes = []
    async with aiohttp.ClientSession() as s:
        url = gateway.base_url_for("ep-lin") + "/chat/completions"
        for turn in range(12):
            answer = await _turn(s, url, messages)
            messages = _extend(messages, answer, f"result {turn} " + "x" * 200)
            sizes.append(store_path.stat().st_size)
        # an edited history (a fork) and a retry are rebuilt too
        await _turn(s, url, [dict(messages[0], content="be briefer"), *messages[1:]])
        await _turn(s, url, messages, retry=1)
    growth = [b - a for a, b in zip(sizes, sizes[1:])]
    assert max(growth) < 2.5 * min(growth)  # each turn adds about the same: no prompt written twice
    assert list(read_calls(store_path)) == gateway.records("ep-lin")
    assert list(read_calls(store_path, "ep-lin")) == gateway.records("ep-lin")


async def test_a_torn_last_line_is_cut_off_when_the_store_opens(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    whole = encode_call(rec("a", [1], [2]), None)
    path.write_bytes(whole + b'{"episode_id":"e","schema":2,"call_')  # the machine died mid-write
    store = await RecordStore.open(StoreConfig(str(path), fsync_interval=None))
    store.append(rec("b", [1], [2]))
    await store.aclose()
    assert [r.call_id for r in read_calls(path)] == ["a", "b"]


async def test_one_store_file_has_one_gateway(tmp_path: Path) -> None:
    from boxgym.errors import GatewayStoreError

    first = await RecordStore.open(StoreConfig(str(tmp_path / "s.jsonl")))
    with pytest.raises(GatewayStoreError, match="in use by another gateway"):
        await RecordStore.open(StoreConfig(str(tmp_path / "s.jsonl")))
    await first.aclose()
    await (await RecordStore.open(StoreConfig(str(tmp_path / "s.jsonl")))).aclose()


async def test_an_existing_file_must_be_indexed_before_records_are_added(tmp_path: Path) -> None:
    from boxgym.errors import GatewayStoreError

    path = tmp_path / "s.jsonl"
    path.write_bytes(encode_call(rec("a", [1], [2]), None))
    store = RecordStore(StoreConfig(str(path), fsync_interval=None))
    with pytest.raises(GatewayStoreError, match="not indexed"):
        store.append(rec("b", [1], [2]))
    await store.build_index()
    store.append(rec("b", [1], [2]))
    assert store.needs_load("e") and [r.call_id for r in await store.load_episode("e")] == ["a", "b"]
    await store.aclose()
