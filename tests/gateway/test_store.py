"""The record store: round trip, torn lines, schema versions, and a gateway killed mid-flight."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from boxgym.errors import GatewayStoreError
from boxgym.gateway import (
    SCHEMA_VERSION,
    CallError,
    MockEngine,
    Prefix,
    PrefixCheck,
    RecordStore,
    StoreConfig,
    read_calls,
    record_from_json,
    record_to_json,
)

from .test_consistency import rec


async def test_round_trip_and_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    store = RecordStore(StoreConfig(str(path)))
    a = rec(
        "a", [1, 2], [3, 4], logprobs=(-0.5, -0.25), prefix=PrefixCheck(Prefix.FORK, "z", 1), request={"messages": []}
    )
    b = rec("b", [1], [2], error=CallError(502, "upstream_error", "down", "upstream"), status=502)
    store.append(a)
    store.append(b)
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(GatewayStoreError):
        store.append(a)
    with open(path, "ab") as fh:
        fh.write(b'{"schema": 1, "episode_id": "e", "call_')  # a crash mid-write
    assert list(read_calls(path)) == [a, b]
    assert [json.loads(line)["schema"] for line in path.read_text().splitlines()[:2]] == [SCHEMA_VERSION] * 2


def test_newer_schema_is_refused() -> None:
    d = record_to_json(rec("a", [1], [2]))
    assert record_from_json(d) == rec("a", [1], [2])
    with pytest.raises(ValueError, match="newer"):
        record_from_json(d | {"schema": SCHEMA_VERSION + 1})


async def test_forgotten_episode_is_read_back_from_the_file(tmp_path: Path) -> None:
    store = RecordStore(StoreConfig(str(tmp_path / "s.jsonl"), fsync_interval=None))
    store.append(rec("a", [1], [2]))
    store.forget("e")
    assert store.episode("e") == []
    assert [r.call_id for r in await store.load_episode("e")] == ["a"]
    await store.aclose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_record_survives_the_gateway_being_killed_right_after_answering(
    engine: MockEngine, tmp_path: Path
) -> None:
    store, port = tmp_path / "crash.jsonl", _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "boxgym",
            "gateway",
            "serve",
            "--upstream",
            engine.url,
            "--store",
            str(store),
            "--port",
            str(port),
            "--fsync-interval",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as s:
            for _ in range(200):
                try:
                    async with s.get(url + "/health") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            async with s.post(
                url + "/episodes/ep-k/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}
            ) as r:
                assert r.status == 200
                answer = await r.json()
        os.kill(proc.pid, signal.SIGKILL)  # no cleanup, no flush, no fsync
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    [record] = list(read_calls(store))
    assert record.episode_id == "ep-k" and record.response["choices"][0]["message"] == answer["choices"][0]["message"]
    assert record.completion_token_ids and len(record.logprobs) == len(record.completion_token_ids)


async def test_a_call_whose_record_cannot_be_written_is_not_answered(gateway, engine) -> None:
    store = gateway.state.store
    os.close(store._fd)  # the file is gone from under the store (a full disk behaves alike)
    store._fd = os.open(os.devnull, os.O_RDONLY)
    async with aiohttp.ClientSession() as s:
        r = await s.post(gateway.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        body = await r.json()
    assert r.status == 500 and body["error"]["type"] == "record_store_error"
    assert "choices" not in body


async def test_least_recently_written_episodes_leave_memory_not_the_file(tmp_path: Path) -> None:
    store = RecordStore(StoreConfig(str(tmp_path / "s.jsonl"), fsync_interval=None, max_episodes_in_memory=2))
    for episode in ("a", "b", "a", "c"):  # "b" is the least recently written when "c" arrives
        store.append(replace(rec(f"{episode}-call", [1], [2], request_hash=f"h-{episode}"), episode_id=episode))
    assert sorted(store.episode_ids()) == ["a", "c"]
    assert store.answered("b", "h-b") is None and store.answered("a", "h-a") is not None
    assert [r.episode_id for r in await store.load_episode("b")] == ["b"]
    await store.aclose()


@pytest.mark.parametrize("fast", [pytest.param(True, id="orjson"), pytest.param(False, id="stdlib")])
async def test_json_paths_agree(monkeypatch: pytest.MonkeyPatch, gateway, store_path: Path, fast: bool) -> None:
    from boxgym.gateway import _json

    if fast and _json.orjson is None:
        pytest.skip("orjson is not installed (the gateway extra brings it)")
    if not fast:
        monkeypatch.setattr(_json, "orjson", None)
    async with aiohttp.ClientSession() as s:
        r = await s.post(
            gateway.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "héllo ✓"}]}
        )
        body = await r.json()
    assert r.status == 200 and body["choices"][0]["message"]["content"]
    [record] = list(read_calls(store_path))
    assert record.request["messages"][0]["content"] == "héllo ✓"
    assert record.response == body


async def test_fsync_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import threading

    from boxgym.gateway import store as store_module

    threads: list[str] = []
    monkeypatch.setattr(store_module.os, "fsync", lambda fd: threads.append(threading.current_thread().name))
    store = RecordStore(StoreConfig(str(tmp_path / "s.jsonl"), fsync_interval=0.01))
    task = asyncio.create_task(store.run_fsync())
    store.append(rec("a", [1], [2]))
    for _ in range(100):
        if threads:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    store.append(rec("b", [1], [2]))
    await store.aclose()  # the last fsync, also in a thread
    assert len(threads) == 2 and threading.main_thread().name not in threads


async def test_concurrent_calls_of_one_episode_are_all_recorded(gateway) -> None:
    async with aiohttp.ClientSession() as s:

        async def call(i: int) -> int:
            body = {"messages": [{"role": "user", "content": f"q{i}"}], "stream": i % 2 == 0}
            async with s.post(gateway.base_url_for("ep-many") + "/chat/completions", json=body) as r:
                await r.read()
                return r.status

        assert await asyncio.gather(*(call(i) for i in range(24))) == [200] * 24
    records = gateway.records("ep-many")
    assert len(records) == len({r.call_id for r in records}) == 24
    assert sorted(r.request["messages"][0]["content"] for r in records) == sorted(f"q{i}" for i in range(24))
    assert all(len(r.logprobs) == len(r.completion_token_ids) > 0 for r in records)
