"""Append-only, crash-safe trajectory writing and reading.

One ``O_APPEND`` file per run. Two ways to write, with one guarantee each:

* :meth:`TrajectoryWriter.write` hands the record to the OS (one ``os.write`` of
  one line) before it returns.
* :meth:`TrajectoryWriter.write_soon` encodes the record at once and queues the
  line; the queue is handed to the OS in one ``os.write`` by a callback on the
  running event loop, scheduled by the first line queued while none is pending
  (and by every ``_CHUNK`` lines, written at once). Any coroutine that queued a
  record and then awaits something that yields resumes only after that callback
  ran (it was scheduled before the record was queued, and the loop runs
  callbacks in the order they were scheduled), and
  :meth:`flush` hands the queue over at once for code that must not rely on a
  yield. The rollout manager calls ``flush`` before an episode's next step
  whenever anything is queued, so "every step's record is in the OS's hands
  before that episode's next step runs" holds in both modes; ``write_soon``
  only amortizes the system call over every episode that stepped in the same
  loop round (100k episodes: one write instead of 100k).

Either way lines from concurrent episodes never interleave inside a line, a
record survives a crash of the process once handed over, and ``fsync=True``
also makes it survive a crash of the machine, at a large cost per write.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
from collections import defaultdict
from collections.abc import Iterator
from json.encoder import c_make_encoder  # type: ignore[attr-defined]
from json.encoder import encode_basestring_ascii as _estr  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

from .images import ImageStore, has_images
from .records import SCHEMA_VERSION, EpisodeEnd, EpisodeStart, Outcome, Record, StepRecord, from_json, to_json

__all__ = ["TrajectoryWriter", "encode_record", "read_episodes", "read_records"]

FILENAME = "trajectories.jsonl"
_NO_EVENTS: list[Any] = []
# Hand the queue over early once it holds this many lines (~120 KB): one system call per 256
# records costs nothing, while a whole loop round of 100k episodes in one buffer is ~50 MB of
# fresh memory per round (the allocator maps and unmaps it, and every page faults in).
_CHUNK = 256


def _default(obj: object) -> object:
    # Enums, tuples of records and anything else JSON does not know become strings
    # rather than losing the whole record.
    if hasattr(obj, "value"):
        return obj.value
    return repr(obj)


# Built once: ``json.dumps`` with any non-default argument builds a new encoder per call, and
# even a prebuilt ``JSONEncoder.encode`` builds a C encoder per call. This one is built once and
# skips the circular-reference bookkeeping (a cycle ends in RecursionError; :func:`_enc` then
# lets the checking encoder raise its usual ValueError). Same output as ``json.dumps(...,
# separators=(",", ":"), default=_default)``.
_checked = json.JSONEncoder(separators=(",", ":"), default=_default).encode
_c_encode = None if c_make_encoder is None else c_make_encoder(None, _default, _estr, None, ":", ",", False, False, True)


def _enc(value: object) -> str:
    if _c_encode is None:  # no C accelerator (not CPython)
        return _checked(value)
    if value is None:
        return "null"
    if type(value) is str:
        return _estr(value)
    try:
        return "".join(_c_encode(value, 0))
    except RecursionError:
        return _checked(value)


def _bool(value: object) -> str:
    return "true" if value is True else "false" if value is False else _enc(value)


def _float(value: object) -> str:
    if type(value) is float and math.isfinite(value):
        return repr(value)  # what the JSON encoder writes for a finite float
    return _enc(value)


def _enc_action_with(action: dict[str, Any], tool_calls: list[Any], calls: str) -> str:
    # A step record holds the assistant message's tool calls twice: inside "action" and as
    # "tool_calls". Here the message's top level is assembled by hand around ``calls`` (the
    # calls already encoded), so that its largest part goes through the encoder once. The
    # output is the encoder's for the whole message: items in order, "key":value, no spaces;
    # a key that is not a str (which the encoder would convert or refuse) takes the generic path.
    parts = []
    for key, value in action.items():
        if type(key) is not str:
            return _enc(action)
        parts.append(f"{_estr(key)}:{calls if value is tool_calls else _enc(value)}")
    return "{" + ",".join(parts) + "}"


def _step_line(
    episode_id: str,
    index: int,
    action: object,
    tool_calls: list[Any],
    observation: object,
    reward: object,
    terminated: object,
    truncated: object,
    timings: str,
    events: list[Any],
    info: dict[str, Any],
    weight_version: object,
    call_id: object,
) -> str:
    # The hot record of a run, assembled by hand: the same line that encoding ``to_json(record)``
    # gives (same keys, same order, same escaping), at about half the cost, because the
    # usually-empty containers and the plain scalars skip the generic encoder.
    if tool_calls:
        calls = _enc(tool_calls)
        if type(action) is dict and action.get("tool_calls") is tool_calls:
            action_json = _enc_action_with(action, tool_calls, calls)
        else:
            action_json = _enc(action)
    else:
        calls = "[]"
        action_json = _enc(action)
    return (
        f'{{"episode_id":{_estr(episode_id)},"index":{index},"action":{action_json},'
        f'"tool_calls":{calls},'
        f'"observation":{_enc(observation)},"reward":{_float(reward)},'
        f'"terminated":{_bool(terminated)},"truncated":{_bool(truncated)},'
        f'"timings":{timings},"events":{_enc(events) if events else "[]"},'
        f'"info":{_enc(info) if info else "{}"},'
        f'"weight_version":{"null" if weight_version is None else _enc(weight_version)},'
        f'"call_id":{"null" if call_id is None else _enc(call_id)},"kind":"step"}}\n'
    )


def _encode_step(r: StepRecord) -> str:
    return _step_line(
        r.episode_id,
        r.index,
        r.action,
        r.tool_calls,
        r.observation,
        r.reward,
        r.terminated,
        r.truncated,
        _enc(r.timings) if r.timings else "{}",
        r.events,
        r.info,
        r.weight_version,
        r.call_id,
    )


def _start_line(
    episode_id: object, env_id: object, task_id: object, seed: object, parent_episode_id: object,
    meta: dict[str, Any], time: object, kind: object = "episode_start", schema: object = SCHEMA_VERSION,
) -> str:
    return (
        f'{{"episode_id":{_enc(episode_id)},"env_id":{_enc(env_id)},"task_id":{_enc(task_id)},'
        f'"seed":{_enc(seed)},"parent_episode_id":{_enc(parent_episode_id)},'
        f'"meta":{_enc(meta) if meta else "{}"},"time":{_float(time)},'
        f'"kind":{_enc(kind)},"schema":{_enc(schema)}}}\n'
    )


def _end_line(
    episode_id: object, outcome: Outcome, reward: object, steps: object, reason: object,
    reward_parts: dict[str, Any], error: object, meta: dict[str, Any], time: object, kind: object = "episode_end",
    cost: object = None, cost_parts: dict[str, Any] | None = None, usage: dict[str, Any] | None = None,
) -> str:
    return (
        f'{{"episode_id":{_enc(episode_id)},"outcome":{_enc(outcome._value_)},"reward":{_float(reward)},'
        f'"steps":{_enc(steps)},"reason":{"null" if reason is None else _estr(str(reason))},"reward_parts":{_enc(reward_parts) if reward_parts else "{}"},'
        f'"error":{_enc(error)},"meta":{_enc(meta) if meta else "{}"},"time":{_float(time)},'
        f'"kind":{_enc(kind)},"cost":{_float(cost)},"cost_parts":{_enc(cost_parts) if cost_parts else "{}"},'
        f'"usage":{_enc(usage) if usage else "{}"}}}\n'
    )


def _encode_start(r: EpisodeStart) -> str:
    return _start_line(r.episode_id, r.env_id, r.task_id, r.seed, r.parent_episode_id, r.meta, r.time, r.kind, r.schema)


def _encode_end(r: EpisodeEnd) -> str:
    return _end_line(
        r.episode_id, r.outcome, r.reward, r.steps, r.reason, r.reward_parts, r.error, r.meta, r.time, r.kind,
        r.cost, r.cost_parts, r.usage,
    )


def encode_record(record: Record) -> str:
    """The record's line (with its newline), exactly as the writer stores it."""
    kind = type(record)
    if kind is EpisodeStart and type(record.meta) is dict:
        return _encode_start(record)  # type: ignore[arg-type]
    if (
        kind is EpisodeEnd
        and type(record.meta) is dict
        and type(record.reward_parts) is dict
        and type(record.cost_parts) is dict
        and type(record.usage) is dict
        and isinstance(record.outcome, Outcome)
    ):
        return _encode_end(record)  # type: ignore[arg-type]
    if (
        type(record) is StepRecord
        and type(record.episode_id) is str
        and type(record.index) is int
        and record.kind == "step"
        and type(record.tool_calls) is list
        and type(record.timings) is dict
        and type(record.events) is list
        and type(record.info) is dict
    ):
        return _encode_step(record)
    return _enc(to_json(record)) + "\n"


class TrajectoryWriter:
    """Writes records to ``<run_dir>/trajectories.jsonl``. Closing is idempotent and flushes."""

    def __init__(self, run_dir: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(run_dir) / FILENAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._fsync = fsync
        self._queue: list[str] = []
        self._flush_loop: asyncio.AbstractEventLoop | None = None  # the loop our flush callback is pending on
        self.records_written = 0
        #: Where the images of this run's observations go (once each, by content hash).
        self.images = ImageStore(self.path.parent)

    @property
    def pending(self) -> int:
        """How many queued records are not yet handed to the OS."""
        return len(self._queue)

    def write(self, record: Record) -> None:
        """Hand one record to the OS before returning (after anything queued before it)."""
        if self._fd is None:
            raise ValueError("trajectory writer is closed")
        if type(record) is StepRecord and type(record.observation) is list and has_images(record.observation):
            record = dataclasses.replace(record, observation=self.images.externalize(record.observation))
        self._queue.append(encode_record(record))
        self.flush()

    def write_soon(self, record: Record) -> int:
        """Encode now, hand to the OS with every other record queued this loop round (see module doc).

        Returns the record's sequence number: it is in the OS's hands once
        :attr:`records_written` reaches it.
        """
        if self._fd is None:
            raise ValueError("trajectory writer is closed")
        return self._queue_line(encode_record(record))

    def _queue_line(self, line: str) -> int:
        queue = self._queue
        queue.append(line)
        if len(queue) >= _CHUNK:
            self.flush()
            return self.records_written
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: nothing would ever flush it, so write now
            self.flush()
            return self.records_written
        if self._flush_loop is not loop:
            # At most one callback pending per loop: scheduling one per chunk left hundreds of
            # handles alive per loop round at 100k episodes, enough new objects to set off a
            # garbage collection over every episode's young coroutines each round. (A loop that
            # closed with our callback pending is another object than the running one.)
            self._flush_loop = loop
            loop.call_soon(self._flush_callback)
        return self.records_written + len(queue)

    def _flush_callback(self) -> None:
        self._flush_loop = None
        self.flush()

    # The rollout manager's hot path writes its records through these: the same lines as
    # ``write_soon(EpisodeStart(...))`` and the like, without building a frozen record object per
    # episode or step just to take it apart again.

    def write_start_soon(
        self, episode_id: str, env_id: str, task_id: str, seed: int | None, parent_episode_id: str | None,
        meta: dict[str, Any], time: float,
    ) -> int:
        """:meth:`write_soon` of ``EpisodeStart(episode_id, env_id, ..., meta, time)``."""
        if self._fd is None:
            raise ValueError("trajectory writer is closed")
        if type(meta) is not dict:
            return self.write_soon(EpisodeStart(episode_id, env_id, task_id, seed, parent_episode_id, meta, time))
        return self._queue_line(_start_line(episode_id, env_id, task_id, seed, parent_episode_id, meta, time))

    def write_end_soon(
        self, episode_id: str, outcome: Outcome, reward: float | None, steps: int, reason: str | None,
        reward_parts: dict[str, float], error: str | None, meta: dict[str, Any], time: float,
        cost: float | None = None, cost_parts: dict[str, float] | None = None, usage: dict[str, Any] | None = None,
    ) -> int:
        """:meth:`write_soon` of ``EpisodeEnd(episode_id, outcome, ..., meta, time, cost=..., ...)``."""
        if self._fd is None:
            raise ValueError("trajectory writer is closed")
        cost_parts = {} if cost_parts is None else cost_parts
        usage = {} if usage is None else usage
        if (
            not isinstance(outcome, Outcome)
            or type(meta) is not dict
            or type(reward_parts) is not dict
            or type(cost_parts) is not dict
            or type(usage) is not dict
        ):
            record = EpisodeEnd(
                episode_id, outcome, reward, steps, reason, reward_parts, error, meta, time,  # type: ignore[arg-type]
                cost=cost, cost_parts=cost_parts, usage=usage,
            )
            return self.write_soon(record)
        line = _end_line(
            episode_id, outcome, reward, steps, reason, reward_parts, error, meta, time, "episode_end",
            cost, cost_parts, usage,
        )
        return self._queue_line(line)

    def write_step_soon(
        self,
        episode_id: str,
        index: int,
        action: Any,
        tool_calls: list[Any],
        observation: Any,
        reward: float,
        terminated: bool,
        truncated: bool,
        policy_s: float,
        env_s: float,
        info: dict[str, Any],
        weight_version: str | None,
        call_id: str | None = None,
        events: list[Any] = _NO_EVENTS,
        env_timings: dict[str, float] | None = None,
    ) -> int:
        """:meth:`write_soon` of ``StepRecord(..., timings={"policy_s": policy_s, "env_s": env_s,
        **env_timings}, events=events)`` without building the record: the same line, for the
        rollout manager's hot path, where the record object and the timings dict are pure
        overhead. ``env_timings`` are the env's own parts of its step (a BoxEnv's ``tools_s``,
        ``judge_s``)."""
        if self._fd is None:
            raise ValueError("trajectory writer is closed")
        if env_timings:
            timings = _enc({"policy_s": policy_s, "env_s": env_s, **env_timings})
        elif type(policy_s) is float and type(env_s) is float and math.isfinite(policy_s + env_s):
            # The manager's own stage times: finite floats, written as the encoder writes them.
            timings = f'{{"policy_s":{policy_s!r},"env_s":{env_s!r}}}'
        else:
            timings = f'{{"policy_s":{_float(policy_s)},"env_s":{_float(env_s)}}}'
        return self._queue_line(
            _step_line(
                episode_id, index, action, tool_calls, observation, reward, terminated, truncated,
                timings, events, info, weight_version, call_id,
            )
        )

    def flush(self) -> None:
        """Hand every queued record to the OS now. Safe to call with nothing queued."""
        queue = self._queue
        if not queue or self._fd is None:
            return
        data = "".join(queue).encode()
        count = len(queue)
        queue.clear()
        view = memoryview(data)
        while view:  # a regular file takes it all at once; loop only for the pathological case
            written = os.write(self._fd, view)
            view = view[written:]
        if self._fsync:
            os.fsync(self._fd)
        self.records_written += count

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            self.flush()
        finally:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_records(run_dir: str | os.PathLike[str]) -> Iterator[Record]:
    """Yield every complete record; a torn last line (a crash mid-write) is skipped."""
    path = Path(run_dir) / FILENAME
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                return
            yield from_json(json.loads(raw))


def read_episodes(run_dir: str | os.PathLike[str]) -> dict[str, list[Record]]:
    """Group the run's records by episode, in the order they were written."""
    episodes: dict[str, list[Record]] = defaultdict(list)
    for record in read_records(run_dir):
        episodes[record.episode_id].append(record)
    return dict(episodes)
