"""Control over HTTP: the admin token, the weight version, closing an episode, the training view;
the headers that name an episode; /tokenize and /detokenize passed through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from boxgym.gateway import Gateway, GatewayConfig, MockEngine, StoreConfig, UpstreamConfig, read_calls
from boxgym.gateway.mock.tokenizer import ByteTokenizer

TOKEN = "s3cret"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def guarded(engine: MockEngine, store_path: Path) -> AsyncIterator[Gateway]:
    config = GatewayConfig(upstream=UpstreamConfig(engine.url), store=StoreConfig(str(store_path)), admin_token=TOKEN)
    async with Gateway(config) as gw:
        yield gw


ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/episodes/ep/records", id="records"),
        pytest.param("GET", "/episodes/ep/training", id="training"),
        pytest.param("POST", "/episodes/ep/close", id="close"),
        pytest.param("GET", "/weight_version", id="get-weight-version"),
        pytest.param("PUT", "/weight_version", id="put-weight-version"),
    ],
)
async def test_control_routes_need_the_admin_token(guarded: Gateway, method: str, path: str) -> None:
    async with aiohttp.ClientSession() as s:
        await (await s.post(guarded.base_url_for("ep") + "/chat/completions", json=CHAT)).read()
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with s.request(method, guarded.url + path, headers=headers, json={"weight_version": "x"}) as r:
                assert r.status == 401 and (await r.json())["error"]["type"] == "unauthorized"
        async with s.request(method, guarded.url + path, headers=ADMIN, json={"weight_version": "w9"}) as r:
            assert r.status == 200, await r.text()
        # the proxy routes and the open ones need no admin token
        for open_path in ("/health", "/metrics"):
            assert (await s.get(guarded.url + open_path)).status == 200


async def test_weight_version_set_over_http_tags_the_next_records(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as s:
        await (await s.post(gateway.base_url_for("ep-w") + "/chat/completions", json=CHAT)).read()
        async with s.put(gateway.url + "/weight_version", json={"weight_version": "step-42"}) as r:
            assert r.status == 200 and (await r.json()) == {"weight_version": "step-42"}
        await (await s.post(gateway.base_url_for("ep-w") + "/chat/completions", json=CHAT)).read()
        assert (await (await s.get(gateway.url + "/weight_version")).json()) == {"weight_version": "step-42"}
        async with s.put(gateway.url + "/weight_version", json={"weight_version": 42}) as r:
            assert r.status == 400
    assert [r.weight_version for r in gateway.records("ep-w")] == [None, "step-42"]


async def test_a_closed_episode_is_marked_in_the_store_and_refuses_calls(gateway: Gateway, store_path: Path) -> None:
    async with aiohttp.ClientSession() as s:
        url = gateway.base_url_for("ep-c") + "/chat/completions"
        await (await s.post(url, json=CHAT)).read()
        async with s.post(gateway.url + "/episodes/ep-c/close") as r:
            assert r.status == 200 and (await r.json())["closed"] is True
        assert gateway.state.store.episode_ids() == []  # dropped from memory
        async with s.post(url, json=CHAT) as r:
            assert r.status == 409 and (await r.json())["error"]["type"] == "episode_closed"
        async with s.get(gateway.url + "/episodes/ep-c/records") as r:
            body = await r.json()
    assert body["closed"] is True and [d["status"] for d in body["records"]] == [200, 409]
    assert b'"kind":"episode_closed"' in store_path.read_bytes()
    assert [r.status for r in read_calls(store_path, "ep-c")] == [200, 409]


async def test_training_view_over_http(gateway: Gateway, engine: MockEngine) -> None:
    from boxgym.gateway import LossRule, Reply, view_to_json

    engine.script("ep-t", [Reply.say("All done.  "), Reply.say("Bye.")])
    async with aiohttp.ClientSession() as s:
        url = gateway.base_url_for("ep-t") + "/chat/completions"
        first = await (await s.post(url, json=CHAT)).json()
        stripped = {"role": "assistant", "content": first["choices"][0]["message"]["content"].strip()}
        follow = [*CHAT["messages"], stripped, {"role": "user", "content": "ok"}]
        await (await s.post(url, json={"messages": follow})).read()
        once = await (await s.get(gateway.url + "/episodes/ep-t/training")).json()
        per_branch = await (await s.get(gateway.url + "/episodes/ep-t/training?loss_rule=per_branch")).json()
        bad = await s.get(gateway.url + "/episodes/ep-t/training?loss_rule=twice")
        unknown = await s.get(gateway.url + "/episodes/nobody/training")
    import json

    assert once == json.loads(json.dumps(view_to_json(gateway.training_view("ep-t"))))
    assert [s["start"] for s in once["sequences"]] == ["ROOT", "REALIGN"] and once["loss_rule"] == "once"
    records = gateway.records("ep-t")
    sampled = sum(len(r.completion_token_ids) for r in records)
    assert sum(sum(s["loss_mask"]) for s in once["sequences"]) == sampled
    assert sum(sum(s["loss_mask"]) for s in per_branch["sequences"]) > sampled
    expected = view_to_json(gateway.training_view("ep-t", loss_rule=LossRule.PER_BRANCH))
    assert per_branch == json.loads(json.dumps(expected))
    assert bad.status == 400 and unknown.status == 404


async def test_the_episode_header_names_the_episode_and_must_agree_with_the_path(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as s:
        r = await s.post(gateway.url + "/v1/chat/completions", json=CHAT, headers={"X-Boxgym-Episode-Id": "ep-h"})
        assert r.status == 200
        r = await s.post(
            gateway.base_url_for("ep-p") + "/chat/completions", json=CHAT, headers={"X-Boxgym-Episode-Id": "ep-h"}
        )
        assert r.status == 400 and (await r.json())["error"]["param"] == "X-Boxgym-Episode-Id"
        r = await s.post(
            gateway.base_url_for("ep-p") + "/chat/completions", json=CHAT, headers={"X-Boxgym-Episode-Id": "ep-p"}
        )
        assert r.status == 200
    assert [r.status for r in gateway.records("ep-h")] == [200]
    assert [r.status for r in gateway.records("ep-p")] == [400, 200]
    assert gateway.records("default") == []


async def test_tokenize_and_detokenize_pass_through_unrecorded(gateway: Gateway, engine: MockEngine) -> None:
    tok = ByteTokenizer()
    async with aiohttp.ClientSession() as s:
        a = await (await s.post(gateway.url + "/tokenize", json={"model": "m", "prompt": "hi"})).json()
        b = await (await s.post(gateway.url + "/episodes/ep-tk/detokenize", json={"tokens": [104, 105]})).json()
        bad = await s.post(gateway.url + "/detokenize", json={"tokens": "x"})
        assert bad.status == 400 and (await bad.json())["error"]["type"] == "upstream_refused"
    assert a["tokens"] == tok.encode("hi") and b["prompt"] == "hi"
    assert engine.stats.last_headers["X-Boxgym-Episode-Id"] == "default"
    assert gateway.records_written == 0
