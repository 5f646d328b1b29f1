"""The Responses API through the gateway with the official openai client: token ids recorded as for
chat, tool calls, streaming events, a multi-turn episode that stays CLEAN, retries from the record."""

from __future__ import annotations

import json

import aiohttp
import pytest
from openai import AsyncOpenAI

from boxgym.gateway import Gateway, MockEngine, Prefix, Reply, ScriptedCall
from boxgym.gateway.mock.tokenizer import ByteTokenizer, render_chat

TOOLS = [
    {
        "type": "function",
        "name": "bash",
        "description": "run a shell command",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
    }
]
CHAT_TOOLS = [{"type": "function", "function": {k: v for k, v in TOOLS[0].items() if k != "type"}}]


def client(gw: Gateway, episode: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=gw.base_url_for(episode), api_key="unused", max_retries=0)


@pytest.mark.parametrize("stream", [pytest.param(False, id="plain"), pytest.param(True, id="stream")])
async def test_a_tool_calling_episode_over_the_responses_api(
    gateway: Gateway, engine: MockEngine, stream: bool
) -> None:
    look = Reply(text="Let me look.", tool_calls=(ScriptedCall.of("bash", command="ls"),))
    engine.script("ep-r", [look, Reply.say("Two files.")])
    items: list = [{"role": "user", "content": "what is here?"}]
    async with client(gateway, "ep-r") as c:
        for _ in range(2):
            if stream:
                kinds = []
                async with c.responses.stream(model="m", input=items, tools=TOOLS, instructions="be brief") as events:
                    async for event in events:
                        kinds.append(event.type)
                    response = await events.get_final_response()
                assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
            else:
                response = await c.responses.create(model="m", input=items, tools=TOOLS, instructions="be brief")
            items += [item.model_dump(exclude_none=True) for item in response.output]
            for item in response.output:
                if item.type == "function_call":
                    items.append({"type": "function_call_output", "call_id": item.call_id, "output": "a.txt b.txt"})
    first, second = gateway.records("ep-r")
    assert first.endpoint == second.endpoint == "responses" and first.status == second.status == 200
    assert response.output_text == "Two files." and response.status == "completed"
    assert response.id == second.call_id  # the join key, as for chat
    calls = [i for i in first.response["output"] if i["type"] == "function_call"]
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [("bash", {"command": "ls"})]
    assert first.response["output"][0]["content"][0]["text"] == "Let me look."
    # the engine's tokens, recorded as for chat: the prompt is the chat template of the translated input
    tok = ByteTokenizer()
    system = {"role": "system", "content": "be brief"}
    assert list(first.prompt_token_ids) == tok.encode(render_chat([system, *items[:1]], CHAT_TOOLS))
    assert len(first.logprobs) == len(first.completion_token_ids) and first.completion_token_ids[-1] == tok.eos_id
    # the text and its function call came back as one assistant turn, as the engine sampled it
    assert (second.prefix.kind, second.parent_call_id) == (Prefix.CLEAN, first.call_id)
    assert first.stream is stream and first.mode.startswith("return_token_ids")


async def test_a_streamed_retry_is_replayed_as_events(gateway: Gateway, engine: MockEngine) -> None:
    url = gateway.base_url_for("ep-rr") + "/responses"
    body = {"model": "m", "input": "hi", "stream": True}
    async with aiohttp.ClientSession() as s:
        async with s.post(url, json=body) as r:
            first = await r.text()
        sent = engine.stats.requests
        async with s.post(url, json=body, headers={"X-Stainless-Retry-Count": "1"}) as r:
            again = await r.text()
    assert engine.stats.requests == sent

    def final(text: str) -> dict:
        events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
        return events[-1]["response"]

    assert final(again) == final(first)
    original, replay = gateway.records("ep-rr")
    assert replay.replay_of == original.call_id and final(first)["id"] == original.call_id


async def test_max_output_tokens_gives_an_incomplete_response(gateway: Gateway) -> None:
    async with client(gateway, "ep-inc") as c:
        response = await c.responses.create(model="m", input="talk", max_output_tokens=3)
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    [record] = gateway.records("ep-inc")
    assert len(record.completion_token_ids) == 3 and record.finish_reason == "length"
    assert response.usage.output_tokens == 3


@pytest.mark.parametrize("stream", [pytest.param(False, id="plain"), pytest.param(True, id="stream")])
async def test_the_responses_api_records_sglang_tokens_too(engine: MockEngine, tmp_path, stream: bool) -> None:
    from boxgym.gateway import GatewayConfig, StoreConfig, UpstreamConfig

    config = GatewayConfig(upstream=UpstreamConfig(engine.url, engine="sglang"), store=StoreConfig(str(tmp_path / "g")))
    async with Gateway(config) as gw, client(gw, "ep-sg") as c:
        if stream:
            async with c.responses.stream(model="m", input="hi", tools=TOOLS) as events:
                response = await events.get_final_response()
        else:
            response = await c.responses.create(model="m", input="hi", tools=TOOLS)
        [record] = gw.records("ep-sg")
    [call] = [item for item in response.output if item.type == "function_call"]
    assert call.name == "bash" and record.engine == "sglang" and record.token_source == "engine"
    tok = ByteTokenizer()
    assert list(record.prompt_token_ids) == tok.encode(render_chat([{"role": "user", "content": "hi"}], CHAT_TOOLS))
    assert len(record.logprobs) == len(record.completion_token_ids) and record.completion_token_ids[-1] == tok.eos_id
