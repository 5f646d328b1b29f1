"""Bad input from the client and bad behaviour of the engine: an OpenAI-style error with a fitting
status, a record, and a server that keeps serving."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from boxgym.gateway import (
    GatewayConfig,
    MockEngine,
    MockEngineConfig,
    StoreConfig,
    Timeouts,
    UpstreamConfig,
    create_app,
)
from boxgym.gateway.state import STATE

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


async def _gateway_client(aiohttp_client: Any, url: str, **kw: Any) -> TestClient:
    config = GatewayConfig(upstream=UpstreamConfig(url), store=StoreConfig(None), **kw)
    return await aiohttp_client(create_app(config))


def _records(client: TestClient, episode: str = "default") -> list:
    return client.server.app[STATE].store.episode(episode)


async def _assert_error(resp: Any, status: int, type_: str | None = None) -> dict:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    err = body["error"]
    assert set(err) >= {"message", "type", "param", "code"} and err["message"]
    if type_ is not None:
        assert err["type"] == type_
    return err


async def _still_serves(client: TestClient) -> None:
    r = await client.post("/v1/chat/completions", json=CHAT)
    assert r.status == 200, await r.text()
    assert (await r.json())["choices"][0]["message"]["content"]


@pytest.fixture
async def gw(aiohttp_client: Any, engine: MockEngine) -> TestClient:
    return await _gateway_client(aiohttp_client, engine.url, max_body_bytes=64 * 1024)


@pytest.mark.parametrize(
    ("path", "data", "param"),
    [
        pytest.param("/v1/chat/completions", b'{"messages": [', None, id="malformed-json"),
        pytest.param("/v1/chat/completions", b"[1, 2]", None, id="not-an-object"),
        pytest.param("/v1/chat/completions", b'{"model": "m"}', "messages", id="missing-messages"),
        pytest.param("/v1/chat/completions", b'{"messages": "hi"}', "messages", id="messages-not-a-list"),
        pytest.param(
            "/v1/chat/completions", b'{"messages": [{"content": "x"}]}', "messages[0]", id="message-without-role"
        ),
        pytest.param(
            "/v1/chat/completions", b'{"messages": [{"role": "user"}], "stream": "yes"}', "stream", id="stream-not-bool"
        ),
        pytest.param(
            "/v1/chat/completions",
            b'{"messages": [{"role": "user"}], "max_tokens": "9"}',
            "max_tokens",
            id="max-tokens-not-int",
        ),
        pytest.param("/v1/chat/completions", b'{"messages": [{"role": "user"}], "n": 3}', "n", id="n-above-one"),
        pytest.param("/v1/chat/completions", b'{"messages": [{"role": "user"}], "n": 0}', "n", id="n-zero"),
        pytest.param(
            "/v1/chat/completions",
            b'{"messages": [{"role": "user"}], "max_tokens": 0}',
            "max_tokens",
            id="max-tokens-0",
        ),
        pytest.param(
            "/v1/chat/completions",
            b'{"messages": [{"role": "user"}], "max_tokens": -5}',
            "max_tokens",
            id="max-tokens-neg",
        ),
        pytest.param(
            "/v1/chat/completions",
            b'{"messages": [{"role": "user"}], "max_completion_tokens": 0}',
            "max_completion_tokens",
            id="max-completion-tokens-0",
        ),
        pytest.param(
            "/v1/chat/completions",
            b'{"messages": [{"role": "user"}], "temperature": -0.5}',
            "temperature",
            id="temperature-negative",
        ),
        pytest.param("/v1/chat/completions", b'{"messages": [{"role": "user"}], "top_p": 0}', "top_p", id="top-p-0"),
        pytest.param(
            "/v1/chat/completions",
            b'{"messages": [{"role": "user"}], "top_p": 1.5}',
            "top_p",
            id="top-p-big",
        ),
        pytest.param(
            "/v1/chat/completions",
            b'{"messages": [{"role": "user"}], "logprobs": true, "top_logprobs": 1000}',
            "top_logprobs",
            id="top-logprobs-huge",
        ),
        pytest.param(
            "/v1/chat/completions",
            b'{"messages": [{"role": "user"}], "presence_penalty": 3}',
            "presence_penalty",
            id="presence-penalty",
        ),
        pytest.param("/v1/completions", b'{"prompt": "x", "logprobs": 100}', "logprobs", id="legacy-logprobs-huge"),
        pytest.param(
            "/v1/completions",
            b'{"prompt": "x", "max_tokens": 0}',
            "max_tokens",
            id="completions-max-tokens-0",
        ),
        pytest.param("/v1/responses", b'{"model": "m"}', "input", id="responses-no-input"),
        pytest.param(
            "/v1/responses", b'{"input": "x", "max_output_tokens": 0}', "max_output_tokens", id="responses-max-output-0"
        ),
        pytest.param(
            "/v1/responses",
            b'{"input": "x", "previous_response_id": "r1"}',
            "previous_response_id",
            id="responses-chain",
        ),
        pytest.param(
            "/v1/responses",
            b'{"input": "x", "tools": [{"type": "web_search"}]}',
            "tools[0]",
            id="responses-hosted-tool",
        ),
        pytest.param("/v1/completions", b'{"prompt": 5}', "prompt", id="prompt-wrong-type"),
    ],
)
async def test_bad_bodies_are_400_and_recorded(
    gw: TestClient, engine: MockEngine, path: str, data: bytes, param: str | None
) -> None:
    r = await gw.post(path, data=data, headers={"Content-Type": "application/json"})
    err = await _assert_error(r, 400, "invalid_request_error")
    assert err["param"] == param
    [rec] = _records(gw)
    assert rec.status == 400 and rec.error is not None and rec.error.origin == "client"
    assert rec.completion_token_ids is None and engine.stats.requests == 0  # never reached the engine
    await _still_serves(gw)


async def test_oversized_body_is_413(gw: TestClient) -> None:
    big = {"messages": [{"role": "user", "content": "x" * (100 * 1024)}]}
    await _assert_error(await gw.post("/v1/chat/completions", json=big), 413)
    assert _records(gw)[0].status == 413
    await _still_serves(gw)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "/v2/everything", 404, id="unknown"),
        pytest.param("POST", "/episodes/ep-x/v1/embeddings", 404, id="unknown-under-episode"),
        pytest.param("GET", "/v1/chat/completions", 405, id="wrong-method"),
    ],
)
async def test_unknown_routes_are_openai_errors(gw: TestClient, method: str, path: str, status: int) -> None:
    await _assert_error(await gw.request(method, path), status)
    episode = "ep-x" if path.startswith("/episodes/") else "default"
    [rec] = _records(gw, episode)
    assert rec.status == status and rec.endpoint == path
    await _still_serves(gw)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_down_is_502(aiohttp_client: Any, stream: bool) -> None:
    client = await _gateway_client(aiohttp_client, f"http://127.0.0.1:{_closed_port()}")
    await _assert_error(
        await client.post("/v1/chat/completions", json=CHAT | {"stream": stream}), 502, "upstream_unavailable"
    )
    [rec] = _records(client)
    assert rec.error.origin == "upstream" and rec.status == 502
    assert (await client.get("/health")).status == 200


async def _fake_engine(aiohttp_server: Any, handler: Any) -> str:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def _garbage(request: web.Request) -> web.StreamResponse:
    if (await request.json()).get("stream"):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'data: {"choices": [{"index": 0, "delta": {"content": "a"}}]}\n\n')
        await asyncio.sleep(0.05)  # the gateway has begun its own stream by now
        await resp.write(b"data: {not json\n\n")
        return resp
    return web.Response(text="<html>oops</html>", content_type="text/html")


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_garbage_is_502_and_recorded(aiohttp_client: Any, aiohttp_server: Any, stream: bool) -> None:
    client = await _gateway_client(aiohttp_client, await _fake_engine(aiohttp_server, _garbage))
    r = await client.post("/v1/chat/completions", json=CHAT | {"stream": stream})
    if stream:  # the stream had begun: the error arrives as an event, as the SDKs expect
        assert r.status == 200
        text = await r.text()
        assert '"type":"upstream_protocol_error"' in text and "[DONE]" not in text
    else:
        await _assert_error(r, 502, "upstream_protocol_error")
    [rec] = _records(client)
    assert rec.error is not None and rec.error.type == "upstream_protocol_error"
    assert rec.completion_token_ids is None  # nothing invented from the text
    assert (await client.get("/health")).status == 200


async def test_upstream_error_status_is_passed_on(aiohttp_client: Any, aiohttp_server: Any) -> None:
    async def overloaded(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "too many requests"}}, status=429)

    client = await _gateway_client(aiohttp_client, await _fake_engine(aiohttp_server, overloaded))
    err = await _assert_error(await client.post("/v1/chat/completions", json=CHAT), 429, "upstream_refused")
    assert "too many requests" in err["message"]
    assert _records(client)[0].status == 429


async def test_upstream_without_choices_is_502(aiohttp_client: Any, aiohttp_server: Any) -> None:
    async def empty(request: web.Request) -> web.Response:
        return web.json_response({"id": "x"})

    client = await _gateway_client(aiohttp_client, await _fake_engine(aiohttp_server, empty))
    await _assert_error(await client.post("/v1/chat/completions", json=CHAT), 502, "upstream_protocol_error")


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_timeout_is_504(aiohttp_client: Any, stream: bool) -> None:
    async with MockEngine(MockEngineConfig(token_delay=0.2)) as slow:
        client = await _gateway_client(aiohttp_client, slow.url, timeouts=Timeouts(total=0.3, read_idle=0.3))
        r = await client.post("/v1/chat/completions", json=CHAT | {"stream": stream})
        if stream:  # the engine's first chunk came at once: the timeout is an event in the stream
            text = await r.text()
            assert r.status == 200 and '"type":"upstream_timeout"' in text and '"code":504' in text
        else:
            await _assert_error(r, 504, "upstream_timeout")
        [rec] = _records(client)
        assert rec.status == 504 and rec.error.type == "upstream_timeout"
        assert (await client.get("/health")).status == 200
        # the engine's request was abandoned, not left running
        for _ in range(50):
            if slow.stats.cancelled:
                break
            await asyncio.sleep(0.02)
        assert slow.stats.cancelled == 1


async def _bad_logprobs(request: web.Request) -> web.StreamResponse:
    choice = {"index": 0, "logprobs": {"content": [{"token": "a"}]}, "token_ids": [97], "finish_reason": "stop"}
    if (await request.json()).get("stream"):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"data: " + json.dumps({"choices": [choice | {"delta": {"content": "a"}}]}).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp
    return web.json_response({"id": "x", "prompt_token_ids": [1], "choices": [choice | {"message": {"content": "a"}}]})


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_answer_of_the_wrong_shape_is_a_protocol_error(
    aiohttp_client: Any, aiohttp_server: Any, stream: bool
) -> None:
    client = await _gateway_client(aiohttp_client, await _fake_engine(aiohttp_server, _bad_logprobs))
    r = await client.post("/v1/chat/completions", json=CHAT | {"stream": stream})
    await _assert_error(r, 502, "upstream_protocol_error")  # a logprob entry without its logprob
    assert _records(client)[0].error.origin == "upstream"
    assert (await client.get("/health")).status == 200


async def test_a_long_non_streaming_generation_is_not_an_idle_timeout(aiohttp_client: Any) -> None:
    # 0.25 s of silence before the answer: longer than read_idle, well within the total deadline
    async with MockEngine(MockEngineConfig(token_delay=0.25 / 17, reply_tokens=16)) as slow:
        client = await _gateway_client(aiohttp_client, slow.url, timeouts=Timeouts(total=5.0, read_idle=0.1))
        r = await client.post("/v1/chat/completions", json=CHAT)
        assert r.status == 200, await r.text()
        r = await client.post("/v1/chat/completions", json=CHAT | {"stream": True})
        assert r.status == 200 and "[DONE]" in await r.text()  # chunks keep coming faster than read_idle
