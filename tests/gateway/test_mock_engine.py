"""The scripted engine's own behaviour: tokenizer, template, scripts, truncation, streaming shapes."""

from __future__ import annotations

import json

import aiohttp
import pytest

from boxgym.gateway import MockEngine, MockEngineConfig, Reply
from boxgym.gateway.mock.tokenizer import ByteTokenizer, render_chat


@pytest.mark.parametrize("text", ["", "plain", "héllo wörld ✓", "<|user|>x<|end|>\n<tool_call>{}</tool_call>"])
def test_tokenizer_round_trips(text: str) -> None:
    tok = ByteTokenizer()
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode(text, specials=False)) == text
    assert all(t < 256 for t in tok.encode(text, specials=False))


def test_template_renders_history_as_the_engine_sampled_it() -> None:
    tok = ByteTokenizer()
    msgs = [{"role": "user", "content": "hi"}]
    prompt = tok.encode(render_chat(msgs))
    assert tok.decode(prompt) == "<|user|>hi<|end|>\n<|assistant|>"
    sampled = tok.encode('<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>') + [tok.eos_id]
    follow = msgs + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}],
        }
    ]
    assert tok.encode(render_chat(follow))[: len(prompt) + len(sampled)] == prompt + sampled


async def _post(url: str, body: dict, episode: str | None = None) -> tuple[int, str]:
    headers = {"X-Boxgym-Episode-Id": episode} if episode else {}
    async with aiohttp.ClientSession() as s:
        async with s.post(url, json=body, headers=headers) as r:
            return r.status, await r.text()


async def test_scripts_answer_by_turn_and_run_out_loudly() -> None:
    async with MockEngine() as eng:
        eng.script("ep", [Reply.say("first"), Reply.call("bash", command="ls")])
        url = eng.url + "/v1/chat/completions"
        _, a = await _post(url, {"messages": [{"role": "user", "content": "x"}]}, "ep")
        turn2 = [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": "first"},
            {"role": "user", "content": "y"},
        ]
        _, b = await _post(url, {"messages": turn2}, "ep")
        status, c = await _post(
            url, {"messages": turn2 + [{"role": "assistant", "content": "z"}, {"role": "user", "content": "w"}]}, "ep"
        )
    assert json.loads(a)["choices"][0]["message"]["content"] == "first"
    call = json.loads(b)["choices"][0]["message"]["tool_calls"][0]["function"]
    assert (call["name"], json.loads(call["arguments"])) == ("bash", {"command": "ls"})
    assert status == 400 and "script" in json.loads(c)["error"]["message"]


async def test_seeded_text_is_deterministic_and_max_tokens_truncates() -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "return_token_ids": True}
    async with MockEngine(MockEngineConfig(reply_tokens=20)) as eng:
        _, a = await _post(eng.url + "/v1/chat/completions", body)
        _, b = await _post(eng.url + "/v1/chat/completions", body)
        _, c = await _post(eng.url + "/v1/chat/completions", body | {"max_tokens": 5})
    a, b, c = json.loads(a), json.loads(b), json.loads(c)
    assert a["choices"][0]["token_ids"] == b["choices"][0]["token_ids"] and len(a["choices"][0]["token_ids"]) == 21
    assert (
        c["choices"][0]["finish_reason"] == "length"
        and c["choices"][0]["token_ids"] == a["choices"][0]["token_ids"][:5]
    )


async def test_stream_carries_prompt_ids_first_and_delta_ids_per_chunk() -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "return_token_ids": True, "logprobs": True, "stream": True}
    async with MockEngine() as eng:
        _, text = await _post(eng.url + "/v1/chat/completions", body)
        _, whole = await _post(eng.url + "/v1/chat/completions", body | {"stream": False})
    chunks = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    whole = json.loads(whole)
    assert chunks[0]["prompt_token_ids"] == whole["prompt_token_ids"]
    assert all("prompt_token_ids" not in c for c in chunks[1:])
    ids = [t for c in chunks for t in c["choices"][0].get("token_ids") or []]
    lps = [e["logprob"] for c in chunks if c["choices"][0]["logprobs"] for e in c["choices"][0]["logprobs"]["content"]]
    assert ids == whole["choices"][0]["token_ids"]
    assert lps == [e["logprob"] for e in whole["choices"][0]["logprobs"]["content"]]
    assert text.rstrip().endswith("data: [DONE]")


def _sse(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


@pytest.mark.parametrize("stream", [pytest.param(False, id="plain"), pytest.param(True, id="stream")])
async def test_stop_strings_end_the_text_before_them_as_vllm_does(stream: bool) -> None:
    tok = ByteTokenizer()
    async with MockEngine() as eng:
        eng.script("ep", [Reply.say("first line\nsecond line")])
        chat = {"messages": [{"role": "user", "content": "x"}], "return_token_ids": True, "stop": ["\n", "zzz"]}
        _, text = await _post(eng.url + "/v1/chat/completions", chat | {"stream": stream}, "ep")
        prompt = tok.encode(render_chat([{"role": "user", "content": "x"}]))
        legacy = {"prompt": tok.decode(prompt), "return_token_ids": True, "stop": "\n", "stream": stream}
        _, ctext = await _post(eng.url + "/v1/completions", legacy, "ep")
    if stream:
        chunks, cchunks = _sse(text), _sse(ctext)
        content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        ids = [t for c in chunks for t in c["choices"][0].get("token_ids") or []]
        last = chunks[-1]["choices"][0]
        ctext_joined = "".join(c["choices"][0]["text"] for c in cchunks)
        cids = [t for c in cchunks for t in c["choices"][0].get("token_ids") or []]
    else:
        body, cbody = json.loads(text), json.loads(ctext)
        last = body["choices"][0]
        content, ids = last["message"]["content"], last["token_ids"]
        ctext_joined, cids = cbody["choices"][0]["text"], cbody["choices"][0]["token_ids"]
    assert content == "first line" == ctext_joined  # the text stops before the stop string
    assert ids == tok.encode("first line\n", specials=False) == cids  # whose tokens were sampled, and no EOS
    assert (last["finish_reason"], last["stop_reason"]) == ("stop", "\n")


async def test_top_logprobs_returns_as_many_entries_as_asked() -> None:
    async with MockEngine() as eng:
        body = {"messages": [{"role": "user", "content": "x"}], "logprobs": True, "top_logprobs": 2}
        _, text = await _post(eng.url + "/v1/chat/completions", body)
        _, legacy = await _post(eng.url + "/v1/completions", {"prompt": "x", "logprobs": 3})
    entries = json.loads(text)["choices"][0]["logprobs"]["content"]
    assert entries and all(len(e["top_logprobs"]) == 2 for e in entries)
    for e in entries:  # the sampled token first, the alternative less likely
        assert e["top_logprobs"][0]["logprob"] == e["logprob"] > e["top_logprobs"][1]["logprob"]
    tops = json.loads(legacy)["choices"][0]["logprobs"]["top_logprobs"]
    assert tops and all(len(t) == 3 for t in tops)


async def test_completions_stream_sends_the_usage_chunk_when_asked() -> None:
    async with MockEngine(MockEngineConfig(reply_tokens=10)) as eng:
        body = {"prompt": "x", "stream": True, "return_token_ids": True}
        _, without = await _post(eng.url + "/v1/completions", body)
        _, text = await _post(eng.url + "/v1/completions", body | {"stream_options": {"include_usage": True}})
    assert not any(c.get("usage") for c in _sse(without))
    *chunks, usage = _sse(text)
    ids = [t for c in chunks for t in c["choices"][0].get("token_ids") or []]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == len(ids) == 11
    assert usage["usage"]["prompt_tokens"] == 1


async def test_tokenize_and_detokenize() -> None:
    tok = ByteTokenizer()
    messages = [{"role": "user", "content": "hé"}]
    async with MockEngine() as eng:
        _, a = await _post(eng.url + "/tokenize", {"prompt": "hé<|end|>"})
        _, b = await _post(eng.url + "/tokenize", {"messages": messages})
        _, c = await _post(eng.url + "/detokenize", {"tokens": tok.encode("hé<|end|>")})
    assert json.loads(a)["tokens"] == tok.encode("hé<|end|>") and json.loads(a)["count"] == 4
    assert json.loads(b)["tokens"] == tok.encode(render_chat(messages))
    assert json.loads(c)["prompt"] == "hé<|end|>"
