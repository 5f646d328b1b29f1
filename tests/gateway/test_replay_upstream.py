"""Gateway replay: a recorded episode's calls served back, in order, by the replay upstream."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from openai import AsyncOpenAI

from boxgym.gateway import Gateway, GatewayConfig, MockEngine, Reply, StoreConfig, UpstreamConfig
from boxgym.trajectories import RunDir

from .conftest import TOOLS


def client(gw: Gateway, episode: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=gw.base_url_for(episode), api_key="unused", max_retries=0)


async def _agent(gw: Gateway, episode: str, *, stream: bool = False, first: str = "fix the bug") -> list[dict]:
    """A tiny black-box agent: two calls, the second after a fake tool result."""
    messages: list[dict] = [{"role": "user", "content": first}]
    answers = []
    async with client(gw, episode) as c:
        for turn in range(2):
            if stream:
                text, calls = "", {}
                async for chunk in await c.chat.completions.create(
                    model="m", messages=messages, tools=TOOLS, stream=True, logprobs=True
                ):
                    delta = chunk.choices[0].delta if chunk.choices else None
                    text += (delta.content or "") if delta else ""
                    for tc in (delta.tool_calls or ()) if delta else ():
                        calls[tc.index] = {"id": tc.id, "type": "function",
                                           "function": {"name": tc.function.name, "arguments": tc.function.arguments}}  # fmt: skip
                message = {"role": "assistant", **({"content": text} if text else {})}  # as model_dump gives it
                if calls:
                    message["tool_calls"] = [calls[i] for i in sorted(calls)]
            else:
                r = await c.chat.completions.create(model="m", messages=messages, tools=TOOLS, logprobs=True)
                message = r.choices[0].message.model_dump(exclude_none=True, include={"role", "content", "tool_calls"})
            answers.append(message)
            messages.append(message)
            if turn == 0:
                messages.append({"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "ok"})
    return answers


@pytest.fixture
async def recorded(tmp_path: Path) -> Path:
    """A run directory whose gateway.jsonl holds one scripted episode of two calls."""
    run = tmp_path / "run"
    async with MockEngine() as engine:
        engine.script("ep-1", [Reply.call("bash", command="pytest -q"), Reply.say("All green.")])
        config = GatewayConfig(upstream=UpstreamConfig(engine.url), store=StoreConfig(str(run / "gateway.jsonl")))
        async with Gateway(config) as gw:
            await _agent(gw, "ep-1")
    (run / "trajectories.jsonl").touch()
    return run


def _replay_config(source: Path, store: Path) -> GatewayConfig:
    return GatewayConfig(upstream=UpstreamConfig(str(source), engine="replay"), store=StoreConfig(str(store)))


@pytest.mark.parametrize("stream", [pytest.param(False, id="plain"), pytest.param(True, id="stream")])
async def test_an_agent_gets_its_recorded_answers_with_their_tokens(recorded: Path, tmp_path: Path, stream: bool) -> None:
    original = RunDir(recorded).calls("ep-1")
    async with Gateway(_replay_config(recorded, tmp_path / "again.jsonl")) as gw:
        answers = await _agent(gw, "ep-1", stream=stream)
        replayed = gw.records("ep-1")
    assert answers[0]["tool_calls"][0]["function"]["name"] == "bash"
    assert json.loads(answers[0]["tool_calls"][0]["function"]["arguments"]) == {"command": "pytest -q"}
    assert answers[1]["content"] == "All green."
    assert len(replayed) == 2 and all(r.ok and r.engine == "replay" for r in replayed)
    for old, new in zip(original, replayed):
        # the same conversation: the engine's tokens and logprobs come back exactly
        assert new.prompt_token_ids == old.prompt_token_ids
        assert new.completion_token_ids == old.completion_token_ids
        assert new.logprobs == old.logprobs
    assert replayed[1].prefix.kind.value == "CLEAN"


async def test_a_diverged_request_gets_the_answer_but_no_prompt_tokens(recorded: Path, tmp_path: Path) -> None:
    async with Gateway(_replay_config(recorded, tmp_path / "again.jsonl")) as gw:
        answers = await _agent(gw, "ep-1", first="something else entirely")
        [first, _] = gw.records("ep-1")
    assert answers[1]["content"] == "All green."  # served in order all the same
    assert first.prompt_token_ids is None and first.token_source == "unavailable"


async def test_past_the_record_and_unknown_episodes_are_409_with_the_reason(recorded: Path, tmp_path: Path) -> None:
    async with Gateway(_replay_config(recorded, tmp_path / "again.jsonl")) as gw:
        await _agent(gw, "ep-1")
        async with aiohttp.ClientSession() as s:
            body = {"model": "m", "messages": [{"role": "user", "content": "more?"}]}
            async with s.post(gw.base_url_for("ep-1") + "/chat/completions", json=body) as r:
                assert r.status == 409
                error = (await r.json())["error"]
            assert "recorded 2 answered calls; this is call 3" in error["message"]
            async with s.post(gw.base_url_for("nobody") + "/chat/completions", json=body) as r:
                assert r.status == 409
                assert "has no recorded calls" in (await r.json())["error"]["message"]
            async with s.get(gw.url + "/v1/models") as r:
                assert [m["id"] for m in (await r.json())["data"]] == ["m"]
        assert [r.status for r in gw.records("ep-1")] == [200, 200, 409]


async def test_the_default_episode_replays_a_store_of_one_episode(recorded: Path, tmp_path: Path) -> None:
    store = recorded / "gateway.jsonl"
    async with Gateway(_replay_config(store, tmp_path / "again.jsonl")) as gw:
        async with AsyncOpenAI(base_url=gw.url + "/v1", api_key="EMPTY", max_retries=0) as c:
            r = await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "fix the bug"}])
    assert r.choices[0].message.tool_calls[0].function.name == "bash"


def test_gateway_serve_refuses_a_replay_of_nothing(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "boxgym", "gateway", "serve", "--replay", str(tmp_path), "--store", str(tmp_path / "g")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "is not a gateway record file" in done.stderr
