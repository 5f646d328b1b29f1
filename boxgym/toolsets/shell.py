"""The shell/file toolset coding agents use: bash, files, an exact-match editor, submit.

Tools (close to SWE-agent / Kimi's ``bash``, ``view``, ``create_file``,
``str_replace``, ``submit``):

=============  ==============================================================
``bash``       run a command in the work directory, with a timeout
``read_file``  read a text file, optionally a range of lines (1-based)
``write_file`` create or overwrite a file (parents are created)
``str_replace`` replace one exact, unique occurrence of a string in a file
``list_dir``   list a directory
``submit``     end the episode; ``answer`` carries a final answer if the task asks for one
=============  ==============================================================

Every output the model sees is capped (``max_output`` characters) and marked
where it was cut, so an ``ls -R`` cannot flood the context or the trajectory.

What the agent asks for that cannot be done is an observation (``ok=False``,
content ``error: ...`` saying what and why): a bad call, a missing file, a
refusal of the sandbox (a FIFO or device, a file too large to read at once, a
read-only place, a bad name, the pids limit reached; see docs/security.md), a
call that did not finish in time, text that is not UTF-8. Only what ends the
episode propagates: :class:`~boxgym.errors.SandboxBroken`,
:class:`~boxgym.errors.SandboxClosed` and :class:`~boxgym.errors.EngineError`
(the infrastructure's), and :class:`~boxgym.errors.SandboxWrecked` (the agent
left the sandbox unusable).
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..errors import SandboxBroken, SandboxClosed, SandboxError, SandboxTimeout, SandboxWrecked, ToolCallError
from ..sandboxes.base import Sandbox
from .base import ToolResult, cap_text, checked_arguments, function_schema, schema_params
from .calls import ToolCall
from .compose import SUBMIT_SCHEMA

__all__ = ["ShellToolset", "SHELL_TOOLS"]

_STR = {"type": "string"}
_INT = {"type": "integer"}

SHELL_TOOLS: tuple[dict[str, Any], ...] = (
    function_schema(
        "bash",
        "Run a bash command in the working directory and return its exit code, stdout and stderr. "
        "Each call starts a fresh shell there (cd and variables do not carry over; background processes do). "
        "Commands that run longer than `timeout` seconds are killed. There is no network.",
        {"command": {**_STR, "description": "the command"}, "timeout": {**_INT, "description": "seconds (default 30)"}},
        ["command"],
    ),
    function_schema(
        "read_file",
        "Read a text file. Lines are 1-based; give start_line/end_line to read part of a long file.",
        {"path": _STR, "start_line": _INT, "end_line": _INT},
        ["path"],
    ),
    function_schema(
        "write_file",
        "Create or overwrite a file with the given content; parent directories are created.",
        {"path": _STR, "content": _STR},
        ["path", "content"],
    ),
    function_schema(
        "str_replace",
        "Replace the one occurrence of old_str in a file with new_str. old_str must match exactly "
        "(whitespace included) and occur exactly once.",
        {"path": _STR, "old_str": _STR, "new_str": _STR},
        ["path", "old_str", "new_str"],
    ),
    function_schema(
        "list_dir", "List the entries of a directory (default: the working directory).", {"path": _STR}, []
    ),
    SUBMIT_SCHEMA,
)

_PARAMS = schema_params(SHELL_TOOLS)


class _Output(NamedTuple):
    content: str
    submission: str | None = None
    detail: dict[str, Any] = {}  # never mutated: each handler that has detail builds its own


def _explain(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"the file is not UTF-8 text (byte {exc.start} cannot be decoded); inspect it with bash (e.g. xxd | head)"
    if isinstance(exc, SandboxTimeout):
        return f"the call did not finish in time: {exc}"
    return str(exc) or type(exc).__name__


@dataclass(frozen=True, slots=True)
class ShellToolset:
    """bash + file tools over any :class:`~boxgym.sandboxes.base.Sandbox`."""

    default_timeout: float = 30.0
    max_timeout: float = 300.0
    max_output: int = 16_000  # characters per tool result

    def schemas(self) -> list[dict[str, Any]]:
        import copy

        return copy.deepcopy(list(SHELL_TOOLS))

    async def run(self, call: ToolCall, sandbox: Sandbox, *, timeout: float | None = None) -> ToolResult:
        start = time.monotonic()
        try:
            args = checked_arguments(call, _PARAMS)
            handler: Callable[..., Any] = getattr(self, f"_{call.name}")
            content, submission, detail = await handler(sandbox, args, timeout)
            ok, submitted = True, call.name == "submit"
        except ToolCallError as exc:
            content, submission, ok, submitted, detail = f"error: {exc}", None, False, False, {}
        except (SandboxBroken, SandboxClosed, SandboxWrecked):
            raise  # ends the episode: the infrastructure's failure, or the agent's wreck
        except (SandboxError, OSError, UnicodeError) as exc:
            # What the agent asked for could not be done (a refusal, a missing file, a call that
            # hung, binary data): the model reads why. SandboxError here is a refusal, a timeout
            # or the server's own error, none of which the agent may turn into a free retry.
            content, submission, ok, submitted = f"error: {_explain(exc)}", None, False, False
            detail = {"error": type(exc).__name__, "reason": getattr(exc, "reason", None)}
        return ToolResult(
            call_id=call.id,
            name=call.name,
            # A name that is not UTF-8 comes back with lone surrogates; the model gets them escaped.
            content=cap_text(content, self.max_output).encode("utf-8", "backslashreplace").decode("utf-8"),
            ok=ok,
            submitted=submitted,
            submission=submission,
            duration_s=time.monotonic() - start,
            detail=detail,
        )

    async def _bash(self, sandbox: Sandbox, args: Mapping[str, Any], budget: float | None) -> _Output:
        timeout = min(float(args.get("timeout", self.default_timeout)), self.max_timeout)
        if timeout <= 0:
            raise ToolCallError("bash: timeout must be positive")
        if budget is not None:
            timeout = max(min(timeout, budget), 1.0)
        result = await sandbox.exec(args["command"], timeout=timeout, max_output=self.max_output)
        status = f"timed out after {timeout:g}s (killed)" if result.timed_out else f"exit code: {result.exit_code}"
        parts = [status]
        if result.stdout:
            parts.append(f"[stdout]\n{result.stdout}")
        if result.stderr:
            parts.append(f"[stderr]\n{result.stderr}")
        detail = {"exit_code": result.exit_code, "timed_out": result.timed_out, "truncated": result.truncated}
        return _Output("\n".join(parts), detail=detail)

    async def _read_file(self, sandbox: Sandbox, args: Mapping[str, Any], budget: float | None) -> _Output:
        # Read a bounded prefix: a model asking for a 2 GB log must not stall the step.
        window = 8 * self.max_output
        data = await sandbox.read_file(args["path"], max_bytes=window + 1)
        cut = len(data) > window
        # A cut may split a character: only a complete file must decode to its end.
        text = codecs.getincrementaldecoder("utf-8")().decode(data[:window], final=not cut)
        if "start_line" in args or "end_line" in args:
            lines = text.splitlines(keepends=True)
            first = max(args.get("start_line", 1), 1)
            last = args.get("end_line", len(lines))
            text = "".join(lines[first - 1 : last])
        if cut:
            text += (
                f"\n[... boxgym: the file is longer than the {window} bytes read_file reads; for what follows, "
                "use bash (e.g. sed -n '2000,2100p' FILE, or tail) ...]"
            )
        return _Output(text if text else "(empty)")

    async def _write_file(self, sandbox: Sandbox, args: Mapping[str, Any], budget: float | None) -> _Output:
        await sandbox.write_file(args["path"], args["content"])
        return _Output(f"wrote {len(args['content'].encode())} bytes to {args['path']}")

    async def _str_replace(self, sandbox: Sandbox, args: Mapping[str, Any], budget: float | None) -> _Output:
        old, new, path = args["old_str"], args["new_str"], args["path"]
        if not old:
            raise ToolCallError("str_replace: old_str must not be empty")
        text = (await sandbox.read_file(path)).decode("utf-8")
        count = text.count(old)
        if count != 1:
            raise ToolCallError(f"str_replace: old_str occurs {count} times in {path}; it must occur exactly once")
        await sandbox.write_file(path, text.replace(old, new, 1))
        return _Output(f"replaced 1 occurrence in {path}")

    async def _list_dir(self, sandbox: Sandbox, args: Mapping[str, Any], budget: float | None) -> _Output:
        entries = await sandbox.list_dir(args.get("path", "."))
        lines = [f"{e.name}/" if e.kind == "dir" else f"{e.name}  ({e.size} bytes)" for e in entries]
        return _Output("\n".join(lines) if lines else "(empty directory)")

    async def _submit(self, sandbox: Sandbox, args: Mapping[str, Any], budget: float | None) -> _Output:
        return _Output("submitted", submission=args.get("answer"))
