"""The training view: one sequence per branch, mask 1 exactly on sampled tokens, FORK boundaries."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from openai import AsyncOpenAI

from boxgym.gateway import Gateway, Prefix, read_records, training_view, view_to_json

from .conftest import TOOLS
from .test_consistency import rec


def test_clean_chain_is_one_branch_with_mask_on_completions() -> None:
    c1 = rec("c1", [1, 2, 3], [10, 99], logprobs=(-0.1, -0.2))
    c2 = _with(rec("c2", [1, 2, 3, 10, 99, 7], [20, 21, 99], logprobs=(-0.3, -0.4, -0.5)), prefix=_clean("c1"))
    view = training_view([c1, c2])
    [b] = view.branches
    assert b.token_ids == (1, 2, 3, 10, 99, 7, 20, 21, 99)
    assert b.loss_mask == (0, 0, 0, 1, 1, 0, 1, 1, 1)
    assert b.logprobs == (0.0, 0.0, 0.0, -0.1, -0.2, 0.0, -0.3, -0.4, -0.5)
    assert b.call_ids == ("c1", "c2") and b.start is Prefix.ROOT and b.fork_at is None


def _clean(parent: str):
    from boxgym.gateway import PrefixCheck

    return PrefixCheck(Prefix.CLEAN, parent)


def _with(r, **changes):
    return type(r)(**{**{f: getattr(r, f) for f in r.__slots__}, **changes})


def test_fork_starts_a_branch_sharing_the_prefix_and_skips_what_cannot_be_placed() -> None:
    from boxgym.gateway import CallError, PrefixCheck

    c1 = rec("c1", [1, 2, 3], [10, 99], logprobs=(-0.1, -0.2))
    fork = _with(rec("f", [1, 2, 3, 10, 50], [30, 99], logprobs=(-1.0, -2.0)), prefix=PrefixCheck(Prefix.FORK, "c1", 4))
    failed = _with(rec("bad", [1], [2]), status=502, error=CallError(502, "upstream_error", "x", "upstream"))
    gone = _with(rec("gone", [1, 2, 3], [10, 99]), delivered=False)
    replay = _with(rec("again", [1, 2, 3], [10, 99]), replay_of="c1")
    view = training_view([c1, failed, fork, gone, replay])
    root, branch = view.branches
    assert root.token_ids == (1, 2, 3, 10, 99)
    assert (branch.parent_branch, branch.fork_at, branch.start) == (0, 4, Prefix.FORK)
    assert branch.token_ids == (1, 2, 3, 10, 50, 30, 99)
    assert branch.loss_mask == (0, 0, 0, 1, 0, 1, 1)  # 10 was sampled in this context; 50 was not
    assert branch.logprobs == (0.0, 0.0, 0.0, -0.1, 0.0, -1.0, -2.0)
    assert [c for c, _ in view.skipped] == ["bad", "gone", "again"]


async def test_export_cli_from_a_real_run(gateway: Gateway, store_path: Path) -> None:
    messages: list[dict] = [{"role": "user", "content": "go"}]
    async with AsyncOpenAI(base_url=gateway.base_url_for("ep-x"), api_key="x", max_retries=0) as c:
        r = await c.chat.completions.create(model="m", messages=messages, tools=TOOLS)
        msg = r.choices[0].message
        messages += [
            msg.model_dump(exclude_none=True, include={"role", "content", "tool_calls"}),
            {"role": "tool", "tool_call_id": msg.tool_calls[0].id, "content": "ok"},
        ]
        await c.chat.completions.create(model="m", messages=messages, tools=TOOLS)
        await c.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "gone"}, *messages[1:]], tools=TOOLS
        )
    out = subprocess.run(
        [sys.executable, "-m", "boxgym", "gateway", "export", "--store", str(store_path), "--episode", "ep-x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    view = json.loads(out.stdout)
    assert view == view_to_json(training_view(read_records(store_path), "ep-x"))
    main, fork = view["branches"]
    records = gateway.records("ep-x")
    # the main branch is the second call's prompt + completion, with every sampled token masked in
    assert main["token_ids"] == list(records[1].prompt_token_ids + records[1].completion_token_ids)
    sampled = [i for i, m in enumerate(main["loss_mask"]) if m]
    assert [main["token_ids"][i] for i in sampled] == list(
        records[0].completion_token_ids + records[1].completion_token_ids
    )
    assert [main["logprobs"][i] for i in sampled] == list(records[0].logprobs + records[1].logprobs)
    assert all(main["logprobs"][i] == 0.0 for i, m in enumerate(main["loss_mask"]) if not m)
    assert fork["start"] == "FORK" and fork["fork_at"] == records[2].prefix.position and fork["parent_branch"] == 0
    assert not any(math.isnan(x) for x in main["logprobs"])


def test_export_cli_unknown_episode_fails(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    out = subprocess.run(
        [sys.executable, "-m", "boxgym", "gateway", "export", "--store", str(path), "--episode", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "no records" in out.stderr
