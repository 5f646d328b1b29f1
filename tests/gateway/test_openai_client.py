"""The official openai client, through the gateway, to the scripted engine; checked from the records."""

from __future__ import annotations

import json

import aiohttp
import pytest
from openai import AsyncOpenAI

from boxgym.gateway import Gateway, MockEngine, Prefix, Reply
from boxgym.gateway.mock.tokenizer import ByteTokenizer, render_chat

from .conftest import TOOLS, engine_direct


def client(gw: Gateway, episode: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=gw.base_url_for(episode), api_key="unused", max_retries=0)


@pytest.mark.parametrize("stream", [pytest.param(False, id="plain"), pytest.param(True, id="stream")])
async def test_tokens_in_the_record_are_the_engines(gateway: Gateway, engine: MockEngine, stream: bool) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "list the files"}]
    async with client(gateway, "ep-tok") as c:
        if stream:
            calls: dict[int, dict] = {}
            async for chunk in await c.chat.completions.create(model="m", messages=messages, tools=TOOLS, stream=True):
                for tc in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
                    calls[tc.index] = {"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments}
            got = calls[0]
        else:
            r = await c.chat.completions.create(model="m", messages=messages, tools=TOOLS)
            tc = r.choices[0].message.tool_calls[0]
            got = {"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments}
    # the tool call passed through intact
    assert got["name"] == "bash" and json.loads(got["arguments"]) == {"command": "ls"}

    [rec] = gateway.records("ep-tok")
    direct = await engine_direct(
        engine, "/v1/chat/completions", {"model": "m", "messages": messages, "tools": TOOLS}, "ep-tok"
    )
    assert list(rec.prompt_token_ids) == direct["prompt_token_ids"]
    assert list(rec.completion_token_ids) == direct["choices"][0]["token_ids"]
    assert list(rec.logprobs) == [e["logprob"] for e in direct["choices"][0]["logprobs"]["content"]]
    assert len(rec.logprobs) == len(rec.completion_token_ids) > 10
    # and they are the real tokenization of the conversation, ending in EOS
    tok = ByteTokenizer()
    assert list(rec.prompt_token_ids) == tok.encode(render_chat(messages, TOOLS))
    assert rec.completion_token_ids[-1] == tok.eos_id
    assert rec.token_source == "engine" and rec.engine == "vllm" and rec.stream is stream
    assert rec.finish_reason == "tool_calls"
    assert rec.response["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "bash"


async def _two_turns(gw: Gateway, episode: str, stream_second: bool) -> list[dict]:
    messages: list[dict] = [{"role": "user", "content": "what is here?"}]
    async with client(gw, episode) as c:
        r = await c.chat.completions.create(model="m", messages=messages, tools=TOOLS)
        msg = r.choices[0].message
        messages.append(msg.model_dump(exclude_none=True, include={"role", "content", "tool_calls"}))
        messages.append({"role": "tool", "tool_call_id": msg.tool_calls[0].id, "content": "a.txt b.txt"})
        if stream_second:
            async for _ in await c.chat.completions.create(model="m", messages=messages, tools=TOOLS, stream=True):
                pass
        else:
            await c.chat.completions.create(model="m", messages=messages, tools=TOOLS)
    return messages


@pytest.mark.parametrize("stream", [pytest.param(False, id="plain"), pytest.param(True, id="stream")])
async def test_two_turn_conversation_is_clean(gateway: Gateway, stream: bool) -> None:
    await _two_turns(gateway, "ep-clean", stream)
    first, second = gateway.records("ep-clean")
    assert first.prefix.kind is Prefix.ROOT
    assert second.prefix.kind is Prefix.CLEAN
    assert second.prefix.parent_call_id == first.call_id == second.parent_call_id
    sampled = first.prompt_token_ids + first.completion_token_ids
    assert second.prompt_token_ids[: len(sampled)] == sampled
    assert len(second.logprobs) == len(second.completion_token_ids)


async def test_edited_history_is_a_fork_at_the_edit(gateway: Gateway) -> None:
    messages = await _two_turns(gateway, "ep-fork", False)
    edited = [dict(messages[0], content="what is THERE?"), *messages[1:]]
    async with client(gateway, "ep-fork") as c:
        await c.chat.completions.create(model="m", messages=edited, tools=TOOLS)
    first, second, third = gateway.records("ep-fork")
    assert third.prefix.kind is Prefix.FORK
    # the first differing token is inside the first user message: after the tools header and "<|user|>what is "
    prefix_text = render_chat([], TOOLS, generation_prompt=False) + "<|user|>what is "
    assert third.prefix.position == len(ByteTokenizer().encode(prefix_text))
    assert third.prompt_token_ids[: third.prefix.position] == second.prompt_token_ids[: third.prefix.position]
    assert third.prompt_token_ids[third.prefix.position] != second.prompt_token_ids[third.prefix.position]


async def test_client_gets_a_plain_openai_response(gateway: Gateway) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as s:
        async with s.post(gateway.base_url_for("ep-plain") + "/chat/completions", json=body) as r:
            plain = await r.json()
        async with s.post(gateway.base_url_for("ep-plain") + "/chat/completions", json=body | {"stream": True}) as r:
            streamed = await r.text()
        async with s.post(
            gateway.base_url_for("ep-plain") + "/chat/completions",
            json=body | {"return_token_ids": True, "logprobs": True},
        ) as r:
            asked = await r.json()
    assert "prompt_token_ids" not in plain and "token_ids" not in plain["choices"][0]
    assert plain["choices"][0]["logprobs"] is None
    assert "token_ids" not in streamed and '"logprobs":null' in streamed and "prompt_token_ids" not in streamed
    assert streamed.rstrip().endswith("data: [DONE]")
    # a client that asks for the extras gets them
    assert asked["prompt_token_ids"] and asked["choices"][0]["token_ids"]
    assert asked["choices"][0]["logprobs"]["content"]
    # while the gateway recorded the tokens in every case
    records = gateway.records("ep-plain")
    assert len(records) == 3 and all(r.completion_token_ids for r in records)


async def test_scripted_replies_replay_through_the_gateway(gateway: Gateway, engine: MockEngine) -> None:
    engine.script("ep-script", [Reply.call("bash", command="pytest -q"), Reply.say("All tests pass.")])
    messages: list[dict] = [{"role": "user", "content": "fix the bug"}]
    async with client(gateway, "ep-script") as c:
        r1 = await c.chat.completions.create(model="m", messages=messages, tools=TOOLS)
        call = r1.choices[0].message.tool_calls[0]
        assert (call.function.name, json.loads(call.function.arguments)) == ("bash", {"command": "pytest -q"})
        messages += [
            r1.choices[0].message.model_dump(exclude_none=True, include={"role", "content", "tool_calls"}),
            {"role": "tool", "tool_call_id": call.id, "content": "1 passed"},
        ]
        r2 = await c.chat.completions.create(model="m", messages=messages, tools=TOOLS)
    assert r2.choices[0].message.content == "All tests pass."
    assert [r.prefix.kind for r in gateway.records("ep-script")] == [Prefix.ROOT, Prefix.CLEAN]
    assert engine.stats.last_headers["X-Boxgym-Episode-Id"] == "ep-script"


async def test_bearer_names_the_episode_and_placeholders_do_not(gateway: Gateway) -> None:
    async with AsyncOpenAI(base_url=gateway.url + "/v1", api_key="ep-bearer", max_retries=0) as c:
        await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    async with AsyncOpenAI(base_url=gateway.url + "/v1", api_key="EMPTY", max_retries=0) as c:
        await c.completions.create(model="m", prompt="<|user|>hi<|end|>\n<|assistant|>")
    assert len(gateway.records("ep-bearer")) == 1
    [rec] = gateway.records("default")
    assert (
        rec.endpoint == "completions"
        and rec.completion_token_ids
        and len(rec.logprobs) == len(rec.completion_token_ids)
    )


async def test_streamed_token_ids_reach_a_client_that_asks(gateway: Gateway) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True, "return_token_ids": True}
    async with aiohttp.ClientSession() as s:
        async with s.post(gateway.base_url_for("ep-ids") + "/chat/completions", json=body) as r:
            text = await r.text()
    chunks = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    [rec] = gateway.records("ep-ids")
    assert chunks[0]["prompt_token_ids"] == list(rec.prompt_token_ids)
    assert [t for c in chunks for t in c["choices"][0].get("token_ids") or []] == list(rec.completion_token_ids)


async def test_client_can_name_the_parent_call(gateway: Gateway) -> None:
    url = gateway.base_url_for("ep-parent") + "/chat/completions"
    first = [{"role": "user", "content": "a"}]
    async with aiohttp.ClientSession() as s:
        r1 = await (await s.post(url, json={"messages": first})).json()
        reply = r1["choices"][0]["message"]
        await (await s.post(url, json={"messages": [{"role": "user", "content": "b"}]})).read()
        named = gateway.records("ep-parent")[0].call_id
        follow = [*first, {"role": "assistant", "content": reply["content"]}, {"role": "user", "content": "c"}]
        await (await s.post(url, json={"messages": follow}, headers={"X-Boxgym-Parent-Call": named})).read()
    third = gateway.records("ep-parent")[2]
    assert (third.prefix.kind, third.parent_call_id) == (Prefix.CLEAN, named)


async def test_stripped_reply_in_history_is_a_realign_at_the_stripped_token(
    gateway: Gateway, engine: MockEngine
) -> None:
    from boxgym.gateway import training_view

    engine.script("ep-realign", [Reply.say("All done.  "), Reply.say("Bye.")])
    messages: list[dict] = [{"role": "user", "content": "finish"}]
    async with client(gateway, "ep-realign") as c:
        r = await c.chat.completions.create(model="m", messages=messages)
        # many agent frameworks strip the model's text before putting it back in the history
        messages += [
            {"role": "assistant", "content": r.choices[0].message.content.strip()},
            {"role": "user", "content": "ok"},
        ]
        await c.chat.completions.create(model="m", messages=messages)
    first, second = gateway.records("ep-realign")
    assert second.prefix.kind is Prefix.REALIGN
    # the first difference is the first stripped space, inside the last tokens of the completion
    assert second.prefix.position == len(first.prompt_token_ids) + len("All done.")
    assert (
        second.prompt_token_ids[: second.prefix.position]
        == (first.prompt_token_ids + first.completion_token_ids)[: second.prefix.position]
    )
    view = gateway.training_view("ep-realign")
    assert view == training_view(gateway.records("ep-realign"))
    assert [(s.start, s.fork_at, s.parent) for s in view.sequences] == [
        (Prefix.ROOT, None, None),
        (Prefix.REALIGN, second.prefix.position, 0),
    ]
    # the stripped tail was sampled in the first call: it carries its loss there only
    sampled = [len(first.completion_token_ids), len(second.completion_token_ids)]
    assert [sum(s.loss_mask) for s in view.sequences] == sampled
