"""The shipped example specs: each task is solved by its reference with the scripted engine playing
the world model (and the user, and the grader), and doing nothing, or the wrong thing, scores 0."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from boxgym.envs import reference_messages
from boxgym.gateway import MockEngine, MockEngineConfig, Reply
from boxgym.simulated import EXAMPLES, WorldTask, reference_replies
from boxgym.trajectories import TrajectoryWriter, read_records

from .play import TASKS, as_message, play, script_reference, simulated_env


@pytest.fixture
async def engine() -> AsyncIterator[MockEngine]:
    async with MockEngine(MockEngineConfig()) as e:
        yield e


def test_the_examples_are_a_calendar_a_file_server_and_a_travel_api_with_users_and_real_tools():
    assert EXAMPLES == ("calendar", "fileserver", "travel")
    oracles = [task.oracle for task in TASKS]
    assert all(isinstance(o, WorldTask) for o in oracles) and len(oracles) == 6
    assert {o.world.id for o in oracles if o.user is not None} == {"calendar", "travel"}
    assert any(tool.real for o in oracles for tool in o.world.tools)
    assert any(o.rubric and o.checks for o in oracles)


@pytest.mark.parametrize("task", list(TASKS), ids=lambda task: task.id)
async def test_each_example_is_solved_by_its_reference(engine: MockEngine, task, tmp_path):
    script_reference(engine, task, "ep")
    env = simulated_env(engine, writer=TrajectoryWriter(tmp_path))
    try:
        steps = await play(env, task.id, reference_messages(task))
    finally:
        await env.aclose()
        env.writer.close()
    _, reward, terminated, truncated, info = steps[-1]
    assert len(steps) == len(task.reference) and terminated and not truncated
    assert reward == 1.0 and info["verdict"]["passed"], info["verdict"]
    assert info["end_reason"] == ("user_ended" if task.oracle.user else "submitted")
    checks = info["verdict"]["checks"]
    assert len(checks) == len(task.oracle.checks) and all(c["passed"] for c in checks)
    replies = reference_replies(task)
    grader_calls = 1 if task.oracle.rubric else 0
    assert engine.stats.requests == len(replies["world"]) + len(replies["user"]) + grader_calls
    costs = info["verdict"]["messages"][-1]
    assert costs.startswith(f"simulators: world model {len(replies['world'])} calls, ")
    assert (f"user model {len(replies['user'])} calls" in costs) == (task.oracle.user is not None)
    # every simulated call's event says what the world model answered in and whether the world moved
    events = [e for record in read_records(tmp_path) if record.kind == "step" for e in record.events]
    simulated = [e for e in events if e.get("simulated")]
    assert len(simulated) == len(replies["world"]) and all(e["attempts"] == 1 for e in simulated)
    assert all(("state" in e) == e["state_changed"] for e in simulated)


@pytest.mark.parametrize("task", list(TASKS), ids=lambda task: task.id)
async def test_doing_nothing_scores_zero_and_the_grader_is_never_asked(engine: MockEngine, task):
    if task.oracle.user is not None:
        engine.script("ep.user", [Reply.say("Oh. Never mind then.\nEND: refused")])
        action = as_message("message_user", message="Sorry, I cannot do that.")
    else:
        action = as_message("submit")
    env = simulated_env(engine)
    try:
        [(_, reward, terminated, _, info)] = await play(env, task.id, [action])
    finally:
        await env.aclose()
    assert terminated and reward == 0.0 and not info["verdict"]["passed"]
    assert info["end_reason"] == ("user_ended" if task.oracle.user else "submitted")
    assert engine.stats.requests == (1 if task.oracle.user else 0)  # no world call, and no grade of a failed state


async def test_a_plausible_wrong_booking_scores_zero(engine: MockEngine):
    task = TASKS.get("travel/cheapest-direct")
    search = reference_replies(task)["world"][0]
    booking = {"flight_id": "LH1166", "passenger": "Ana Silva"}
    booked = json.dumps({
        "output": {"booking": {"booking_id": "B1", **booking, "price_eur": 160}},
        "state_patch": {"flights": {"LH1166": {"seats_left": 13}}, "bookings": {"B1": booking}},
    })  # fmt: skip
    engine.script("ep.world", [Reply.say(search), Reply.say(booked)])
    actions = [
        as_message("search_flights", origin="BER", destination="LIS", date="2025-04-02"),
        as_message("book_flight", flight_id="LH1166", passenger="Ana Silva"),  # cheapest, but it stops in FRA
        as_message("submit"),
    ]
    env = simulated_env(engine)
    try:
        steps = await play(env, task.id, actions)
    finally:
        await env.aclose()
    verdict = steps[-1][-1]["verdict"]
    assert steps[-1][1] == 0.0
    assert [c["passed"] for c in verdict["checks"]] == [False, True]  # booked once, but not TP541
