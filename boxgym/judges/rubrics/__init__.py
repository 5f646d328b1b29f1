"""Rubrics for the LLM judge (:class:`~boxgym.judges.LLMJudge`): shipped ones and your own files.

A rubric file is TOML, one criterion with several alternative rubrics for it::

    criterion = "helpfulness"
    scale = [0, 10]            # integer scores from 0 to 10 (the default)

    [[rubric]]
    name = "outcome"
    text = \"\"\"
    - 10: the task is fully solved ...
    - 0: no help ...
    \"\"\"

    [[rubric]]
    name = "user"
    text = "..."

The alternatives say the same thing in different words. The judge averages them or draws
some of them per episode (:class:`~boxgym.judges.RubricPanel`), so that a policy cannot
learn to please one wording: the guard against reward hacking of K2's rubric rewards.

Shipped (:data:`BUILTIN_CRITERIA`, three alternatives each): ``helpfulness``,
``instruction_following``, ``detail``, ``artifact_quality``. Load them with
:func:`builtin_rubrics`, your own with :func:`load_rubrics` (a file or a directory of
``*.toml`` files). One cost criterion ships too (:data:`BUILTIN_COST_CRITERIA`:
``harmfulness``, 0 harmless to 10 severe, for :func:`~boxgym.judges.harmfulness_judge`); it
is loaded only by name, never among the rewards of ``builtin_rubrics()``.
"""

from __future__ import annotations

import functools
import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ...errors import TaskError

__all__ = ["BUILTIN_COST_CRITERIA", "BUILTIN_CRITERIA", "Rubric", "builtin_rubrics", "load_rubrics", "parse_rubrics"]

BUILTIN_CRITERIA = ("helpfulness", "instruction_following", "detail", "artifact_quality")
#: Rubrics whose score is a cost (higher is worse): loaded by name only.
BUILTIN_COST_CRITERIA = ("harmfulness",)


@dataclass(frozen=True, slots=True)
class Rubric:
    """One way to grade one criterion: its instructions and the integer scale of its scores."""

    criterion: str
    name: str
    text: str
    scale: tuple[int, int] = (0, 10)

    def __post_init__(self) -> None:
        low, high = self.scale
        if not (isinstance(low, int) and isinstance(high, int) and low < high):
            raise TaskError(f"rubric {self.id}: scale must be two integers, low < high, not {self.scale!r}")
        if not self.text.strip():
            raise TaskError(f"rubric {self.id}: the text is empty")

    @property
    def id(self) -> str:
        return f"{self.criterion}/{self.name}"


def parse_rubrics(document: dict[str, Any], source: str = "<rubrics>") -> tuple[Rubric, ...]:
    """The rubrics of one parsed TOML document (see the module docstring for its shape)."""
    criterion = document.get("criterion")
    if not isinstance(criterion, str) or not criterion:
        raise TaskError(f"{source}: needs criterion = \"...\"")
    scale = document.get("scale", [0, 10])
    if not (isinstance(scale, list) and len(scale) == 2):
        raise TaskError(f"{source}: scale must be [low, high]")
    entries = document.get("rubric")
    if not isinstance(entries, list) or not entries:
        raise TaskError(f"{source}: needs at least one [[rubric]] with a name and a text")
    rubrics = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            raise TaskError(f"{source}: rubric {number} needs a text")
        name = entry.get("name", str(number))
        rubrics.append(Rubric(criterion, str(name), entry["text"].strip(), tuple(scale)))
    if len({r.name for r in rubrics}) != len(rubrics):
        raise TaskError(f"{source}: rubric names must be unique")
    return tuple(rubrics)


def load_rubrics(path: str | os.PathLike[str]) -> tuple[Rubric, ...]:
    """The rubrics in a TOML file, or in every ``*.toml`` file of a directory (sorted by name)."""
    path = Path(path)
    files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
    if not files:
        raise TaskError(f"{path}: no *.toml rubric files")
    rubrics: list[Rubric] = []
    for file in files:
        try:
            document = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise TaskError(f"{file}: {exc}") from None
        rubrics += parse_rubrics(document, str(file))
    return tuple(rubrics)


@functools.cache
def _builtin(criterion: str) -> tuple[Rubric, ...]:
    text = resources.files(__name__).joinpath(f"{criterion}.toml").read_text(encoding="utf-8")
    return parse_rubrics(tomllib.loads(text), f"boxgym rubric {criterion}")


def builtin_rubrics(*criteria: str) -> tuple[Rubric, ...]:
    """The shipped rubrics of ``criteria`` (all of :data:`BUILTIN_CRITERIA` if none are named;
    a cost criterion of :data:`BUILTIN_COST_CRITERIA` only when named)."""
    known = BUILTIN_CRITERIA + BUILTIN_COST_CRITERIA
    unknown = [c for c in criteria if c not in known]
    if unknown:
        raise ValueError(f"no built-in rubrics for {', '.join(unknown)}; there are {', '.join(known)}")
    return tuple(r for c in criteria or BUILTIN_CRITERIA for r in _builtin(c))
