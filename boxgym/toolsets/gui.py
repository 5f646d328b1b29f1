"""The GUI desktop toolset: a screen, the mouse and the keyboard, through the sandbox's ``gui`` plugin.

Two faces over one execution path (the agent's pyautogui code, run as the agent in the sandbox
and followed by a screenshot; see ``sandboxes/toolserver/ops_gui.py``):

* **structured tools**, for function-calling policies (``GuiToolset()``):

  ================  ===========================================================================
  ``click``         ``x``, ``y``, ``button`` (left/right/middle), ``clicks``
  ``double_click``  ``x``, ``y``
  ``move``          ``x``, ``y``
  ``drag``          press at ``x``, ``y``, move to ``to_x``, ``to_y``, release
  ``type``          ``text``, typed as key presses
  ``press``         ``keys``: one key name or a list, pressed in turn; ``presses``
  ``hotkey``        ``keys``: held down together, in order (``["ctrl", "s"]``)
  ``scroll``        ``clicks`` (negative: down), at ``x``, ``y`` if given
  ``wait``          ``seconds`` (default :attr:`GuiToolset.wait_s`), then look again
  ``terminate``     ``status`` success/failure, ``answer``: ends the episode
  ================  ===========================================================================

* **the K2.5 text format** (``GuiToolset(structured=False)``, with
  :class:`~boxgym.toolsets.gui_format.K25Parser` in the env): the model writes pyautogui code,
  ``computer.wait()`` or ``computer.terminate(...)`` in its reply; the parser turns it into the
  calls ``pyautogui`` (``code``), ``wait`` and ``terminate``, which this toolset runs. It offers
  no function schemas then (a K2.5 policy reads no tool list); every call runs in either face.

Every action's result is a screenshot (a PNG) with a line saying how the action went; the code's
syntax errors, exceptions, refusals and timeouts are that line (``ok=False``), never an exception.
The first observation holds a screenshot too (:meth:`GuiToolset.start_episode`).
``terminate`` submits a :class:`Termination`, which :meth:`Termination.of` reads back.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import (
    SandboxBroken,
    SandboxClosed,
    SandboxError,
    SandboxWrecked,
    ToolCallError,
    ToolServerError,
    ToolUnavailable,
)
from ..sandboxes.base import Sandbox
from ..trajectories.images import Image
from .base import Opening, ToolResult, function_schema
from .calls import ToolCall

if TYPE_CHECKING:
    from ..envs.tasks import Task

__all__ = ["CODE_TOOL", "GUI_TOOLS", "GuiToolset", "Termination", "code_of"]

_INT = {"type": "integer"}
_KEYS = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
_BUTTON = {"type": "string", "enum": ["left", "right", "middle"]}

GUI_TOOLS: tuple[dict[str, Any], ...] = (
    function_schema(
        "click",
        "Click at (x, y) in screen pixels, from the top-left corner.",
        {"x": _INT, "y": _INT, "button": {**_BUTTON, "description": "default left"},
         "clicks": {**_INT, "description": "default 1"}},
        ["x", "y"],
    ),  # fmt: skip
    function_schema("double_click", "Double-click at (x, y).", {"x": _INT, "y": _INT}, ["x", "y"]),
    function_schema("move", "Move the mouse pointer to (x, y).", {"x": _INT, "y": _INT}, ["x", "y"]),
    function_schema(
        "drag",
        "Press the mouse button at (x, y), move to (to_x, to_y) holding it, and release it there.",
        {"x": _INT, "y": _INT, "to_x": _INT, "to_y": _INT, "button": _BUTTON},
        ["x", "y", "to_x", "to_y"],
    ),
    function_schema("type", "Type text with the keyboard (a newline presses Enter).", {"text": {"type": "string"}}, ["text"]),
    function_schema(
        "press",
        "Press a key, or several in turn: names such as enter, tab, esc, backspace, delete, up, down, left, "
        "right, home, end, pageup, pagedown, space, f1..f12, or a single character.",
        {"keys": _KEYS, "presses": {**_INT, "description": "how many times (default 1)"}},
        ["keys"],
    ),
    function_schema(
        "hotkey",
        "Hold keys down together, in order, then release them: a shortcut such as [\"ctrl\", \"s\"].",
        {"keys": {"type": "array", "items": {"type": "string"}}},
        ["keys"],
    ),
    function_schema(
        "scroll",
        "Turn the mouse wheel: positive clicks scroll up, negative down; at (x, y) if given.",
        {"clicks": _INT, "x": _INT, "y": _INT},
        ["clicks"],
    ),
    function_schema(
        "wait", "Wait, then look at the screen again (seconds: default 20).", {"seconds": {"type": "number"}}, []
    ),
    function_schema(
        "terminate",
        "End the task: status success when it is done, failure when it cannot be done; answer if the task asks for one.",
        {"status": {"type": "string", "enum": ["success", "failure"]}, "answer": {"type": "string"}},
        ["status"],
    ),
)
#: The calls of the K2.5 text format (:mod:`boxgym.toolsets.gui_format`) besides wait and terminate.
CODE_TOOL = "pyautogui"


@dataclass(frozen=True, slots=True)
class Termination:
    """What ``terminate`` / ``computer.terminate`` submitted: the submission's text is its JSON."""

    status: Literal["success", "failure"]
    answer: str | None = None

    def to_submission(self) -> str:
        return json.dumps({"status": self.status, "answer": self.answer})

    @classmethod
    def of(cls, submission: str | None) -> Termination | None:
        """The termination a submission holds; None for one that is not a termination."""
        try:
            data = json.loads(submission) if submission else None
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("status") not in ("success", "failure"):
            return None
        answer = data.get("answer")
        return cls(data["status"], answer if isinstance(answer, str) else None)


@dataclass(frozen=True, slots=True)
class GuiToolset:
    """The screen, mouse and keyboard of a sandbox with a display (the ``desktop`` image)."""

    screen: tuple[int, int] = (1280, 800)
    wait_s: float = 20.0  # what wait() / computer.wait() waits without seconds
    max_wait_s: float = 60.0
    code_timeout: float = 30.0  # one action's code, killed when it runs longer
    # pyautogui.PAUSE: the time after each pyautogui call, which is also what the apps get to
    # redraw before the screenshot after the last one.
    pause: float = 0.1
    # Offer the structured tools' schemas; False: none (a K2.5 policy reads no tool list). The
    # structured calls run either way (a reference written as tool calls plays in a K2.5 env).
    structured: bool = True

    def schemas(self) -> list[dict[str, Any]]:
        return copy.deepcopy(list(GUI_TOOLS)) if self.structured else []

    async def start_episode(self, sandbox: Sandbox, task: Task) -> Opening:
        """The screen the agent starts from, once the sandbox is set up (an app under test is open)."""
        shot = await sandbox.call("gui.screenshot", {"screen": list(self.screen)}, timeout=60.0)
        return Opening("", (_png(shot),))

    async def run(self, call: ToolCall, sandbox: Sandbox, *, timeout: float | None = None) -> ToolResult:
        start = time.monotonic()
        submission, detail, images = None, {}, ()
        try:
            ok, submitted = True, False
            if call.name == "terminate":
                termination = _termination(call.arguments)
                content, submitted, submission = f"terminated: {termination.status}", True, termination.to_submission()
            elif call.name == "wait":
                content, images = await self._wait(call.arguments, sandbox, timeout)
            else:
                code = self._code(call)
                ok, content, images, detail = await self._act(code, sandbox, timeout)
        except ToolCallError as exc:
            ok, submitted, content = False, False, f"error: {exc}"
        except (SandboxBroken, SandboxClosed, SandboxWrecked, ToolUnavailable, ToolServerError):
            raise  # the infrastructure's failure, the agent's wreck, or a bug of the plugin
        except SandboxError as exc:  # refused as asked, or no answer in time: the agent reads why
            ok, submitted, content = False, False, f"error: {exc}"
            detail = {"error": type(exc).__name__, "reason": getattr(exc, "reason", None)}
        return ToolResult(call.id, call.name, content, ok=ok, submitted=submitted, submission=submission,
                          duration_s=time.monotonic() - start, detail=detail, images=images)  # fmt: skip

    # -- the actions ------------------------------------------------------------------------

    def _code(self, call: ToolCall) -> str:
        return code_of(call, self.screen)

    async def _act(self, code: str, sandbox: Sandbox, budget: float | None):
        limit = self.code_timeout if budget is None else max(min(self.code_timeout, budget), 1.0)
        args = {"code": code, "timeout": limit, "pause": self.pause, "screen": list(self.screen)}
        # The call's own deadline covers a worker restart and the screenshot on top of the code's.
        result = await sandbox.call("gui.act", args, timeout=limit + 30.0)
        if result.get("timed_out"):
            text = f"error: the action did not finish within {limit:g}s and was stopped"
        elif result.get("ok"):
            text = "done"
        else:
            line = result.get("line")
            text = f"error: {result.get('error')}" + (f" (line {line})" if line else "")
        if result.get("output"):
            text += f"\n[output]\n{result['output']}"
        detail = {"timed_out": bool(result.get("timed_out")), "action_s": result.get("duration_s"),
                  "screenshot_s": result.get("screenshot_s")}  # fmt: skip
        return bool(result.get("ok")), text, (_png(result),), detail

    async def _wait(self, args: Mapping[str, Any], sandbox: Sandbox, budget: float | None):
        unexpected = sorted(set(args) - {"seconds"})
        if unexpected:
            raise ToolCallError(f"wait: unexpected argument(s) {', '.join(unexpected)}")
        seconds = args.get("seconds", self.wait_s)
        if seconds is None:
            seconds = self.wait_s
        seconds = _number("wait", "seconds", seconds)
        if not 0 <= seconds <= self.max_wait_s:
            raise ToolCallError(f"wait: seconds must be from 0 to {self.max_wait_s:g}")
        if budget is not None:
            seconds = max(min(seconds, budget - 1.0), 0.0)
        await asyncio.sleep(seconds)
        shot = await sandbox.call("gui.screenshot", {"screen": list(self.screen)}, timeout=60.0)
        return f"waited {seconds:g}s", (_png(shot),)


# -- building code from structured calls ---------------------------------------------------------


def code_of(call: ToolCall, screen: tuple[int, int] = (1280, 800)) -> str:
    """The pyautogui code a call stands for: a ``pyautogui`` call's own code, or a structured
    call's, with its values checked and quoted (raises :class:`ToolCallError`). Structured calls
    run whether or not the toolset offers their schemas (a reference solution written as tool
    calls plays in the K2.5 env too)."""
    args = call.arguments
    if call.name == CODE_TOOL:
        code = args.get("code")
        if not isinstance(code, str) or not code.strip():
            raise ToolCallError("the code block is empty")
        return code
    builder = _BUILDERS.get(call.name)
    if builder is None:
        names = ", ".join(s["function"]["name"] for s in GUI_TOOLS)
        raise ToolCallError(f"unknown tool {call.name!r}; the tools are: {names} (or pyautogui code in the K2.5 format)")
    allowed, build = builder
    unexpected = sorted(set(args) - allowed)
    if unexpected:
        raise ToolCallError(f"{call.name}: unexpected argument(s) {', '.join(unexpected)}")
    return build(_Args(call.name, args, screen))


class _Args:
    """One structured call's arguments, read with the checks every tool shares."""

    def __init__(self, tool: str, args: Mapping[str, Any], screen: tuple[int, int]) -> None:
        self.tool, self.args, self.screen = tool, args, screen

    def point(self, x: str = "x", y: str = "y", *, required: bool = True) -> tuple[int, int] | None:
        if not required and self.args.get(x) is None and self.args.get(y) is None:
            return None
        px, py = (round(_number(self.tool, name, self.args.get(name))) for name in (x, y))
        width, height = self.screen
        if not (0 <= px < width and 0 <= py < height):
            raise ToolCallError(f"{self.tool}: ({px}, {py}) is off the screen, which is {width}x{height}")
        return px, py

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.args.get(name, default)
        value = default if value is None else value
        number = _number(self.tool, name, value)
        if number != int(number) or not low <= number <= high:
            raise ToolCallError(f"{self.tool}: {name} must be a whole number from {low} to {high}")
        return int(number)

    def button(self) -> str:
        button = self.args.get("button") or "left"
        if button not in ("left", "right", "middle"):
            raise ToolCallError(f"{self.tool}: button must be left, right or middle, not {button!r}")
        return button

    def keys(self, *, single: bool) -> list[str] | str:
        keys = self.args.get("keys")
        if isinstance(keys, str) and keys.startswith("["):  # a list written as text (Qwen XML calls)
            try:
                keys = json.loads(keys)
            except ValueError:
                pass
        if single and isinstance(keys, str) and keys:
            return keys
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k for k in keys):
            raise ToolCallError(f"{self.tool}: keys must be {'a key name or ' if single else ''}a list of key names")
        return keys

    def text(self, name: str) -> str:
        value = self.args.get(name)
        if not isinstance(value, str):
            raise ToolCallError(f"{self.tool}: {name} must be a string")
        return value


def _number(tool: str, name: str, value: Any) -> float:
    if isinstance(value, str):  # text-form calls carry every value as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ToolCallError(f"{tool}: {name} must be a number, not {value!r}")
    return value


def _click(a: _Args) -> str:
    x, y = a.point()
    return f"pyautogui.click(x={x}, y={y}, button={a.button()!r}, clicks={a.integer('clicks', 1, 1, 3)})"


def _drag(a: _Args) -> str:
    (x, y), (to_x, to_y) = a.point(), a.point("to_x", "to_y")
    # Moved there in steps, not in one jump: apps follow a drag by its motion events.
    return f"pyautogui.moveTo({x}, {y})\npyautogui.dragTo({to_x}, {to_y}, duration=0.3, button={a.button()!r})"


def _scroll(a: _Args) -> str:
    clicks = a.integer("clicks", 0, -100, 100)
    at = a.point(required=False)
    return f"pyautogui.scroll({clicks})" if at is None else f"pyautogui.scroll({clicks}, x={at[0]}, y={at[1]})"


_BUILDERS = {
    "click": ({"x", "y", "button", "clicks"}, _click),
    "double_click": ({"x", "y"}, lambda a: "pyautogui.doubleClick(x={}, y={})".format(*a.point())),
    "move": ({"x", "y"}, lambda a: "pyautogui.moveTo(x={}, y={})".format(*a.point())),
    "drag": ({"x", "y", "to_x", "to_y", "button"}, _drag),
    "type": ({"text"}, lambda a: f"pyautogui.write({a.text('text')!r})"),
    "press": ({"keys", "presses"}, lambda a: f"pyautogui.press({a.keys(single=True)!r}, presses={a.integer('presses', 1, 1, 100)})"),
    "hotkey": ({"keys"}, lambda a: f"pyautogui.hotkey(*{a.keys(single=False)!r})"),
    "scroll": ({"clicks", "x", "y"}, _scroll),
}  # fmt: skip


def _termination(args: Mapping[str, Any]) -> Termination:
    unexpected = sorted(set(args) - {"status", "answer"})
    if unexpected:
        raise ToolCallError(f"terminate: unexpected argument(s) {', '.join(unexpected)}")
    status, answer = args.get("status"), args.get("answer")
    if status not in ("success", "failure"):
        raise ToolCallError(f'terminate: status must be "success" or "failure", not {status!r}')
    if answer is not None and not isinstance(answer, str):
        answer = json.dumps(answer) if not isinstance(answer, (int, float)) else str(answer)
    return Termination(status, answer)


def _png(result: Mapping[str, Any]) -> Image:
    try:
        return Image(base64.b64decode(result["png_b64"], validate=True))
    except (KeyError, TypeError, binascii.Error) as exc:
        raise ToolServerError(f"the gui plugin answered without a screenshot: {exc}") from None
