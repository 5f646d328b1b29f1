"""SDK retries are answered from the record; a client that leaves cancels the engine's request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from boxgym.gateway import Gateway, GatewayConfig, MockEngine, MockEngineConfig, StoreConfig, UpstreamConfig

BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


@pytest.mark.parametrize("stream", [pytest.param(False, id="plain"), pytest.param(True, id="stream")])
async def test_retry_of_an_answered_call_is_served_from_the_record(
    gateway: Gateway, engine: MockEngine, stream: bool
) -> None:
    url = gateway.base_url_for("ep-retry") + "/chat/completions"
    body = BODY | {"stream": stream}
    async with aiohttp.ClientSession() as s:
        async with s.post(url, json=body, headers={"X-Stainless-Retry-Count": "0"}) as r:
            first = await r.text()
        sent = engine.stats.requests
        async with s.post(url, json=body, headers={"X-Stainless-Retry-Count": "1"}) as r:
            assert r.status == 200
            again = await r.text()
        async with s.post(url, json=body) as r:  # not a retry: asks the engine again
            assert r.status == 200
    assert engine.stats.requests == sent + 1
    original, replay, fresh = gateway.records("ep-retry")
    assert replay.replay_of == original.call_id and fresh.replay_of is None
    assert replay.completion_token_ids == original.completion_token_ids
    if stream:
        assert again.endswith("data: [DONE]\n\n") and original.response["choices"][0]["message"]["content"] in again
    else:
        assert again == first


async def test_retry_of_a_different_request_goes_upstream(gateway: Gateway, engine: MockEngine) -> None:
    url = gateway.base_url_for("ep-retry2") + "/chat/completions"
    async with aiohttp.ClientSession() as s:
        await (await s.post(url, json=BODY)).read()
        sent = engine.stats.requests
        other = BODY | {"messages": [{"role": "user", "content": "bye"}]}
        r = await s.post(url, json=other, headers={"X-Stainless-Retry-Count": "1"})
        assert r.status == 200
    assert engine.stats.requests == sent + 1
    records = gateway.records("ep-retry2")
    assert len(records) == 2 and all(rec.replay_of is None for rec in records)


async def _wait(cond, timeout: float = 2.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


@pytest.mark.parametrize("stream", [pytest.param(False, id="plain"), pytest.param(True, id="stream")])
async def test_client_disconnect_cancels_upstream_and_marks_the_turn(tmp_path: Path, stream: bool) -> None:
    async with MockEngine(MockEngineConfig(token_delay=0.02, reply_tokens=40)) as slow:
        config = GatewayConfig(upstream=UpstreamConfig(slow.url), store=StoreConfig(str(tmp_path / "g.jsonl")))
        async with Gateway(config) as gw:
            url = gw.base_url_for("ep-gone") + "/chat/completions"
            async with aiohttp.ClientSession() as s:
                if stream:
                    r = await s.post(url, json=BODY | {"stream": True})
                    await r.content.readline()  # the stream has begun
                    r.close()  # and the client goes away
                else:
                    with pytest.raises(asyncio.TimeoutError):
                        await s.post(url, json=BODY, timeout=aiohttp.ClientTimeout(total=0.2))
            await _wait(lambda: bool(gw.records("ep-gone")) and slow.stats.cancelled == 1)
            [rec] = gw.records("ep-gone")
            assert rec.delivered is False and rec.error.type == "client_disconnected"
            # its retry is not answered from a record the client never got
            async with aiohttp.ClientSession() as s:
                r = await s.post(url, json=BODY | {"stream": stream}, headers={"X-Stainless-Retry-Count": "1"})
                assert r.status == 200
                await r.read()
            assert gw.records("ep-gone")[-1].replay_of is None and slow.stats.requests == 2
