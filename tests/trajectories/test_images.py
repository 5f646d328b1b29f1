"""Images in observations: data URLs towards the policy, one file per image in the records."""

from __future__ import annotations

import json
from typing import Any

import pytest

from boxgym.envs import BoxEnv, StaticTaskSet, Task
from boxgym.judges import ExpectedAnswer, OracleJudge
from boxgym.sandboxes import FakeProvider
from boxgym.toolsets import ShellToolset, ToolResult
from boxgym.trajectories import StepRecord, TrajectoryWriter, read_records
from boxgym.trajectories.images import REF_SCHEME, Image, ImageStore, image_message

PNG = Image(b"\x89PNG\r\n\x1a\n" + b"pixels" * 10)
OTHER = Image(b"\x89PNG\r\n\x1a\n" + b"other" * 10)


class Camera(ShellToolset):
    """The shell tools plus ``snap``, which answers with text and two images."""

    def schemas(self) -> list[dict[str, Any]]:
        return [*super().schemas(), {"type": "function", "function": {"name": "snap", "parameters": {}}}]

    async def run(self, call, sandbox, *, timeout=None):
        if call.name != "snap":
            return await super().run(call, sandbox, timeout=timeout)
        return ToolResult(call.id, call.name, "two pictures", images=(PNG, OTHER))


def snap(n: int) -> dict[str, Any]:
    calls = [{"id": f"s{i}", "type": "function", "function": {"name": "snap", "arguments": "{}"}} for i in range(n)]
    return {"role": "assistant", "content": None, "tool_calls": calls}


def test_externalize_writes_each_image_once_and_inline_gives_it_back(tmp_path):
    store = ImageStore(tmp_path)
    messages = [image_message([PNG, OTHER, PNG], "look"), {"role": "tool", "tool_call_id": "x", "content": "t"}]
    stored = store.externalize(messages)
    urls = [p["image_url"]["url"] for p in stored[0]["content"][1:]]
    assert all(u.startswith(REF_SCHEME) for u in urls) and urls[0] == urls[2] != urls[1]
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == sorted({f"{PNG.sha256}.png", f"{OTHER.sha256}.png"})
    assert stored[1] is messages[1] and messages[0]["content"][1]["image_url"]["url"].startswith("data:")
    assert store.inline(stored) == messages


@pytest.mark.parametrize("bad", ["data:image/png;base64,@@@", "data:text/html;base64,PGI+", "http://example.com/x.png"])
def test_what_is_not_an_inline_image_is_left_as_it_is(tmp_path, bad):
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": bad}}]}
    assert ImageStore(tmp_path).externalize([message]) == [message]


async def test_a_tools_images_reach_the_policy_inline_and_the_record_by_reference(tmp_path):
    task = Task("q", "Take pictures.", ExpectedAnswer("1"))
    writer = TrajectoryWriter(tmp_path)
    env = BoxEnv(provider=FakeProvider(), tasks=StaticTaskSet([task]), judge=OracleJudge(), toolset=Camera(),
                 system_prompt="s", writer=writer)
    await env.areset(options={"task_id": "q"})
    obs, *_, info = await env.astep(snap(2))
    # Every tool message first (a call's answer follows it), then one user message with the images.
    assert [m["role"] for m in obs] == ["tool", "tool", "user"] and info["images"] == 4
    assert obs[2]["content"][0]["text"] == "Images from the tool calls above (s0, s1):"
    assert [p["image_url"]["url"] for p in obs[2]["content"][1:]] == [PNG.data_url(), OTHER.data_url()] * 2
    await env.aclose()
    writer.close()
    line = (tmp_path / "trajectories.jsonl").read_text()
    assert "base64" not in line and len(list((tmp_path / "images").iterdir())) == 2
    [step] = [r for r in read_records(tmp_path) if isinstance(r, StepRecord)]
    assert ImageStore(tmp_path).inline(step.observation) == json.loads(json.dumps(obs))


async def test_the_rollout_manager_records_images_by_reference(tmp_path):
    from boxgym.envs import EnvFactory
    from boxgym.rollout import CallablePolicy, RolloutManager, TaskRef

    replies = iter([snap(1), {"role": "assistant", "content": None, "tool_calls": [
        {"id": "z", "type": "function", "function": {"name": "submit", "arguments": '{"answer": "1"}'}}]}])
    factory = EnvFactory(provider=FakeProvider(), toolset=Camera())
    async with RolloutManager(factory, CallablePolicy(lambda m, t: next(replies)), run_dir=tmp_path) as manager:
        [result] = await manager.collect([TaskRef("code/d0/s1", "boxgym/Code-v0")])
    await factory.aclose()
    assert result.messages[4]["content"][1]["image_url"]["url"] == PNG.data_url()  # the policy saw the bytes
    assert "base64" not in (tmp_path / "trajectories.jsonl").read_text()
    assert len(list((tmp_path / "images").iterdir())) == 2


async def test_the_gateway_stores_a_requests_images_once_beside_its_file(tmp_path):
    import aiohttp

    from boxgym.gateway import Gateway, GatewayConfig, MockEngine, MockEngineConfig, StoreConfig, UpstreamConfig, read_calls

    store = tmp_path / "gateway.jsonl"
    history = [{"role": "system", "content": "s"}, image_message([PNG], "what is this?")]
    async with MockEngine(MockEngineConfig()) as engine:
        config = GatewayConfig(upstream=UpstreamConfig(engine.url, engine="vllm"), store=StoreConfig(str(store)))
        async with Gateway(config) as gateway, aiohttp.ClientSession() as session:
            for turn in range(3):
                url = gateway.base_url_for("ep-img") + "/chat/completions"
                async with session.post(url, json={"messages": history}) as response:
                    assert response.status == 200
                    history = [*history, (await response.json())["choices"][0]["message"],
                               image_message([OTHER if turn else PNG], f"and this ({turn})?")]
    text = store.read_text()
    assert "base64" not in text and len(list((tmp_path / "images").iterdir())) == 2
    calls = list(read_calls(store))
    assert [c.prefix.kind.value for c in calls] == ["ROOT", "CLEAN", "CLEAN"]
    last = calls[-1].request["messages"]
    assert ImageStore(tmp_path).inline(last)[1] == history[1]  # the bytes come back from the file
