"""The gateway's token view: the shared builder on the records, what is skipped, and the export CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from openai import AsyncOpenAI

from boxgym.gateway import CallError, Gateway, LossRule, Prefix, read_calls, training_view, view_to_json

from .conftest import TOOLS
from .test_consistency import rec


def _with(r, **changes):
    return type(r)(**{**{f: getattr(r, f) for f in r.__slots__}, **changes})


def test_records_that_cannot_be_placed_are_skipped_with_the_reason() -> None:
    c1 = rec("c1", [1, 2, 3], [10, 99], logprobs=(-0.1, -0.2))
    fork = rec("f", [1, 2, 3, 10, 50], [30, 99], logprobs=(-1.0, -2.0))
    failed = _with(rec("bad", [1], [2]), status=502, error=CallError(502, "upstream_error", "x", "upstream"))
    gone = _with(rec("gone", [1, 2, 3], [10, 99]), delivered=False)
    replay = _with(rec("again", [1, 2, 3], [10, 99]), replay_of="c1")
    view = training_view([c1, failed, fork, gone, replay])
    root, branch = view.sequences
    assert root.token_ids == (1, 2, 3, 10, 99) and root.call_ids == ("c1",)
    assert (branch.parent, branch.fork_at, branch.start) == (0, 4, Prefix.REALIGN)
    assert branch.token_ids == (1, 2, 3, 10, 50, 30, 99)
    assert branch.loss_mask == (0, 0, 0, 0, 0, 1, 1)  # 10 carries its loss in the root
    assert branch.logprobs == (0.0, 0.0, 0.0, 0.0, 0.0, -1.0, -2.0)
    assert [c for c, _ in view.skipped] == ["bad", "gone", "again"]
    assert [why.split(":")[0] for _, why in view.skipped] == [
        "failed",
        "the client never received it",
        "an SDK retry answered from c1",
    ]
    per_branch = training_view([c1, failed, fork], loss_rule=LossRule.PER_BRANCH)
    assert per_branch.sequences[1].loss_mask == (0, 0, 0, 1, 0, 1, 1) and per_branch.loss_rule is LossRule.PER_BRANCH


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
    assert view == json.loads(json.dumps(view_to_json(training_view(read_calls(store_path), "ep-x"))))
    assert view["loss_rule"] == "once"
    main, fork = view["sequences"]
    records = gateway.records("ep-x")
    # the main branch is the second call's prompt + completion, with every sampled token masked in
    assert main["token_ids"] == list(records[1].prompt_token_ids + records[1].completion_token_ids)
    sampled = [i for i, m in enumerate(main["loss_mask"]) if m]
    assert [main["token_ids"][i] for i in sampled] == list(
        records[0].completion_token_ids + records[1].completion_token_ids
    )
    assert [main["logprobs"][i] for i in sampled] == list(records[0].logprobs + records[1].logprobs)
    assert all(main["logprobs"][i] == 0.0 for i, m in enumerate(main["loss_mask"]) if not m)
    assert fork["start"] == "FORK" and fork["fork_at"] == records[2].prefix.position and fork["parent"] == 0
    assert fork["call_ids"] == [records[2].call_id] and sum(fork["loss_mask"]) == len(records[2].completion_token_ids)
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
