"""JSON for the request path: orjson when it is installed (several times faster on the bodies and
records the gateway handles), the standard library otherwise. Both give compact UTF-8."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["dumps", "loads"]

_std = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

try:
    import orjson
except ImportError:  # the gateway extra brings it; without it everything still works
    orjson = None  # type: ignore[assignment]


def dumps(obj: Any) -> bytes:
    if orjson is not None:
        try:
            return orjson.dumps(obj)
        except (TypeError, orjson.JSONEncodeError):
            pass  # ints beyond 64 bits, NaN handling, exotic keys: the slow path copes
    return _std(obj).encode()


def loads(data: bytes | str) -> Any:
    """Like json.loads; raises ValueError on bad input either way."""
    if orjson is not None:
        return orjson.loads(data)
    return json.loads(data)
