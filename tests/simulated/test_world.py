"""The world model's answers: validated against the declared schemas, re-asked once, then an
infrastructure failure; the agent's bad calls are observations that never reach the model."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from boxgym.envs import reference_messages
from boxgym.errors import Fault, SimulatorError, TaskError, fault_of
from boxgym.gateway import Gateway, GatewayConfig, MockEngine, MockEngineConfig, Reply, StoreConfig, UpstreamConfig
from boxgym.modelcalls import ModelEndpoint
from boxgym.simulated import WorldModelConfig, read_answer, reference_replies
from boxgym.simulated.tools import SimulatedToolset
from boxgym.trajectories import EpisodeEnd, Outcome, TrajectoryWriter, read_records

from .play import TASKS, as_message, endpoint, play, script_reference, simulated_env
from .play import run as play_closed

TRAVEL = TASKS.get("travel/cheapest-direct")
SEARCH = as_message("search_flights", origin="BER", destination="LIS", date="2025-04-02")
GOOD_SEARCH = reference_replies(TRAVEL)["world"][0]


@pytest.fixture
async def engine() -> AsyncIterator[MockEngine]:
    async with MockEngine(MockEngineConfig()) as e:
        yield e


async def run(engine: MockEngine, actions, task=TRAVEL, **kwargs):
    return await play_closed(engine, task.id, actions, **kwargs)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        pytest.param("Here are the flights: FR101, TP541.", 'no JSON object with an "output" key', id="prose"),
        pytest.param('{"output": {"results": []}}', "does not fit search_flights's output schema", id="wrong-shape"),
        pytest.param('{"output": {"flights": []}, "note": "x"}', "unexpected key(s) note", id="extra-key"),
        pytest.param(
            '{"output": {"flights": []}, "state_patch": {"flights": {"TP541": {"seats_left": -1}}}}',
            "does not fit the state schema",
            id="bad-state",
        ),
        pytest.param(
            json.dumps({"output": {"error": "no seat"}, "state_patch": {"flights": {"TP541": {"seats_left": 1}}}}),
            "must not change the state",
            id="refusal-that-changes-the-world",
        ),
    ],
)
async def test_an_answer_that_does_not_fit_is_asked_again_once_with_the_reason(engine: MockEngine, bad: str, why: str):
    engine.script("ep.world", [Reply.say(bad), Reply.say(GOOD_SEARCH)])
    [(obs, _, terminated, _, info)] = await run(engine, [SEARCH])
    assert not terminated and json.loads(obs[0]["content"])["flights"][1]["flight_id"] == "TP541"
    assert info["events"][0]["attempts"] == 2 and engine.stats.requests == 2
    roles = [m["role"] for m in engine.stats.last_body["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    again = engine.stats.last_body["messages"][-1]["content"]
    assert again.startswith("That answer does not fit: ") and why in again


async def test_what_still_does_not_fit_is_an_infrastructure_failure_not_an_observation(engine: MockEngine, tmp_path):
    engine.script("ep.world", [Reply.say("I am not sure."), Reply.say("Still not sure.")])
    [(obs, reward, terminated, _, info)] = await run(engine, [SEARCH], writer=TrajectoryWriter(tmp_path))
    assert terminated and info["infra_failure"] and info["end_reason"] == "infra"
    assert info["error"].startswith("SimulatorError: the world model gave no answer that fits search_flights")
    assert obs == [{"role": "tool", "tool_call_id": "c_search_flights", "content": "not run: the sandbox failed"}]
    assert engine.stats.requests == 2  # the call and one re-ask, no more
    [end] = [r for r in read_records(tmp_path) if isinstance(r, EpisodeEnd)]
    assert end.outcome is Outcome.INFRA_FAILURE and end.reward is None
    assert fault_of(SimulatorError("x")) is Fault.INFRA


async def test_a_failed_call_is_repeated_and_an_unreachable_world_model_is_infrastructure(engine: MockEngine):
    with socket.socket() as s:  # nothing listens on this port once the socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = ModelEndpoint(model="world", base_url=f"http://127.0.0.1:{port}/v1")
    env = simulated_env(None, world=down, toolset=SimulatedToolset(down, config=WorldModelConfig(call_retries=1)))
    try:
        [(_, _, terminated, _, info)] = await play(env, TRAVEL.id, [SEARCH])
    finally:
        await env.aclose()
    assert terminated and info["infra_failure"]
    assert info["error"].count("call failed: ClientConnectorError") == 2  # the call and its one repeat


async def test_a_refusal_is_an_observation_and_leaves_the_world_as_it_was(engine: MockEngine):
    sold_out = '{"output": {"error": "FR101 is sold out"}}'
    book = as_message("book_flight", flight_id="FR101", passenger="Ana Silva")
    engine.script("ep.world", [Reply.say(sold_out)])
    env = simulated_env(engine)
    try:
        [(obs, _, _, _, info)] = await play(env, TRAVEL.id, [book])
        tools = env._episode.toolset  # the episode's own tools
        assert tools.world().state == TRAVEL.oracle.state
    finally:
        await env.aclose()
    assert obs[0]["content"] == "error: FR101 is sold out"
    assert info["events"][0]["ok"] is False and info["events"][0]["state_changed"] is False


@pytest.mark.parametrize(
    ("action", "says"),
    [
        pytest.param(as_message("search_flights", origin="BER"), "error: the arguments do not fit", id="missing"),
        pytest.param(
            as_message("book_flight", flight_id="TP541", passenger="Ana", seat="12A"),
            "Additional properties are not allowed",
            id="unexpected-argument",
        ),
        pytest.param(as_message("teleport"), "error: unknown tool 'teleport'; the tools are: search_", id="unknown"),
    ],
)
async def test_the_agents_bad_call_is_an_observation_and_never_reaches_the_world_model(engine, action, says):
    [(obs, _, terminated, _, info)] = await run(engine, [action])
    assert not terminated and not info["infra_failure"]
    assert says in obs[0]["content"]
    assert engine.stats.requests == 0


async def test_the_world_model_keeps_one_conversation_and_its_state_moves_on(engine: MockEngine, tmp_path):
    script_reference(engine, TRAVEL, "ep")
    steps = await run(engine, reference_messages(TRAVEL), writer=TrajectoryWriter(tmp_path))
    assert steps[-1][1] == 1.0
    messages = engine.stats.last_body["messages"]
    # the booking call carries the search call and its answer: the interaction so far
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == GOOD_SEARCH and "Call: book_flight" in messages[3]["content"]
    assert '"passenger": "Ana Silva"' in messages[3]["content"] and "<untrusted>" in messages[3]["content"]
    assert engine.stats.last_body["user"] == "ep.world"
    [booking] = [e for r in read_records(tmp_path) if r.kind == "step" for e in r.events if e.get("state_changed")]
    assert booking["state"]["bookings"] == {"B1": {"flight_id": "TP541", "passenger": "Ana Silva", "price_eur": 212}}
    flights = booking["state"]["flights"]
    assert flights["TP541"]["seats_left"] == 8 and flights["EW820"]["seats_left"] == 3


async def test_state_every_call_shows_the_current_state_with_each_call(engine: MockEngine):
    engine.script("ep.world", [Reply.say(GOOD_SEARCH)])
    toolset = SimulatedToolset(endpoint(engine), config=WorldModelConfig(state_every_call=True))
    await run(engine, [SEARCH], toolset=toolset)
    call = engine.stats.last_body["messages"][-1]["content"]
    assert call.startswith("The world state now:\n{") and '"TP541"' in call


async def test_real_tools_run_in_the_sandbox_and_the_world_model_is_told_what_they_returned(engine: MockEngine):
    task = TASKS.get("fileserver/upload-report")
    script_reference(engine, task, "ep")
    steps = await run(engine, reference_messages(task), task=task)
    assert steps[0][0][0]["content"] == "# March\nRevenue up 4%.\n"  # read_file, from the sandbox
    assert steps[-1][1] == 1.0
    told = engine.stats.last_body["messages"][-1]["content"]
    assert told.startswith("Since your last answer the agent ran real tools:\n<untrusted>\n- read_file(")
    assert "Revenue up 4%." in told and told.index("ran real tools") < told.index("Call: remote_write")


async def test_through_the_gateway_the_world_models_calls_are_recorded_under_its_own_episode(
    engine: MockEngine, tmp_path: Path
):
    store = StoreConfig(str(tmp_path / "gw.jsonl"))
    config = GatewayConfig(upstream=UpstreamConfig(engine.url, engine="vllm"), store=store)
    task = TASKS.get("travel/conference-trip")
    async with Gateway(config) as gateway:
        script_reference(engine, task, "ep")
        routed = ModelEndpoint(model="world", gateway=gateway)
        steps = await run(engine, reference_messages(task), task=task, world=routed)
        assert steps[-1][1] == 1.0
        world, user = gateway.records("ep.world"), gateway.records("ep.user")
        assert len(world) == 2 and len(user) == 3 and all(r.ok and r.completion_token_ids for r in world + user)
        assert gateway.records("ep") == []  # the policy's own episode holds no simulator call
        assert [r.prefix.kind.value for r in world] == ["ROOT", "CLEAN"]  # one conversation, extended


def test_reading_an_answer_finds_the_json_in_fences_prose_and_thinking():
    tool, world = TRAVEL.oracle.world.tool("list_bookings"), TRAVEL.oracle.world
    state = TRAVEL.oracle.state
    for text in (
        '{"output": {"bookings": []}}',
        '<think>{"output": 1}</think>```json\n{"output": {"bookings": []}}\n```',
        'Sure, here it is: {"output": {"bookings": []}} hope that helps',
    ):
        answer = read_answer(text, tool, state, world)
        assert answer.output == {"bookings": []} and answer.state is None, text
    unchanged = read_answer(json.dumps({"output": {"bookings": []}, "state": dict(state)}), tool, state, world)
    assert unchanged.state is None  # a "new" state equal to the old one is no change


async def test_without_a_world_model_a_simulated_call_is_a_configuration_bug_that_raises(engine: MockEngine):
    env = simulated_env(None)
    try:
        with pytest.raises(ValueError, match="Simulated-v0 has no world model"):
            await play(env, TRAVEL.id, [SEARCH])
    finally:
        await env.aclose()


async def test_a_rubric_task_without_a_grader_is_a_configuration_bug(engine: MockEngine):
    task = TASKS.get("calendar/one-on-one")
    script_reference(engine, task, "ep")
    env = simulated_env(engine, grader=None)
    try:
        with pytest.raises(TaskError, match="graded by a rubric: give Simulated-v0 a judge model"):
            await play(env, task.id, reference_messages(task))
    finally:
        await env.aclose()


async def test_a_task_that_is_not_simulated_is_refused_at_reset():
    from boxgym.envs import StaticTaskSet, Task
    from boxgym.judges import ExpectedAnswer

    env = simulated_env(None, tasks=StaticTaskSet([Task("q", "6*7?", ExpectedAnswer("42"))]))
    try:
        with pytest.raises(TaskError, match="task q is not a simulated task"):
            await env.areset(options={"task_id": "q"})
    finally:
        await env.aclose()
