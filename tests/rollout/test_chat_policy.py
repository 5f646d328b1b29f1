"""The OpenAI chat policy against a tiny OpenAI-compatible stub on loopback."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from boxgym.rollout import ChatPolicy, ChatPolicyConfig, Outcome, Retries, RolloutConfig, RolloutManager, TaskRef

from .testing_env import Script, factory


def _stub(fail_first: int = 0, status: int = 500) -> tuple[web.Application, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append({"path": request.path, "body": body})
        if len(seen) <= fail_first:
            return web.json_response({"error": {"message": "boom"}}, status=status)
        n = len(body["messages"])
        return web.json_response(
            {
                "id": f"call-{len(seen)}",
                "prompt_token_ids": list(range(n)),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "tool_calls",
                        "token_ids": [500 + n, 600 + n],
                        "logprobs": {"content": [{"token": "a", "logprob": -0.5}, {"token": "b", "logprob": -0.25}]},
                        "message": {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "noop", "arguments": "{}"}}],
                        },
                    }
                ],
            },
            headers={"X-Weight-Version": "w7"},
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/episodes/{episode}/v1/chat/completions", chat)
    return app, seen


async def test_chat_policy_reads_engine_tokens_and_uses_per_episode_base_urls(aiohttp_server: Any) -> None:
    app, seen = _stub()
    server = await aiohttp_server(app)
    root = str(server.make_url("")).rstrip("/")
    async with ChatPolicy(ChatPolicyConfig(model="m", sampling={"temperature": 0.7})) as policy, RolloutManager(
        factory(Script(steps=2)), policy, episode_base_url=root + "/episodes/{episode_id}/v1"
    ) as manager:
        [result] = await manager.collect([TaskRef("t")])
    assert result.outcome is Outcome.TERMINATED and result.steps == 2
    assert {s["path"] for s in seen} == {f"/episodes/{result.episode_id}/v1/chat/completions"}
    body = seen[0]["body"]
    assert body["model"] == "m" and body["temperature"] == 0.7 and body["logprobs"] is True
    assert [t["function"]["name"] for t in body["tools"]] == ["noop"]
    first = result.completions[0]
    assert first.prompt_token_ids == (0, 1) and first.completion_token_ids == (502, 602)
    assert first.logprobs == (-0.5, -0.25) and first.weight_version == "w7" and first.call_id == "call-1"
    assert result.completion_tokens == 4


async def test_upstream_failures_are_retried(aiohttp_server: Any) -> None:
    app, seen = _stub(fail_first=2, status=503)
    server = await aiohttp_server(app)
    config = RolloutConfig(retries=Retries(policy_call_attempts=3, policy_backoff=0.0))
    async with ChatPolicy(base_url=str(server.make_url("/v1"))) as policy:
        async with RolloutManager(factory(Script(steps=1)), policy, config=config) as manager:
            [result] = await manager.collect([TaskRef("t")])
    assert result.outcome is Outcome.TERMINATED and len(seen) == 3
    assert manager.metrics.policy_retries == 2


@pytest.mark.parametrize(
    ("status", "reason"),
    [pytest.param(400, "infra", id="refused-not-retried"), pytest.param(502, "infra", id="engine-down")],
)
async def test_engine_down_is_an_infrastructure_failure_never_a_zero(aiohttp_server: Any, status: int, reason: str) -> None:
    app, seen = _stub(fail_first=100, status=status)
    server = await aiohttp_server(app)
    config = RolloutConfig(retries=Retries(policy_call_attempts=2, policy_backoff=0.0, episode_attempts=1))
    async with ChatPolicy(base_url=str(server.make_url("/v1"))) as policy:
        async with RolloutManager(factory(Script(steps=1)), policy, config=config) as manager:
            [result] = await manager.collect([TaskRef("t")])
    assert result.outcome is Outcome.INFRA_FAILURE and result.reason == reason and result.reward is None
    assert len(seen) == (1 if status == 400 else 2)


async def test_unreachable_engine_is_an_infrastructure_failure() -> None:
    config = RolloutConfig(retries=Retries(policy_call_attempts=1, episode_attempts=1))
    async with ChatPolicy(base_url="http://127.0.0.1:9/v1", timeout=2) as policy:
        async with RolloutManager(factory(Script(steps=1)), policy, config=config) as manager:
            [result] = await manager.collect([TaskRef("t")])
    assert result.outcome is Outcome.INFRA_FAILURE and "UpstreamError" in (result.error or "")
