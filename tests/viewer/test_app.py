"""The viewer's API on real run directories: the table, an episode, tokens, diffs, live updates."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from boxgym.errors import ReplayError
from boxgym.trajectories import EndReason, EpisodeEnd, EpisodeStart, Outcome, TrajectoryWriter
from boxgym.viewer import create_app

from .runs import step, synthetic, with_gateway


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> Any:
    return await aiohttp_client(create_app([synthetic(tmp_path / "run")], interval=0.05))


async def get(client: Any, path: str, status: int = 200) -> Any:
    r = await client.get(path)
    assert r.status == status, await r.text()
    return await r.json() if status == 200 else await r.text()


async def test_the_table_pages_sorts_and_filters(client: Any) -> None:
    page = await get(client, "/api/runs/0/episodes?limit=10")
    assert page["total"] == 31 and len(page["rows"]) == 10  # 30 + the tree's root; sub-agents hidden
    assert [r["episode_id"] for r in page["rows"][:2]] == ["ep-000", "ep-001"]  # by start time
    assert page["facets"]["env_id"] == {"boxgym/SQL-v0": 15, "boxgym/Code-v0": 16}
    by_steps = await get(client, "/api/runs/0/episodes?sort=steps&order=desc&limit=1")
    assert by_steps["rows"][0]["steps"] == 4
    failed = await get(client, "/api/runs/0/episodes?failed=1&limit=100")
    ids = {r["episode_id"] for r in failed["rows"]}
    assert ids == {f"ep-{i:03d}" for i in range(30) if i % 3 == 0 or i % 5 == 4}
    infra = await get(client, "/api/runs/0/episodes?outcome=infra_failure&env=boxgym/Code-v0")
    assert {r["episode_id"] for r in infra["rows"]} == {"ep-009", "ep-019", "ep-029"}
    assert infra["rows"][0]["error"] == "SandboxBroken: died" and infra["rows"][0]["reward"] is None
    text = await get(client, "/api/runs/0/episodes?q=task/1&subagents=1")
    assert {r["task_id"] for r in text["rows"]} == {"task/1"} | {f"task/1{i}" for i in range(10)}
    assert (await get(client, "/api/runs/0/episodes?subagents=1"))["total"] == 34
    assert "sort by one of" in await get(client, "/api/runs/0/episodes?sort=nope", status=400)
    assert "no run" in await get(client, "/api/runs/7/episodes", status=404)


async def test_an_episode_has_its_steps_verdict_group_and_subagent_tree(client: Any) -> None:
    page = await get(client, "/api/runs/0/episodes/ep-007")
    assert [s["index"] for s in page["steps"]] == [0, 1, 2, 3]
    assert page["steps"][2]["observation"][0]["content"] == "out of cmd 7.2"
    assert page["summary"]["reward"] == 1.0 and page["end"]["reason"] == "submitted"
    assert [g["episode_id"] for g in page["group"]] == ["ep-006", "ep-007"]
    tree = (await get(client, "/api/runs/0/episodes/root"))["tree"]
    kids = {c["subagent"]: c for c in tree["children"]}
    assert kids["slow"]["critical"] and not kids["fast"]["critical"] and not kids["judge"]["critical"]
    assert tree["critical_steps"] == 3 + 3  # the root's 3 steps + the slowest sub-agent of step 1
    assert "no episode" in await get(client, "/api/runs/0/episodes/nope", status=404)


async def test_two_episodes_side_by_side_from_their_first_divergence(client: Any) -> None:
    diff = await get(client, "/api/diff?a=0/ep-007&b=0/ep-011")
    assert diff["first_divergence"]["step"] == 0 and "cmd 7.0" in diff["first_divergence"]["diff"]
    assert len(diff["a"]["steps"]) == len(diff["b"]["steps"]) == 4
    same = await get(client, "/api/diff?a=0/ep-007&b=0/ep-007")
    assert same["first_divergence"] is None
    assert "RUN/EPISODE_ID" in await get(client, "/api/diff?a=ep-007&b=0/ep-007", status=400)


async def test_a_run_being_written_updates_live(client: Any, tmp_path: Path) -> None:
    events = await client.get("/api/events")
    with TrajectoryWriter(tmp_path / "run") as w:
        w.write(EpisodeStart("late", "boxgym/Code-v0", "task/late", time=3000.0))
        w.write(step("late", 0, "first"))
    update = await asyncio.wait_for(_next_event(events), 10)
    assert "late" in update["changed"]["0"]
    page = await get(client, "/api/runs/0/episodes?q=late")
    assert page["rows"][0]["reason"] is None and page["rows"][0]["steps"] == 1  # still running
    with TrajectoryWriter(tmp_path / "run") as w:
        w.write(step("late", 1, "second"))
        w.write(EpisodeEnd("late", Outcome.TERMINATED, 0.5, 2, EndReason.SUBMITTED, time=3001.0))
    await asyncio.wait_for(_next_event(events), 10)
    episode = await get(client, "/api/runs/0/episodes/late")
    assert len(episode["steps"]) == 2 and episode["summary"]["reward"] == 0.5
    events.close()


async def _next_event(response: Any) -> dict[str, Any]:
    while True:
        line = (await response.content.readline()).decode()
        if line.startswith("data: "):
            return json.loads(line[6:])


async def test_a_rewritten_file_is_indexed_again(client: Any, tmp_path: Path) -> None:
    with TrajectoryWriter(tmp_path / "small") as w:
        w.write(EpisodeStart("only", "boxgym/SQL-v0", "t"))
    (tmp_path / "run" / "trajectories.jsonl").write_bytes((tmp_path / "small" / "trajectories.jsonl").read_bytes())
    for _ in range(400):  # up to 20 s: the indexer polls, and a loaded CI machine is slow
        page = await get(client, "/api/runs/0/episodes")
        if page["total"] == 1:
            break
        await asyncio.sleep(0.05)
    assert [r["episode_id"] for r in page["rows"]] == ["only"]


async def test_files_outside_the_run_are_not_served(client: Any, tmp_path: Path) -> None:
    (tmp_path / "run" / "shot.png").write_bytes(b"\x89PNG...")
    (tmp_path / "secret.txt").write_text("no")
    assert (await client.get("/api/runs/0/file?path=shot.png")).status == 200
    assert (await client.get("/api/runs/0/file?path=../secret.txt")).status == 404
    assert (await client.get("/api/runs/0/file?path=/etc/passwd")).status == 404


async def test_the_front_end_is_served(client: Any) -> None:
    page = await client.get("/")
    assert page.status == 200 and "/static/app.js" in await page.text()
    assert (await client.get("/static/app.js")).headers["Content-Type"].startswith("text/javascript")
    assert (await client.get("/static/../app.py")).status == 404


def test_a_directory_that_is_no_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="not a run directory"):
        create_app([tmp_path])


async def test_tokens_come_from_the_gateway_records_joined_to_steps(aiohttp_client: Any, tmp_path: Path) -> None:
    run = await with_gateway(tmp_path / "run", tmp_path)
    client = await aiohttp_client(create_app([run]))
    rows = (await get(client, "/api/runs/0/episodes"))["rows"]
    code = next(r for r in rows if r["task_id"] == "code")
    data = await get(client, f"/api/runs/0/episodes/{code['episode_id']}/tokens")
    calls = data["calls"]
    assert [c["prefix"]["kind"] for c in calls] == ["ROOT", "CLEAN", "CLEAN"]
    assert [c["step"] for c in calls] == [0, 1, 2]
    first, second = calls[0], calls[1]
    assert first["loss_mask"] == 1 and first["new_prompt_tokens"] == first["prompt_tokens"] > 100
    assert second["shared_prompt_tokens"] == first["prompt_tokens"] + len(first["completion"])
    text = "".join(t["text"] for t in first["completion"])
    assert "write_file" in text and all(t["logprob"] is not None and t["logprob"] <= 0 for t in first["completion"])
    assert data["prompt"][0]["role"] == "system" and data["prompt"][-1]["content"].startswith("Write add")

