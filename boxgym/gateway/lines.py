"""The store file's line format (schema 2): one JSON object per line, each a call record or an
episode's close marker, linear in the length of an episode.

A record whose prompt extends an earlier call of its episode (CLEAN, REALIGN, and FORK past its
first token) stores that prompt as a reference to the earlier call plus what is new::

    "prompt_delta": {"base": <call id>, "keep": N, "ids": [...]}
        prompt = (base.prompt_token_ids + base.completion_token_ids)[:N] + ids

and its request as the earlier call's request with the changes: list- and string-valued fields
(``messages``, ``input``, ``prompt``) keep their common prefix with the base's and add the rest::

    "request_delta": {"base": <call id>, "keep": {"messages": K}, "set": {...}, "unset": [...]}

Without this every record repeated the whole conversation, and a 100-turn episode took the
square of its length. Fields at their default (``None``, ``False``, ``""``) are left out, and so
is ``parent_call_id`` when it is ``prefix.parent_call_id`` (as the gateway writes it).
:func:`decode_line` rebuilds the exact record from the line and the episode's earlier records;
:func:`read_calls` reads a file back.

Every line starts with ``{"episode_id":<the id>,`` so that the store's index is built without
parsing whole lines; a close marker follows it with ``"kind":"episode_closed"``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..trajectories.tokens import common_prefix_len
from ._json import dumps, loads
from .parts import may_hold, store_files
from .records import SCHEMA_VERSION, CallRecord, record_from_json

__all__ = ["encode_call", "encode_closed", "decode_line", "episode_of_line", "read_calls", "CLOSED"]

CLOSED = "episode_closed"

#: request fields that grow turn after turn, stored as a common prefix with the base's plus the rest
_GROWING = ("messages", "input", "prompt")


def encode_call(r: CallRecord, base: CallRecord | None) -> bytes:
    """One line for ``r``; ``base`` is the earlier record of its episode that its prompt extends
    (``r.prefix.parent_call_id``), already in the file, or None."""
    d: dict[str, Any] = {"episode_id": r.episode_id, "schema": r.schema, "call_id": r.call_id, "endpoint": r.endpoint}
    d["status"] = r.status
    if r.model is not None:
        d["model"] = r.model
    if r.stream:
        d["stream"] = True
    p = r.prefix
    prefix: dict[str, Any] = {"kind": p.kind.value}
    if p.parent_call_id is not None:
        prefix["parent_call_id"] = p.parent_call_id
    if p.position is not None:
        prefix["position"] = p.position
    d["prefix"] = prefix
    if r.parent_call_id != p.parent_call_id:
        d["parent_call_id"] = r.parent_call_id
    _put_prompt(d, r, base)
    if r.completion_token_ids is not None:
        d["completion_token_ids"] = r.completion_token_ids
    if r.logprobs is not None:
        d["logprobs"] = r.logprobs
    if r.token_source != "unavailable":
        d["token_source"] = r.token_source
    if r.finish_reason is not None:
        d["finish_reason"] = r.finish_reason
    if r.weight_version is not None:
        d["weight_version"] = r.weight_version
    if r.replay_of is not None:
        d["replay_of"] = r.replay_of
    if r.request_hash is not None:
        d["request_hash"] = r.request_hash
    if r.engine:
        d["engine"] = r.engine
    if r.mode:
        d["mode"] = r.mode
    if not r.delivered:
        d["delivered"] = False
    _put_request(d, r, base)
    if r.response is not None:
        d["response"] = r.response
    t = r.timings
    timings = {"started_at": t.started_at}
    if t.upstream_ms is not None:
        timings["upstream_ms"] = t.upstream_ms
    if t.first_token_ms is not None:
        timings["first_token_ms"] = t.first_token_ms
    if t.total_ms is not None:
        timings["total_ms"] = t.total_ms
    d["timings"] = timings
    e = r.error
    if e is not None:
        d["error"] = {"status": e.status, "type": e.type, "message": e.message, "origin": e.origin}
    return dumps(d) + b"\n"


def _put_prompt(d: dict[str, Any], r: CallRecord, base: CallRecord | None) -> None:
    prompt = r.prompt_token_ids
    if prompt is None:
        return
    keep = 0
    if base is not None and base.prompt_token_ids is not None and base.completion_token_ids is not None:
        # the prefix check measured it: CLEAN extends all of the base, the others share `position`
        keep = r.prefix.position if r.prefix.position is not None else len(base.prompt_token_ids) + len(
            base.completion_token_ids
        )
    if keep > 0:
        d["prompt_delta"] = {"base": base.call_id, "keep": keep, "ids": prompt[keep:]}  # type: ignore[union-attr]
    else:
        d["prompt_token_ids"] = prompt


def _put_request(d: dict[str, Any], r: CallRecord, base: CallRecord | None) -> None:
    request = r.request
    if request is None:
        return
    old = base.request if base is not None else None
    if old is None:
        d["request"] = request
        return
    keep: dict[str, int] = {}
    changed: dict[str, Any] = {}
    for key, value in request.items():
        if key not in old:
            changed[key] = value
            continue
        was = old[key]
        if key in _GROWING and type(value) is type(was) and isinstance(value, (list, str)):
            n = common_prefix_len(value, was)
            if n:
                keep[key] = n
                changed[key] = value[n:]
                continue
        if value != was:
            changed[key] = value
    if not keep:
        d["request"] = request  # nothing grew from the base: the delta would not be smaller
        return
    delta: dict[str, Any] = {"base": base.call_id, "keep": keep, "set": changed}  # type: ignore[union-attr]
    unset = [key for key in old if key not in request]
    if unset:
        delta["unset"] = unset
    d["request_delta"] = delta


def encode_closed(episode_id: str, at: float) -> bytes:
    return dumps({"episode_id": episode_id, "kind": CLOSED, "schema": SCHEMA_VERSION, "at": at}) + b"\n"


def decode_line(d: dict[str, Any], earlier: Mapping[str, CallRecord]) -> CallRecord:
    """The record of a decoded call line; ``earlier`` maps call ids to the episode's records before it."""
    delta = d.pop("prompt_delta", None)
    if delta is not None:
        base = _base(earlier, delta["base"], d)
        assert base.prompt_token_ids is not None and base.completion_token_ids is not None
        keep = delta["keep"]
        head = (base.prompt_token_ids + base.completion_token_ids)[:keep]
        if len(head) != keep:
            raise ValueError(f"record {d.get('call_id')}: its base {delta['base']} is shorter than {keep} tokens")
        d["prompt_token_ids"] = head + tuple(delta["ids"])
    delta = d.pop("request_delta", None)
    if delta is not None:
        old = _base(earlier, delta["base"], d).request or {}
        request = {k: v for k, v in old.items() if k not in delta.get("unset", ())}
        keep = delta["keep"]
        for key, value in delta["set"].items():
            request[key] = old[key][: keep[key]] + value if key in keep else value
        d["request"] = request
    d.setdefault("parent_call_id", (d.get("prefix") or {}).get("parent_call_id"))
    return record_from_json(d)


def _base(earlier: Mapping[str, CallRecord], call_id: str, d: dict[str, Any]) -> CallRecord:
    base = earlier.get(call_id)
    if base is None:
        raise ValueError(f"record {d.get('call_id')} refers to {call_id}, which is not earlier in its episode")
    return base


def episode_of_line(data: bytes, start: int = 0) -> tuple[str, bool] | None:
    """The episode id of the line at ``data[start:]`` and whether it is a close marker, read
    from its first bytes (no full parse); None for a line that does not start as the format says."""
    if not data.startswith(_HEAD, start):
        return None
    i = start + len(_HEAD)
    while True:  # the end of the JSON string: a quote not escaped by an odd run of backslashes
        i = data.find(b'"', i)
        if i < 0:
            return None
        j = i
        while data[j - 1] == 0x5C:  # backslash
            j -= 1
        if (i - j) % 2 == 0:
            break
        i += 1
    raw = data[start + len(_HEAD) - 1 : i + 1]
    episode = raw[1:-1].decode() if b"\\" not in raw else loads(raw)
    return episode, data.startswith(_CLOSED_AFTER_ID, i + 1)


_HEAD = b'{"episode_id":"'
_CLOSED_AFTER_ID = b',"kind":"' + CLOSED.encode() + b'"'


def read_calls(path: str | os.PathLike[str], episode_id: str | None = None) -> Iterator[CallRecord]:
    """Yield every complete call record of a store (of one episode, if given), rebuilt.

    ``path`` names a store file, or a store written by several workers (``--workers N``): then
    every worker's part is read, file after file (for one episode, only the part of its owner).
    A torn last line (a crash mid-write) is skipped. Lines of schema 1 (every record whole) are
    read as they are.
    """
    files = store_files(path) or (Path(path),)  # none: open() says the store is not there
    for file in files:
        if episode_id is None or may_hold(file, episode_id):
            yield from _read_file(file, episode_id)


def _read_file(path: Path, episode_id: str | None) -> Iterator[CallRecord]:
    earlier: dict[str, dict[str, CallRecord]] = {}  # episode -> call id -> record
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                return
            if episode_id is not None:
                head = episode_of_line(raw)
                if head is not None and head[0] != episode_id:
                    continue  # another episode's line: not even parsed
            d = loads(raw)
            if d.get("kind") == CLOSED:
                earlier.pop(d["episode_id"], None)  # a closed episode is never a base again
                continue
            if episode_id is not None and d.get("episode_id") != episode_id:
                continue
            known = earlier.setdefault(d["episode_id"], {})
            record = decode_line(d, known)
            known[record.call_id] = record
            yield record
