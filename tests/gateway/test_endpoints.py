"""The gateway's own endpoints: records per episode, Prometheus metrics, models; and the public API."""

from __future__ import annotations

import re

import aiohttp

import boxgym.gateway
from boxgym.gateway import Gateway, record_from_json


async def test_records_endpoint_returns_the_episode(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as s:
        for text in ("one", "two"):
            r = await s.post(
                gateway.base_url_for("ep-r") + "/chat/completions",
                json={"messages": [{"role": "user", "content": text}]},
            )
            assert r.status == 200
        await (
            await s.post(
                gateway.base_url_for("ep-other") + "/chat/completions",
                json={"messages": [{"role": "user", "content": "x"}]},
            )
        ).read()
        body = await (await s.get(gateway.url + "/episodes/ep-r/records")).json()
        async with s.get(gateway.url + "/episodes/nobody/records") as unknown:
            assert unknown.status == 404 and (await unknown.json())["error"]["type"] == "not_found"
        await gateway.close_episode("empty")  # known, complete, and without a call
        async with s.get(gateway.url + "/episodes/empty/records") as empty:
            assert empty.status == 200 and (await empty.json())["records"] == []
    assert body["episode_id"] == "ep-r"
    assert [record_from_json(d) for d in body["records"]] == gateway.records("ep-r")
    assert [d["request"]["messages"][0]["content"] for d in body["records"]] == ["one", "two"]


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            got = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(got.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in metrics")


async def test_metrics_count_requests_errors_tokens_and_latency(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as s:
        for stream in (False, True, False):
            r = await s.post(
                gateway.url + "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": "m"}], "stream": stream},
            )
            await r.read()
        await (await s.post(gateway.url + "/v1/chat/completions", data=b"{")).read()
        async with s.get(gateway.url + "/metrics") as r:
            assert r.status == 200 and r.content_type == "text/plain"
            text = await r.text()
    assert (
        _metric(text, "boxgym_gateway_requests_total", endpoint="chat.completions", status="200", stream="false") == 2
    )
    assert _metric(text, "boxgym_gateway_requests_total", endpoint="chat.completions", status="200", stream="true") == 1
    assert _metric(text, "boxgym_gateway_errors_total", type="invalid_request_error") == 1
    recs = gateway.records("default")
    assert _metric(text, "boxgym_gateway_tokens_total", kind="completion") == sum(
        len(r.completion_token_ids or ()) for r in recs
    )
    assert _metric(text, "boxgym_gateway_request_seconds_count", endpoint="chat.completions", stream="false") == 3
    assert (
        _metric(text, "boxgym_gateway_request_seconds_bucket", endpoint="chat.completions", stream="false", le="+Inf")
        == 3
    )
    assert _metric(text, "boxgym_gateway_records_total") == 4 == gateway.records_written


async def test_models_are_the_engines(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as s:
        for url in (gateway.url + "/v1/models", gateway.base_url_for("ep") + "/models"):
            body = await (await s.get(url)).json()
            assert [m["id"] for m in body["data"]] == ["boxgym-mock"]


def test_public_api_is_what_all_says() -> None:
    for name in boxgym.gateway.__all__:
        assert getattr(boxgym.gateway, name) is not None, name
    public = {n for n in dir(boxgym.gateway) if not n.startswith("_")}
    modules = {
        "app",
        "config",
        "consistency",
        "control",
        "export",
        "lines",
        "metrics",
        "mock",
        "parts",
        "records",
        "responses",
        "routes",
        "sse",
        "state",
        "store",
        "upstream",
        "validate",
        "workers",
    }
    assert public - modules - {"annotations"} == set(boxgym.gateway.__all__)


async def test_gateway_closes_idempotently_and_frees_its_port(engine) -> None:
    from boxgym.gateway import GatewayConfig, StoreConfig, UpstreamConfig

    gw = Gateway(GatewayConfig(upstream=UpstreamConfig(engine.url), store=StoreConfig(None)))
    url = await gw.start()
    assert await gw.start() == url  # starting twice is one server
    await gw.aclose()
    await gw.aclose()
    async with aiohttp.ClientSession() as s:
        try:
            await s.get(url + "/health")
        except aiohttp.ClientConnectionError:
            pass
        else:
            raise AssertionError("the gateway still answers after aclose()")


async def test_mock_engine_cli_serves_a_script(tmp_path) -> None:
    import asyncio
    import json
    import socket
    import subprocess
    import sys

    script = tmp_path / "script.json"
    script.write_text(json.dumps({"ep": [{"tool_calls": [{"name": "bash", "arguments": {"command": "ls"}}]}]}))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "boxgym", "gateway", "mock-engine", "--port", str(port), "--script", str(script)],
        stderr=subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(200):
                try:
                    r = await s.post(
                        f"http://127.0.0.1:{port}/v1/chat/completions",
                        json={"messages": [{"role": "user", "content": "x"}]},
                        headers={"X-Boxgym-Episode-Id": "ep"},
                    )
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            body = await r.json()
        call = body["choices"][0]["message"]["tool_calls"][0]["function"]
        assert (call["name"], json.loads(call["arguments"])) == ("bash", {"command": "ls"})
    finally:
        proc.terminate()
        proc.wait(timeout=10)
