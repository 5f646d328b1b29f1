"""Each upstream adapter against the scripted engine: the tokens it records are the engine's."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from openai import AsyncOpenAI

from boxgym.gateway import Gateway, GatewayConfig, MockEngine, MockEngineConfig, Prefix, StoreConfig, UpstreamConfig
from boxgym.gateway.mock.tokenizer import ByteTokenizer

from .conftest import TOOLS, engine_direct

MESSAGES = [{"role": "user", "content": "list the files"}]


async def _gateway(engine: MockEngine, kind: str, tmp_path: Path, **kw) -> Gateway:
    config = GatewayConfig(
        upstream=UpstreamConfig(engine.url, engine=kind), store=StoreConfig(str(tmp_path / "g.jsonl")), **kw
    )
    return Gateway(config)


@pytest.mark.parametrize("stream", [pytest.param(False, id="plain"), pytest.param(True, id="stream")])
async def test_sglang_chat_records_the_engines_tokens(engine: MockEngine, tmp_path: Path, stream: bool) -> None:
    async with await _gateway(engine, "sglang", tmp_path) as gw:
        async with AsyncOpenAI(base_url=gw.base_url_for("ep-sg"), api_key="x", max_retries=0) as c:
            if stream:
                names = []
                async for ch in await c.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS, stream=True):
                    names += [tc.function.name for tc in (ch.choices[0].delta.tool_calls or ())] if ch.choices else []
                assert names == ["bash"]  # the synthesized stream carries the tool call whole
            else:
                r = await c.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS)
                assert r.choices[0].message.tool_calls[0].function.name == "bash"
        # what the gateway asked SGLang for
        assert (
            engine.stats.last_body["return_prompt_token_ids"] is True
            and engine.stats.last_body["return_meta_info"] is True
        )
        assert engine.stats.last_body["stream"] is False
        [rec] = gw.records("ep-sg")
    direct = await engine_direct(engine, "/v1/chat/completions", {"messages": MESSAGES, "tools": TOOLS}, "ep-sg")
    assert list(rec.prompt_token_ids) == direct["prompt_token_ids"]
    assert list(rec.completion_token_ids) == direct["choices"][0]["token_ids"]
    assert len(rec.logprobs) == len(rec.completion_token_ids)
    assert rec.engine == "sglang" and rec.mode.startswith("chat+meta_info")
    assert "meta_info" not in json.dumps(rec.response)  # stripped for the client (and the record of what it got)


@pytest.mark.parametrize("stream", [pytest.param(False, id="plain"), pytest.param(True, id="stream")])
async def test_sglang_completions_use_native_generate(engine: MockEngine, tmp_path: Path, stream: bool) -> None:
    prompt = "<|user|>hi<|end|>\n<|assistant|>"
    async with await _gateway(engine, "sglang", tmp_path) as gw:
        async with AsyncOpenAI(base_url=gw.base_url_for("ep-gen"), api_key="x", max_retries=0) as c:
            if stream:
                text = "".join(
                    [
                        ch.choices[0].text
                        async for ch in await c.completions.create(model="m", prompt=prompt, stream=True)
                        if ch.choices
                    ]
                )
            else:
                text = (await c.completions.create(model="m", prompt=prompt)).choices[0].text
        assert engine.stats.last_body["return_logprob"] is True and engine.stats.last_body["text"] == prompt
        [rec] = gw.records("ep-gen")
    direct = await engine_direct(engine, "/v1/completions", {"prompt": prompt}, "ep-gen")
    assert list(rec.prompt_token_ids) == direct["choices"][0]["prompt_token_ids"] == ByteTokenizer().encode(prompt)
    assert list(rec.completion_token_ids) == direct["choices"][0]["token_ids"]
    assert list(rec.logprobs) == direct["choices"][0]["logprobs"]["token_logprobs"]
    assert text == direct["choices"][0]["text"] and rec.mode.startswith("generate")


@pytest.mark.parametrize("stream", [pytest.param(False, id="plain"), pytest.param(True, id="stream")])
async def test_vllm_completions(gateway: Gateway, engine: MockEngine, stream: bool) -> None:
    prompt = "<|user|>hi<|end|>\n<|assistant|>"
    async with AsyncOpenAI(base_url=gateway.base_url_for("ep-cmp"), api_key="x", max_retries=0) as c:
        if stream:
            async for _ in await c.completions.create(model="m", prompt=prompt, stream=True):
                pass
        else:
            r = await c.completions.create(model="m", prompt=prompt)
            assert r.choices[0].logprobs is None  # not asked for by the client
    [rec] = gateway.records("ep-cmp")
    direct = await engine_direct(engine, "/v1/completions", {"prompt": prompt}, "ep-cmp")
    assert list(rec.prompt_token_ids) == direct["choices"][0]["prompt_token_ids"]
    assert list(rec.completion_token_ids) == direct["choices"][0]["token_ids"]
    assert list(rec.logprobs) == direct["choices"][0]["logprobs"]["token_logprobs"]


@pytest.mark.parametrize("stream", [pytest.param(False, id="plain"), pytest.param(True, id="stream")])
async def test_plain_openai_upstream_records_text_and_no_tokens(
    engine: MockEngine, tmp_path: Path, stream: bool
) -> None:
    async with await _gateway(engine, "openai", tmp_path) as gw:
        async with AsyncOpenAI(base_url=gw.base_url_for("ep-oa"), api_key="x", max_retries=0) as c:
            r = await c.chat.completions.create(model="m", messages=MESSAGES, stream=stream)
            if stream:
                async for _ in r:
                    pass
        assert "return_token_ids" not in engine.stats.last_body and "logprobs" not in engine.stats.last_body
        [rec] = gw.records("ep-oa")
    assert rec.token_source == "unavailable"
    assert rec.prompt_token_ids is None and rec.completion_token_ids is None and rec.logprobs is None
    assert rec.prefix.kind is Prefix.UNCHECKED
    assert rec.response["choices"][0]["message"]["content"]


async def test_affinity_header_and_weight_version(engine: MockEngine, tmp_path: Path) -> None:
    async with await _gateway(engine, "vllm", tmp_path, weight_version="w-setting") as gw:
        async with aiohttp.ClientSession() as s:
            await (
                await s.post(gw.base_url_for("ep/with slash") + "/chat/completions", json={"messages": MESSAGES})
            ).read()
            assert engine.stats.last_headers["X-Boxgym-Episode-Id"] == "ep/with slash"
            assert "Authorization" not in engine.stats.last_headers  # the client's bearer never goes upstream
            gw.set_weight_version("w-2")
            await (
                await s.post(gw.base_url_for("ep/with slash") + "/chat/completions", json={"messages": MESSAGES})
            ).read()
        first, second = gw.records("ep/with slash")
    assert (first.weight_version, second.weight_version) == ("w-setting", "w-2")


async def test_engine_weight_version_header_wins(tmp_path: Path) -> None:
    async with MockEngine(MockEngineConfig(weight_version="step-7")) as eng:
        async with await _gateway(eng, "vllm", tmp_path, weight_version="w-setting") as gw:
            async with aiohttp.ClientSession() as s:
                for stream in (False, True):
                    r = await s.post(
                        gw.base_url_for("ep-w") + "/chat/completions", json={"messages": MESSAGES, "stream": stream}
                    )
                    await r.read()
            assert [r.weight_version for r in gw.records("ep-w")] == ["step-7", "step-7"]


async def test_engine_that_ignores_return_token_ids_leaves_tokens_unavailable(aiohttp_server, tmp_path: Path) -> None:
    from aiohttp import web

    async def old_vllm(request: web.Request) -> web.Response:
        content = [{"token": "token_id:65", "logprob": -0.5, "bytes": [65]}]  # must not be read as an id
        return web.json_response(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "A"},
                        "logprobs": {"content": content},
                        "finish_reason": "stop",
                    }
                ],
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", old_vllm)
    server = await aiohttp_server(app)
    config = GatewayConfig(upstream=UpstreamConfig(str(server.make_url("")).rstrip("/")), store=StoreConfig(None))
    async with Gateway(config) as gw:
        async with aiohttp.ClientSession() as s:
            r = await s.post(gw.url + "/v1/chat/completions", json={"messages": MESSAGES})
            assert (await r.json())["choices"][0]["message"]["content"] == "A"
        [rec] = gw.records("default")
    assert rec.completion_token_ids is None and rec.prompt_token_ids is None and rec.token_source == "unavailable"


async def test_stream_usage_is_asked_for_and_hidden_from_a_client_that_did_not(
    gateway: Gateway, engine: MockEngine
) -> None:
    body = {"messages": MESSAGES, "stream": True}
    async with aiohttp.ClientSession() as s:
        text = await (await s.post(gateway.url + "/v1/chat/completions", json=body)).text()
        asked = await (
            await s.post(gateway.url + "/v1/chat/completions", json=body | {"stream_options": {"include_usage": True}})
        ).text()
    assert engine.stats.last_body["stream_options"] == {"include_usage": True}
    assert '"usage"' not in text and '"usage":{' in asked
    assert all(r.completion_token_ids for r in gateway.records("default"))


@pytest.mark.parametrize("stream", [pytest.param(False, id="plain"), pytest.param(True, id="stream")])
async def test_ids_that_disagree_with_the_engines_counts_are_not_recorded(aiohttp_server, stream: bool) -> None:
    from aiohttp import web

    async def lossy(request: web.Request) -> web.StreamResponse:
        # three tokens sampled, but the ids of one went missing on the way
        usage = {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
        lps = {"content": [{"token": "a", "logprob": -0.1}, {"token": "b", "logprob": -0.2}]}
        if not (await request.json()).get("stream"):
            choice = {"index": 0, "message": {"role": "assistant", "content": "abc"}, "finish_reason": "stop"}
            body = {
                "id": "x",
                "prompt_token_ids": [1, 2],
                "usage": usage,
                "choices": [choice | {"token_ids": [7, 8], "logprobs": lps}],
            }
            return web.json_response(body)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        chunks = [
            {
                "prompt_token_ids": [1, 2],
                "choices": [{"index": 0, "delta": {"content": "ab"}, "token_ids": [7, 8], "logprobs": lps}],
            },
            {"choices": [{"index": 0, "delta": {"content": "c"}, "finish_reason": "stop"}]},
            {"choices": [], "usage": usage},
        ]
        for c in chunks:
            await resp.write(b"data: " + json.dumps(c).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", lossy)
    server = await aiohttp_server(app)
    config = GatewayConfig(upstream=UpstreamConfig(str(server.make_url("")).rstrip("/")), store=StoreConfig(None))
    async with Gateway(config) as gw:
        async with aiohttp.ClientSession() as s:
            r = await s.post(gw.url + "/v1/chat/completions", json={"messages": MESSAGES, "stream": stream})
            text = await r.text()
            assert r.status == 200  # the client is served; only the record refuses the bad ids
            assert (
                '"content":"ab"' in text.replace(" ", "")
                if stream
                else json.loads(text)["choices"][0]["message"]["content"] == "abc"
            )
        [rec] = gw.records("default")
    assert rec.token_source == "unavailable" and rec.completion_token_ids is None and rec.prompt_token_ids is None
