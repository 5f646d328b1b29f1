"""The K2.5 GUI action format: a thought, an action in words, and code, in the model's own text.

A reply reads::

    {thought}
    ## Action:
    {action}
    ## Code:
    ```python
    pyautogui.click(x=412, y=230)
    ```

and the code block holds pyautogui code, or one of two functions alone:

* ``computer.wait()`` (optionally ``computer.wait(seconds=5)``): wait, then look again; how long
  by default is the toolset's ``wait_s`` (20 s);
* ``computer.terminate(status="success"|"failure", answer=...)``: the task is done, or cannot be.

:class:`K25Parser` turns a reply into one call of :class:`~boxgym.toolsets.gui.GuiToolset`
(``pyautogui`` with the code, ``wait``, ``terminate``), answered in a user turn holding the result
line and the new screenshot (:attr:`ParsedAction.answer_in <boxgym.toolsets.calls.ParsedAction.answer_in>`).
A reply without a code block, or with ``computer.*`` mixed into other code, is an observation
saying what the format is. A message with OpenAI ``tool_calls`` is read by the default parser
instead, so a function-calling policy can use the same env. :func:`k25_reply` writes a reply in
the format (scripted policies and reference solutions use it); :func:`system_prompt` is the
env's default system prompt.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

from .calls import DefaultParser, ParsedAction, ParseError, ParseFailure, ToolCall, as_plain_action
from .gui import CODE_TOOL

__all__ = ["K25Parser", "SYSTEM_PROMPT", "k25_reply", "system_prompt"]

#: The env's default system prompt; ``{password}`` and the screen size are filled in by
#: :func:`system_prompt`.
SYSTEM_PROMPT = """You are a GUI agent. You are given a task and a screenshot of the screen, and after each of your actions you see the screen again. Complete the task with a series of pyautogui actions on a {width}x{height} screen; coordinates are pixels from the top-left corner.

Answer every step in this format:

(your reasoning about the screen and what to do next)
## Action:
(the next action, in one short sentence)
## Code:
```python
(pyautogui code for that action)
```

The code may use pyautogui (click, doubleClick, tripleClick, rightClick, moveTo, dragTo, mouseDown, mouseUp, scroll, write, press, keyDown, keyUp, hotkey) and time.sleep, and nothing else. Instead of pyautogui code, the code block may hold exactly one of:
- computer.wait() to wait for the screen to change;
- computer.terminate(status="success", answer=None) once the task is done, or computer.terminate(status="failure") if it cannot be done.

The password of the computer is {password}."""

_CODE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
_CODE_HEADER = re.compile(r"^#+[ \t]*code[ \t]*:?[ \t]*$", re.IGNORECASE | re.MULTILINE)
_SPECIAL = {"wait": {"seconds"}, "terminate": {"status", "answer"}}
_FORMAT = 'end the reply with "## Code:" and a ```python block holding pyautogui code, computer.wait() or computer.terminate(...)'


def system_prompt(password: str = "password", screen: tuple[int, int] = (1280, 800)) -> str:
    """The env's default system prompt, for this password and screen size."""
    return SYSTEM_PROMPT.format(password=password, width=screen[0], height=screen[1])


def k25_reply(thought: str, action: str, code: str) -> str:
    """A reply in the format (what a scripted policy or a reference solution writes)."""
    return f"{thought}\n## Action:\n{action}\n## Code:\n```python\n{code}\n```"


class K25Parser:
    """Reads K2.5 replies (module docstring); OpenAI ``tool_calls`` go to the default parser."""

    def __init__(self) -> None:
        self._calls = DefaultParser()

    def parse(self, action: object, *, id_prefix: str = "call_") -> ParsedAction:
        action = as_plain_action(action)
        if isinstance(action, Mapping):
            if action.get("tool_calls"):
                return self._calls.parse(action, id_prefix=id_prefix)
            content = action.get("content")
            text = content if isinstance(content, str) else ""
        elif isinstance(action, str):
            text = action
        else:
            return self._calls.parse(action, id_prefix=id_prefix)  # says what an action must be
        call = _call(text, f"{id_prefix}0")
        if isinstance(call, ParseError):
            return ParsedAction(text=text, errors=(call,), answer_in="user")
        return ParsedAction(text=text, calls=(call,), answer_in="user")


def _call(text: str, call_id: str) -> ToolCall | ParseError:
    visible = text.rsplit("</think>", 1)[-1]  # code only considered while reasoning is not an action
    header = None
    for header in _CODE_HEADER.finditer(visible):
        pass  # the last "## Code:" heading
    blocks = _CODE.findall(visible, header.end() if header else 0)
    if not blocks:
        return ParseError(ParseFailure.NO_CALL, f"no code block found; {_FORMAT}")
    code = blocks[0].strip()
    if not code:
        return ParseError(ParseFailure.NO_CALL, f"the code block is empty; {_FORMAT}")
    special = _computer_call(code)
    if isinstance(special, ParseError):
        return special
    if special is not None:
        name, arguments = special
        return ToolCall(call_id, name, arguments)
    return ToolCall(call_id, CODE_TOOL, {"code": code})


def _computer_call(code: str) -> tuple[str, dict[str, Any]] | ParseError | None:
    """``computer.wait(...)`` or ``computer.terminate(...)`` as a call; None for other code."""
    if "computer." not in code:
        return None
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None  # pyautogui code with a syntax error: the toolset says so, with the line
    statements = tree.body
    expression = statements[0].value if len(statements) == 1 and isinstance(statements[0], ast.Expr) else None
    if not (
        isinstance(expression, ast.Call)
        and isinstance(expression.func, ast.Attribute)
        and isinstance(expression.func.value, ast.Name)
        and expression.func.value.id == "computer"
        and expression.func.attr in _SPECIAL
    ):
        return ParseError(
            ParseFailure.BAD_SHAPE,
            "computer.wait() and computer.terminate(...) must be the whole code block, alone; "
            "there are no other computer functions (use pyautogui)",
            code[:200],
        )
    name = expression.func.attr
    try:
        arguments = {kw.arg: ast.literal_eval(kw.value) for kw in expression.keywords if kw.arg}
        positional = [ast.literal_eval(arg) for arg in expression.args]
    except ValueError:
        return ParseError(ParseFailure.BAD_SHAPE, f"computer.{name}(...) takes plain values only", code[:200])
    order = ("seconds",) if name == "wait" else ("status", "answer")
    if len(positional) > len(order) or any(kw.arg is None for kw in expression.keywords):
        return ParseError(ParseFailure.BAD_SHAPE, f"computer.{name}() takes {', '.join(order)}", code[:200])
    arguments.update(zip(order, positional))
    unknown = set(arguments) - _SPECIAL[name]
    if unknown:
        return ParseError(ParseFailure.BAD_SHAPE, f"computer.{name}() has no argument {sorted(unknown)[0]!r}", code[:200])
    return name, arguments
