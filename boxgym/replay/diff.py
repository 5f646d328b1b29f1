"""Comparing a replayed episode's observations with the recorded ones.

Some of what a tool prints differs from run to run without the episode having changed: clock
times and dates, durations, process ids, temporary file names, commit hashes and object
addresses. Each :class:`Normaliser` replaces one such thing with a placeholder in both texts
before they are compared; :data:`DEFAULT_NORMALISERS` lists them, and a caller (or
``boxgym replay redrive --normaliser``/``--skip-normaliser``) changes the list. Images are
compared by perceptual distance against a threshold (:mod:`boxgym.replay.images`).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Normaliser", "DEFAULT_NORMALISERS", "Comparison", "StepDiff", "compare_steps", "normalise"]


@dataclass(frozen=True, slots=True)
class Normaliser:
    """Replace every match of ``pattern`` (a regular expression) with ``replacement``."""

    name: str
    pattern: str
    replacement: str
    description: str = ""
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", re.compile(self.pattern))

    def apply(self, text: str) -> str:
        return self._regex.sub(self.replacement, text)


_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"

DEFAULT_NORMALISERS: tuple[Normaliser, ...] = (
    Normaliser(
        "iso-time",
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?",
        "<time>",
        "ISO dates with a time (logs, git, Python's datetime)",
    ),
    Normaliser("date", rf"\b{_MONTH}\s+\d{{1,2}}(?:\s+\d{{2}}:\d{{2}}(?::\d{{2}})?|\s+\d{{4}})", "<date>",
               "dates as ls -l and date print them"),  # fmt: skip
    Normaliser("clock", r"\b\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\b", "<time>", "clock times"),
    Normaliser(
        "duration",
        r"\b\d+(?:\.\d+)?\s?(?:ms|us|µs|ns|s|sec|secs|seconds)\b",
        "<duration>",
        "durations (unittest's 'Ran 3 tests in 0.001s', time's output)",
    ),
    Normaliser("pid", r"(?i)\b(pid|process)(\s*[:=#]?\s*)\d+", r"\1\2<pid>", "process ids after 'pid' or 'process'"),
    Normaliser("job", r"(?m)^\[\d+\]\s+\d+$", "[<job>] <pid>", "bash's job line: [1] 12345"),
    Normaliser("tmp", r"/tmp/[\w.\-]+|\btmp[\w.\-]{6,}", "<tmp>", "temporary file and directory names"),
    Normaliser("address", r"\b0x[0-9a-fA-F]{6,}\b", "<addr>", "memory addresses in object reprs"),
    Normaliser(
        "hex",
        r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,64}\b",
        "<hex>",
        "hashes and random hex ids (git commits, container ids, uuids' parts)",
    ),
)


def normalise(text: str, normalisers: Sequence[Normaliser]) -> str:
    for normaliser in normalisers:
        text = normaliser.apply(text)
    return text


@dataclass(frozen=True, slots=True)
class StepDiff:
    """How one replayed step's observation differs from the recorded one."""

    index: int
    where: str  # the path of the first difference inside the observation, e.g. "[0].content"
    diff: str  # a unified diff of the normalised texts there (capped), or what differs
    image_distance: float | None = None


@dataclass(frozen=True, slots=True)
class Comparison:
    """A replayed episode against its record: the first step that differs, if any."""

    steps_recorded: int
    steps_replayed: int
    first_divergence: StepDiff | None


def _unified(old: str, new: str, labels: tuple[str, str], limit: int = 40) -> str:
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), *labels, lineterm="", n=1))
    if len(lines) > limit:
        lines = [*lines[:limit], f"... {len(lines) - limit} more lines"]
    return "\n".join(lines)


def _first_difference(
    old: Any, new: Any, where: str, normalisers: Sequence[Normaliser], threshold: float, labels: tuple[str, str]
) -> tuple[str, str, float | None] | None:
    if isinstance(old, str) and isinstance(new, str):
        a, b = normalise(old, normalisers), normalise(new, normalisers)
        return None if a == b else (where, _unified(a, b, labels), None)
    if isinstance(old, dict) and isinstance(new, dict):
        if old.get("type") in ("image_url", "input_image", "image") and old.get("type") == new.get("type"):
            from .images import image_bytes, perceptual_distance  # NumPy, only when there are images

            a_bytes, b_bytes = image_bytes(old), image_bytes(new)
            if a_bytes is not None and b_bytes is not None:
                distance = perceptual_distance(a_bytes, b_bytes)
                if distance <= threshold:
                    return None
                return where, f"images differ: perceptual distance {distance:.3f} > {threshold:.3f}", distance
        for key in sorted(set(old) | set(new), key=str):
            if key not in old or key not in new:
                return f"{where}.{key}", f"{key!r} is only in the {labels[0] if key in old else labels[1]} one", None
            found = _first_difference(old[key], new[key], f"{where}.{key}", normalisers, threshold, labels)
            if found is not None:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list):
        for i, (a, b) in enumerate(zip(old, new)):
            found = _first_difference(a, b, f"{where}[{i}]", normalisers, threshold, labels)
            if found is not None:
                return found
        if len(old) != len(new):
            return where, f"{len(old)} items in the {labels[0]} one, {len(new)} in the {labels[1]} one", None
        return None
    if old == new:
        return None
    return where, _unified(json.dumps(old, default=repr), json.dumps(new, default=repr), labels), None


def compare_steps(
    recorded: Sequence[Any],
    replayed: Sequence[Any],
    *,
    normalisers: Sequence[Normaliser] = DEFAULT_NORMALISERS,
    image_threshold: float = 0.1,
    labels: tuple[str, str] = ("recorded", "replayed"),
) -> Comparison:
    """Compare observations step by step (each argument: the steps' observations, in order)."""
    for index, (old, new) in enumerate(zip(recorded, replayed)):
        found = _first_difference(old, new, "", normalisers, image_threshold, labels)
        if found is not None:
            where, diff, distance = found
            step = StepDiff(index, where.lstrip(".") or "observation", diff, distance)
            return Comparison(len(recorded), len(replayed), step)
    if len(recorded) != len(replayed):
        index = min(len(recorded), len(replayed))
        what = f"the {labels[1] if len(replayed) < len(recorded) else labels[0]} one ended here"
        return Comparison(len(recorded), len(replayed), StepDiff(index, "steps", what))
    return Comparison(len(recorded), len(replayed), None)
