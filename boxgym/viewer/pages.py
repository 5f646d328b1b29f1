"""What the viewer's pages show, as JSON: an episode, its model calls' tokens, two episodes compared.

Built from typed records (:mod:`boxgym.trajectories`, :class:`boxgym.gateway.CallRecord`); the
front end only lays them out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..gateway.export import skip_reason
from ..gateway.records import CallRecord, Prefix
from ..replay.diff import DEFAULT_NORMALISERS, compare_steps
from ..replay.rundir import call_index
from ..trajectories import EpisodeEnd, EpisodeStart, Record, StepRecord

__all__ = ["episode_json", "tokens_json", "diff_json", "prompt_of", "critical_path"]

_JUDGE_ENV = "agent_judge"  # judge episodes are children, but not sub-agents (not on the critical path)


def _split(records: Sequence[Record]) -> tuple[EpisodeStart | None, list[StepRecord], EpisodeEnd | None]:
    start, end = None, None
    steps: dict[int, StepRecord] = {}
    for record in records:
        if isinstance(record, EpisodeStart):
            start = start or record
        elif isinstance(record, StepRecord):
            steps[record.index] = record
        else:
            end = record
    return start, [steps[i] for i in sorted(steps)], end


def _step_json(step: StepRecord) -> dict[str, Any]:
    return {
        "index": step.index,
        "action": step.action,
        "tool_calls": step.tool_calls,
        "observation": step.observation,
        "reward": step.reward,
        "terminated": step.terminated,
        "truncated": step.truncated,
        "timings": step.timings,
        "events": step.events,
        "info": step.info,
        "call_id": step.call_id,
        "weight_version": step.weight_version,
    }


def _verdict(steps: Sequence[StepRecord], end: EpisodeEnd | None) -> dict[str, Any] | None:
    for step in reversed(steps):
        verdict = step.info.get("verdict") if isinstance(step.info, dict) else None
        if isinstance(verdict, dict):
            return verdict
    verdict = end.meta.get("verdict") if end is not None and isinstance(end.meta, dict) else None
    return verdict if isinstance(verdict, dict) else None


def critical_path(tree: dict[str, Any]) -> int:
    """PARL critical steps of a tree node (``steps`` and ``children``, each with ``spawned_at``),
    marking on each child whether it is the longest of its step (``critical``)."""
    longest: dict[int, dict[str, Any]] = {}
    for child in tree.get("children", ()):
        child["critical_steps"] = critical_path(child)
        if child.get("env_id") == _JUDGE_ENV:
            child["critical"] = False
            continue
        step = child.get("spawned_at") if child.get("spawned_at") is not None else -1
        if step not in longest or child["critical_steps"] > longest[step]["critical_steps"]:
            longest[step] = child
    for child in tree.get("children", ()):
        child.setdefault("critical", any(child is c for c in longest.values()))
    tree["critical_steps"] = (tree.get("steps") or 0) + sum(c["critical_steps"] for c in longest.values())
    return tree["critical_steps"]


def episode_json(summary: dict[str, Any], records: Sequence[Record], tree: dict[str, Any]) -> dict[str, Any]:
    start, steps, end = _split(records)
    return {
        "summary": summary,
        "start": None if start is None else {"seed": start.seed, "meta": start.meta, "time": start.time},
        "end": None
        if end is None
        else {"outcome": end.outcome.value, "reason": None if end.reason is None else end.reason.value,
              "reward": end.reward, "reward_parts": end.reward_parts, "error": end.error, "meta": end.meta},  # fmt: skip
        "steps": [_step_json(s) for s in steps],
        "verdict": _verdict(steps, end),
        "tree": tree,
    }


def prompt_of(calls: Sequence[CallRecord]) -> list[dict[str, Any]] | None:
    """The messages before the model's first answer, as the first recorded call sent them."""
    for call in calls:
        messages = (call.request or {}).get("messages")
        if isinstance(messages, list):
            head = []
            for message in messages:
                if isinstance(message, dict) and message.get("role") == "assistant":
                    break
                head.append(message)
            return head
    return None


def _token_texts(call: CallRecord, n: int) -> list[str] | None:
    """Each completion token's text as the engine showed it (for display only: identity is the id)."""
    choice = ((call.response or {}).get("choices") or [{}])[0]
    content = ((choice or {}).get("logprobs") or {}).get("content") if isinstance(choice, dict) else None
    if isinstance(content, list) and len(content) == n and all(isinstance(e, dict) for e in content):
        return [str(e.get("token", "")) for e in content]
    return None


def tokens_json(calls: Sequence[CallRecord], steps: Sequence[StepRecord], *, max_prompt_ids: int = 4000) -> dict[str, Any]:
    """Per call: its prefix verdict, the prompt tokens it added (loss mask 0) and its completion
    tokens with their logprobs (loss mask 1 where the call is training data)."""
    by_id = call_index(calls)
    step_of = {}
    for step in steps:
        if step.call_id is not None and step.call_id in by_id:
            step_of[by_id[step.call_id].call_id] = step.index
    ends: dict[str, int] = {}
    out = []
    for call in calls:
        prompt = call.prompt_token_ids or ()
        completion = call.completion_token_ids or ()
        skipped = skip_reason(call)
        parent = call.prefix.parent_call_id
        shared = 0
        if call.prefix.kind is Prefix.CLEAN and parent in ends:
            shared = ends[parent]
        elif call.prefix.position is not None:
            shared = call.prefix.position
        ends[call.call_id] = len(prompt) + len(completion)
        lps = call.logprobs or ()
        texts = _token_texts(call, len(completion))
        new_prompt = prompt[shared:]
        out.append({
            "call_id": call.call_id,
            "step": step_of.get(call.call_id),
            "prefix": {"kind": call.prefix.kind.value, "parent": parent, "position": call.prefix.position},
            "status": call.status,
            "skipped": skipped,
            "weight_version": call.weight_version,
            "finish_reason": call.finish_reason,
            "token_source": call.token_source,
            "prompt_tokens": len(prompt),
            "shared_prompt_tokens": shared,
            "new_prompt_ids": list(new_prompt[:max_prompt_ids]),
            "new_prompt_tokens": len(new_prompt),
            "completion": [
                {"id": t, "text": texts[i] if texts else None,
                 "logprob": lps[i] if i < len(lps) and math.isfinite(lps[i]) else None}  # fmt: skip
                for i, t in enumerate(completion)
            ],
            "loss_mask": 0 if skipped else 1,
        })  # fmt: skip
    return {"calls": out}


def _step_view(step: StepRecord) -> dict[str, Any]:
    return {"action": step.action, "observation": step.observation}


def diff_json(
    a: dict[str, Any], a_records: Sequence[Record], b: dict[str, Any], b_records: Sequence[Record]
) -> dict[str, Any]:
    """Two episodes side by side, steps aligned, with the first step where action or observation
    differs after the replay normalisations."""
    _, a_steps, _ = _split(a_records)
    _, b_steps, _ = _split(b_records)
    comparison = compare_steps(
        [_step_view(s) for s in a_steps],
        [_step_view(s) for s in b_steps],
        normalisers=DEFAULT_NORMALISERS,
        labels=(str(a.get("episode_id")), str(b.get("episode_id"))),
    )
    first = comparison.first_divergence
    shared = None
    if b.get("branch_episode") == a.get("episode_id"):
        shared = b.get("shared_steps")
    elif a.get("branch_episode") == b.get("episode_id"):
        shared = a.get("shared_steps")
    return {
        "a": {"summary": a, "steps": [_step_json(s) for s in a_steps]},
        "b": {"summary": b, "steps": [_step_json(s) for s in b_steps]},
        "first_divergence": None
        if first is None
        else {"step": first.index, "where": first.where, "diff": first.diff},
        "shared_steps": shared,
    }
