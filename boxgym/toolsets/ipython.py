"""The ``python`` tool: cells run in the sandbox's IPython kernel, whose state persists.

One Jupyter kernel per sandbox (the tool server's ``ipython`` plugin, run as the agent, started
on the first call), as in a notebook or a code interpreter: variables, imports and definitions
carry over from call to call. The observation holds, in this order:

* what happened to the kernel, when something did (``[kernel] ...``: it died and was
  restarted, its state was lost, the cell was interrupted at its timeout);
* ``[stdout]`` and ``[stderr]``;
* each display and the cell's value (``Out[3]: ...``), as text: an HTML-only output as its
  text, an image as ``[image N: PNG 640x480 ...]``, the image itself attached to the result
  (:attr:`ToolResult.images`; the env shows it to the policy after the tool messages);
* ``[error]``: the traceback, without ANSI colours;
* ``[boxgym] ...`` notes: output that was cut or lost.

It composes with the other toolsets (``compose(ShellToolset(), IPythonToolset())`` offers bash,
files, python and submit); alone it has no ``submit``, so an env adds :class:`SubmitToolset`.
As every toolset, it turns the agent's doing into observations (a cell that raised, timed out
or killed its kernel; a second cell while one runs) and lets the infrastructure's failures
propagate: :class:`~boxgym.errors.ToolUnavailable` (the kernel cannot start in this sandbox),
:class:`~boxgym.errors.SandboxBroken`, :class:`~boxgym.errors.SandboxClosed`, and the plugin's
bugs (:class:`~boxgym.errors.ToolServerError`), which are reported, not retried.
"""

from __future__ import annotations

import base64
import binascii
import copy
import time
from dataclasses import dataclass
from typing import Any

from ..errors import (
    SandboxBroken,
    SandboxBusy,
    SandboxClosed,
    SandboxError,
    SandboxWrecked,
    ToolServerError,
    ToolUnavailable,
)
from ..sandboxes.base import Sandbox
from ..trajectories.images import Image
from .base import ToolResult, cap_text, function_schema
from .calls import ToolCall

__all__ = ["IPythonToolset", "PYTHON_SCHEMA", "render_cell"]

PYTHON_SCHEMA = function_schema(
    "python",
    "Run Python code in a persistent IPython kernel (like a Jupyter notebook cell) in the working directory. "
    "Variables, imports and definitions persist between calls. The result shows stdout, stderr, the value of "
    "the last expression, displayed images (matplotlib figures are shown automatically; display(...) shows "
    "others) and the traceback of an error. A cell that runs longer than `timeout` seconds is interrupted. "
    "Shell commands work with a leading `!`. There is no network.",
    {
        "code": {"type": "string", "description": "the cell's Python code"},
        "timeout": {"type": "integer", "description": "seconds before the cell is interrupted (default 30)"},
    },
    ["code"],
)

#: Host-side slack on top of a cell's timeout: the interrupt's grace, and a kernel restart.
CALL_SLACK_S = 75.0


def _image(data_b64: str) -> Image | None:
    try:
        data = base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return None
    if data.startswith(b"\x89PNG"):
        return Image(data, "image/png")
    if data.startswith(b"\xff\xd8"):
        return Image(data, "image/jpeg")
    return None


def render_cell(answer: dict[str, Any]) -> str:
    """The text the model reads for one ``ipython.execute`` answer (see the module docstring)."""
    parts = [f"[kernel] {notice}" for notice in answer.get("notices") or ()]
    if answer.get("stdout"):
        parts.append(f"[stdout]\n{answer['stdout']}")
    if answer.get("stderr"):
        parts.append(f"[stderr]\n{answer['stderr']}")
    for output in answer.get("outputs") or ():
        text = output.get("text", "")
        if output.get("kind") == "result":
            count = answer.get("execution_count")
            label = f"Out[{count}]:" if isinstance(count, int) else "Out:"
            parts.append(f"{label}{chr(10) if chr(10) in text else ' '}{text}")
        else:
            parts.append(text)
    error = answer.get("error")
    if error:
        parts.append(f"[error]\n{error.get('traceback') or error.get('ename', 'Error')}")
    parts += [f"[boxgym] {note}" for note in answer.get("notes") or ()]
    return "\n".join(parts) if parts else "(no output)"


def _arguments(call: ToolCall) -> tuple[str, int | None]:
    unexpected = sorted(set(call.arguments) - {"code", "timeout"})
    if unexpected:
        raise ValueError(f"python: unexpected argument(s) {', '.join(unexpected)}")
    code = call.arguments.get("code")
    if not isinstance(code, str):
        raise ValueError("python: missing required argument 'code' (a string of Python code)")
    timeout = call.arguments.get("timeout")
    if timeout is not None:
        # Text-form calls (Qwen XML) carry every value as a string.
        if isinstance(timeout, str) and timeout.strip().isdigit():
            timeout = int(timeout)
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0:
            raise ValueError("python: argument 'timeout' must be a positive integer")
    return code, timeout


@dataclass(frozen=True, slots=True)
class IPythonToolset:
    """The ``python`` tool over any sandbox whose image has a Jupyter kernel (``jupyter``, ``desktop``)."""

    default_timeout: float = 30.0
    max_timeout: float = 300.0
    max_output: int = 16_000  # characters of one result, and of each stream inside the sandbox

    def schemas(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(PYTHON_SCHEMA)]

    async def run(self, call: ToolCall, sandbox: Sandbox, *, timeout: float | None = None) -> ToolResult:
        start = time.monotonic()
        if call.name != "python":
            return ToolResult(call.id, call.name, f"error: unknown tool {call.name!r}; the tool is: python", ok=False)
        try:
            code, asked = _arguments(call)
        except ValueError as exc:
            return ToolResult(call.id, call.name, f"error: {exc}", ok=False)
        cell_timeout = min(float(asked or self.default_timeout), self.max_timeout)
        if timeout is not None:
            cell_timeout = max(min(cell_timeout, timeout), 1.0)
        # Each stream gets half the result's room, so that the sandbox's own marker (which counts
        # every byte left out, in the kernel too) is what the model reads, not a second cut here.
        args = {"code": code, "timeout": cell_timeout, "max_output": max(self.max_output // 2, 1)}
        try:
            answer = await sandbox.call("ipython.execute", args, timeout=cell_timeout + CALL_SLACK_S)
        except (SandboxBroken, SandboxClosed, SandboxWrecked, ToolUnavailable, ToolServerError):
            raise  # the infrastructure's (or the plugin's) failure, or the agent's wreck: ends the episode
        except SandboxBusy:
            content = "error: another python cell is still running in this kernel; wait for its result"
            return ToolResult(call.id, call.name, content, ok=False, duration_s=time.monotonic() - start)
        except SandboxError as exc:
            # Refused (bad content, a NUL in the code) or a call that did not come back in time.
            content = f"error: {exc}"
            detail = {"error": type(exc).__name__, "reason": getattr(exc, "reason", None)}
            return ToolResult(call.id, call.name, content, ok=False, duration_s=time.monotonic() - start, detail=detail)
        images = tuple(image for image in map(_image, answer.get("images_b64") or ()) if image is not None)
        content = cap_text(render_cell(answer), self.max_output)
        return ToolResult(
            call_id=call.id,
            name=call.name,
            content=content.encode("utf-8", "backslashreplace").decode("utf-8"),
            ok=bool(answer.get("ok")),
            duration_s=time.monotonic() - start,
            detail={
                "status": answer.get("status"),
                "execution_count": answer.get("execution_count"),
                "restarted": bool(answer.get("restarted")),
                "truncated": bool(answer.get("truncated")),
                "images": len(images),
            },
            images=images,
        )
