"""Rules over a simulated world's final state, JSON Schema checks, and state patches.

A :class:`StateCheck` points into the state (an RFC 6901 JSON pointer, or a list of keys) and
says one thing about what it finds:

==============  ==============================================================================
``equals``      the value is this (deep equality; ``1`` and ``true`` differ)
``includes``    a list, or the values of an object, has an item that matches this pattern
``excludes``    ... has no item that matches it
``count``       ... has this many items (those matching ``where``, when given)
``contains``    the value is a string that contains this text (ignoring case)
``exists``      the path is there (``true``) or not (``false``)
==============  ==============================================================================

A pattern matches a value when it is equal to it, except that an object pattern needs only its
own keys (each matching) and a list pattern needs each of its items to match some item of the
list. So ``includes = {title = "Budget review", attendees = ["li@corp.example"]}`` is met by
any event with that title whose attendees include Li, whatever else it holds: checks name what
the task is about and let the world model fill in the rest (ids, timestamps) as it likes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import TaskError
from ..judges.base import Check

__all__ = [
    "ERROR_OUTPUT", "KINDS", "StateCheck", "check_schema", "matches", "merge_patch", "output_errors", "schema_errors",
]

Kind = Literal["equals", "includes", "excludes", "count", "contains", "exists"]
KINDS: tuple[Kind, ...] = ("equals", "includes", "excludes", "count", "contains", "exists")
_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b if isinstance(a, str) or isinstance(b, str) else a == b


def matches(value: Any, pattern: Any) -> bool:
    """Whether ``value`` matches ``pattern`` (see the module docstring)."""
    if isinstance(pattern, Mapping):
        return isinstance(value, Mapping) and all(k in value and matches(value[k], p) for k, p in pattern.items())
    if isinstance(pattern, list):
        return isinstance(value, list) and all(any(matches(v, p) for v in value) for p in pattern)
    return _same(value, pattern)


def _items(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping):
        return list(value.values())
    return None


def parse_pointer(path: str | Sequence[str]) -> tuple[str, ...]:
    """``"/a/b~1c"`` (RFC 6901) or ``["a", "b/c"]`` as keys."""
    if isinstance(path, str):
        if path == "":
            return ()
        if not path.startswith("/"):
            raise TaskError(f"the path {path!r} is not a JSON pointer: start it with / (or give a list of keys)")
        return tuple(part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/"))
    if isinstance(path, Sequence) and all(isinstance(part, (str, int)) for part in path):
        return tuple(str(part) for part in path)
    raise TaskError(f"a path is a JSON pointer string or a list of keys, not {path!r}")


def resolve(state: Any, keys: Sequence[str]) -> Any:
    value = state
    for key in keys:
        if isinstance(value, Mapping) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return _MISSING
    return value


@dataclass(frozen=True, slots=True)
class StateCheck:
    """One rule over the final state (see the module docstring)."""

    path: tuple[str, ...]
    kind: Kind
    expected: Any
    where: Any = None  # with count: the pattern the counted items match
    name: str = ""

    @classmethod
    def from_spec(cls, entry: Mapping[str, Any], where_from: str) -> StateCheck:
        kinds = [k for k in KINDS if k in entry]
        unknown = sorted(set(entry) - {*KINDS, "path", "where", "name"})
        if unknown or len(kinds) != 1 or "path" not in entry:
            raise TaskError(
                f"{where_from}: a check has a path and exactly one of {', '.join(KINDS)} (and, with count, "
                f"where); this one has {sorted(entry)}"
            )
        kind = kinds[0]
        expected = entry[kind]
        if kind == "count" and (type(expected) is not int or expected < 0):
            raise TaskError(f"{where_from}: count must be an integer >= 0, not {expected!r}")
        if kind == "contains" and not isinstance(expected, str):
            raise TaskError(f"{where_from}: contains takes a string, not {expected!r}")
        if kind == "exists" and not isinstance(expected, bool):
            raise TaskError(f"{where_from}: exists takes true or false, not {expected!r}")
        if "where" in entry and kind != "count":
            raise TaskError(f"{where_from}: where goes with count only")
        path = parse_pointer(entry["path"])
        name = entry.get("name") or f"{kind} {_show(expected)} at /{'/'.join(path)}"
        return cls(path, kind, expected, entry.get("where"), str(name))

    def run(self, state: Any) -> Check:
        value = resolve(state, self.path)
        if self.kind == "exists":
            found = value is not _MISSING
            return Check(self.name, found is self.expected, "found" if found else "not found")
        if value is _MISSING:
            return Check(self.name, False, f"nothing at /{'/'.join(self.path)}")
        if self.kind == "equals":
            return Check(self.name, _same(value, self.expected), f"found {_show(value)}")
        if self.kind == "contains":
            ok = isinstance(value, str) and self.expected.lower() in value.lower()
            return Check(self.name, ok, f"found {_show(value)}")
        items = _items(value)
        if items is None:
            return Check(self.name, False, f"not a list or an object: {_show(value)}")
        if self.kind == "count":
            n = sum(1 for item in items if self.where is None or matches(item, self.where))
            return Check(self.name, n == self.expected, f"{n} item(s)")
        hits = [item for item in items if matches(item, self.expected)]
        if self.kind == "includes":
            return Check(self.name, bool(hits), f"{len(hits)} match(es) among {len(items)} item(s)")
        return Check(self.name, not hits, f"{len(hits)} match(es): {_show(hits)}" if hits else "none matches")


def _show(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with the JSON merge patch ``patch`` (RFC 7396) applied; neither is changed."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def check_schema(schema: Any, where_from: str) -> None:
    """Refuse what is not a JSON Schema (draft 2020-12) with a TaskError that says where."""
    from jsonschema import Draft202012Validator, SchemaError

    if not isinstance(schema, Mapping):
        raise TaskError(f"{where_from}: a JSON Schema is an object, not {schema!r}")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise TaskError(f"{where_from}: not a valid JSON Schema: {exc.message}") from None


def schema_errors(value: Any, schema: Mapping[str, Any], limit: int = 3) -> list[str]:
    """Why ``value`` does not fit ``schema`` (at most ``limit`` reasons, each with where), or []."""
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    return [f"{e.message} (at {e.json_path})" for e in errors[:limit]]


#: What every simulated tool may answer instead of its declared output: the real system's refusal.
ERROR_OUTPUT: Mapping[str, Any] = {
    "type": "object",
    "properties": {"error": {"type": "string", "minLength": 1}},
    "required": ["error"],
    "additionalProperties": False,
}


def output_errors(output: Any, tool: Any) -> list[str]:
    """Why ``output`` fits neither ``tool.output`` nor the error form ``{"error": "..."}``, or []."""
    if not schema_errors(output, ERROR_OUTPUT):
        return []
    return schema_errors(output, tool.output)
