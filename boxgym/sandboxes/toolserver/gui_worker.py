"""The agent's pyautogui code, run as the agent, in a process of its own: ``python3 -I gui_worker.py``.

Started by the ``gui`` plugin (``ops_gui.py``) with ``DISPLAY`` set, it imports pyautogui once,
answers ``{"ready": true}`` and then serves one JSON line per request on stdin,
``{"code": "...", "pause": 0.1}``, with one JSON line on stdout: ``{"ok": true, "output": ...}`` or
``{"ok": false, "error": ..., "line": n}``. The plugin kills it at a request's timeout and starts
another; it answers nothing it did not ask, so whatever this process writes is checked there.

The code may use ``pyautogui``, ``time`` and a few builtins by name, nothing else, and is held to
that twice: before it runs, every name, attribute and statement is checked against what is allowed
(:func:`check`), which refuses imports of anything else, ``def``, ``class``, ``lambda``, ``try``,
``with``, ``global``, any attribute that is not one of the offered functions (no dunders, no
``format``, no ``gi_frame``: the ways out of a restricted namespace) and any name that is neither
offered nor assigned by the code itself; then it runs in a namespace that holds only those
names, where ``pyautogui`` and ``time`` are small objects whose functions take plain values only
(pyautogui's own functions also take file names to find on the screen, callables and a flag that
writes screenshots to disk). Should both fail, the process is still the agent's own, with the
agent's rights: it cannot write the files of the apps under test, which run as another user.
"""

from __future__ import annotations

import ast
import io
import json
import os
import sys
import time

MAX_CODE = 64 * 1024
MAX_OUTPUT = 8 * 1024

_BUTTONS = ("left", "right", "middle", "primary", "secondary")
_STATEMENTS = (ast.Expr, ast.Assign, ast.AugAssign, ast.For, ast.While, ast.If, ast.Pass, ast.Break, ast.Continue)
_EXPRESSIONS = (
    ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.IfExp, ast.Call, ast.Constant, ast.Attribute,
    ast.Subscript, ast.Slice, ast.Name, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.ListComp, ast.SetComp,
    ast.DictComp, ast.comprehension, ast.JoinedStr, ast.FormattedValue, ast.keyword, ast.Starred, ast.NamedExpr,
    ast.expr_context, ast.operator, ast.unaryop, ast.boolop, ast.cmpop, ast.Module,
)  # fmt: skip
_REFUSED = {
    ast.FunctionDef: "def", ast.AsyncFunctionDef: "def", ast.Lambda: "lambda", ast.ClassDef: "class",
    ast.Try: "try", ast.With: "with", ast.Raise: "raise", ast.Global: "global", ast.Nonlocal: "nonlocal",
    ast.Delete: "del", ast.Assert: "assert", ast.GeneratorExp: "a generator expression", ast.Yield: "yield",
    ast.YieldFrom: "yield", ast.Await: "await", ast.AsyncFor: "async for", ast.AsyncWith: "async with",
    ast.ImportFrom: "from ... import", ast.Match: "match", ast.AnnAssign: "an annotation",
}  # fmt: skip


class CodeRefused(Exception):
    """The code uses something it may not; the message says what, and on which line."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


# -- what the code may call ------------------------------------------------------------


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, not {type(value).__name__}")
    return value


def _xy(x, y):
    """pyautogui also takes an image file name to find on the screen, or a point: only numbers here."""
    if isinstance(x, (tuple, list)) and y is None and len(x) == 2:
        x, y = x
    if x is not None:
        _number(x, "x")
    if y is not None:
        _number(y, "y")
    return x, y


def _button(button):
    if button not in _BUTTONS:
        raise ValueError(f"button must be one of {', '.join(map(repr, _BUTTONS))}, not {button!r}")
    return button


def _seconds(value, what="duration"):
    if _number(value, what) < 0:
        raise ValueError(f"{what} must not be negative")
    return value


def _count(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a whole number >= 0, not {value!r}")
    return value


class _Offered:
    """A namespace of functions with nothing else to reach: no ``__dict__``, no setting."""

    __slots__ = ()


def offered_pyautogui(pyautogui):
    """The ``pyautogui`` the code sees: its mouse and keyboard functions, taking plain values."""

    def key(name):
        if not isinstance(name, str) or not pyautogui.isValidKey(name):
            raise ValueError(f"unknown key {name!r}; keys are single characters or names such as 'enter', 'tab', "
                             "'esc', 'backspace', 'up', 'ctrl', 'shift', 'alt', 'f5'")  # fmt: skip
        return name

    def keys(value):
        return [key(k) for k in value] if isinstance(value, (list, tuple)) else key(value)

    def click(x=None, y=None, clicks=1, interval=0.0, button="left", duration=0.0):
        pyautogui.click(*_xy(x, y), clicks=_count(clicks, "clicks"), interval=_seconds(interval, "interval"),
                        button=_button(button), duration=_seconds(duration))  # fmt: skip

    def double_click(x=None, y=None, interval=0.0, button="left", duration=0.0):
        click(x, y, 2, interval, button, duration)

    def triple_click(x=None, y=None, interval=0.0, button="left", duration=0.0):
        click(x, y, 3, interval, button, duration)

    def right_click(x=None, y=None, interval=0.0, duration=0.0):
        click(x, y, 1, interval, "right", duration)

    def middle_click(x=None, y=None, interval=0.0, duration=0.0):
        click(x, y, 1, interval, "middle", duration)

    def move_to(x=None, y=None, duration=0.0):
        pyautogui.moveTo(*_xy(x, y), duration=_seconds(duration))

    def move_rel(xOffset=None, yOffset=None, duration=0.0):
        pyautogui.moveRel(*_xy(xOffset, yOffset), duration=_seconds(duration))

    def drag_to(x=None, y=None, duration=0.0, button="left"):
        pyautogui.dragTo(*_xy(x, y), duration=_seconds(duration), button=_button(button))

    def drag_rel(xOffset=0, yOffset=0, duration=0.0, button="left"):
        pyautogui.dragRel(*_xy(xOffset, yOffset), duration=_seconds(duration), button=_button(button))

    def mouse_down(x=None, y=None, button="left"):
        pyautogui.mouseDown(*_xy(x, y), button=_button(button))

    def mouse_up(x=None, y=None, button="left"):
        pyautogui.mouseUp(*_xy(x, y), button=_button(button))

    def scroll(clicks, x=None, y=None):
        pyautogui.scroll(int(_number(clicks, "clicks")), *_xy(x, y))

    def hscroll(clicks, x=None, y=None):
        pyautogui.hscroll(int(_number(clicks, "clicks")), *_xy(x, y))

    def write(message, interval=0.0):
        if isinstance(message, (list, tuple)):
            message = keys(message)  # typewrite(["a", "enter"]) types key names
        elif not isinstance(message, str):
            raise TypeError(f"write() takes a string, not {type(message).__name__}")
        pyautogui.write(message, interval=_seconds(interval, "interval"))

    def press(keys_, presses=1, interval=0.0):
        pyautogui.press(keys(keys_), presses=_count(presses, "presses"), interval=_seconds(interval, "interval"))

    def key_down(name):
        pyautogui.keyDown(key(name))

    def key_up(name):
        pyautogui.keyUp(key(name))

    def hotkey(*names, interval=0.0):
        pyautogui.hotkey(*[key(n) for n in names], interval=_seconds(interval, "interval"))

    def position():
        return pyautogui.position()

    def size():
        return pyautogui.size()

    def on_screen(x, y=None):
        return pyautogui.onScreen(*_xy(x, y))

    def sleep(seconds):
        time.sleep(_seconds(seconds, "seconds"))

    functions = {
        "click": click, "doubleClick": double_click, "tripleClick": triple_click, "rightClick": right_click,
        "middleClick": middle_click, "leftClick": click, "moveTo": move_to, "moveRel": move_rel, "move": move_rel,
        "dragTo": drag_to, "dragRel": drag_rel, "drag": drag_rel, "mouseDown": mouse_down, "mouseUp": mouse_up,
        "scroll": scroll, "vscroll": scroll, "hscroll": hscroll, "write": write, "typewrite": write,
        "press": press, "keyDown": key_down, "keyUp": key_up, "hotkey": hotkey, "position": position,
        "size": size, "onScreen": on_screen, "sleep": sleep,
    }  # fmt: skip
    return _namespace("pyautogui", functions)


def offered_time():
    def sleep(seconds):
        time.sleep(_seconds(seconds, "seconds"))

    return _namespace("time", {"sleep": sleep, "time": time.time, "monotonic": time.monotonic, "perf_counter": time.perf_counter})


def _namespace(name, functions):
    for key, fn in functions.items():
        if "<locals>" in getattr(fn, "__qualname__", ""):
            fn.__qualname__ = f"{name}.{key}"  # what an error message calls it
    body = {key: staticmethod(fn) for key, fn in functions.items()}
    namespace = type(name, (_Offered,), dict(body, __slots__=(), __repr__=lambda self: f"<module {name!r}>"))
    return namespace()


PYAUTOGUI_NAMES = frozenset({
    "click", "doubleClick", "tripleClick", "rightClick", "middleClick", "leftClick", "moveTo", "moveRel", "move",
    "dragTo", "dragRel", "drag", "mouseDown", "mouseUp", "scroll", "vscroll", "hscroll", "write", "typewrite",
    "press", "keyDown", "keyUp", "hotkey", "position", "size", "onScreen", "sleep",
})  # fmt: skip
TIME_NAMES = frozenset({"sleep", "time", "monotonic", "perf_counter"})
#: Attributes the code may read: the offered functions, and the fields of position() and size().
ATTRIBUTES = PYAUTOGUI_NAMES | TIME_NAMES | {"x", "y", "width", "height"}
MODULES = ("pyautogui", "time")


def _print_into(buffer):
    def print_(*values, sep=" ", end="\n"):
        if buffer.tell() < MAX_OUTPUT:
            buffer.write(str(sep).join(str(v) for v in values) + str(end))

    return print_


def safe_builtins(output):
    return {
        "abs": abs, "all": all, "any": any, "bool": bool, "dict": dict, "divmod": divmod, "enumerate": enumerate,
        "float": float, "int": int, "len": len, "list": list, "max": max, "min": min, "print": _print_into(output),
        "range": range, "reversed": reversed, "round": round, "sorted": sorted, "str": str, "sum": sum,
        "tuple": tuple, "zip": zip,
    }  # fmt: skip


BUILTIN_NAMES = frozenset(safe_builtins(io.StringIO()))


# -- the check -------------------------------------------------------------------------


def check(code: str) -> ast.Module:
    """The code's tree once everything in it is allowed, imports of ``pyautogui``/``time`` dropped
    (the names are there already); raises :class:`CodeRefused` or ``SyntaxError``."""
    if len(code) > MAX_CODE:
        raise CodeRefused(f"the code is {len(code)} characters; at most {MAX_CODE}", None)
    tree = ast.parse(code, "<code>", "exec")
    assigned = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    body = []
    for statement in tree.body:
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                if alias.name not in MODULES or (alias.asname not in (None, alias.name)):
                    raise CodeRefused(f"import {alias.name}{' as ' + alias.asname if alias.asname else ''}: only "
                                      "`import pyautogui` and `import time` (no other module, no alias)", statement.lineno)  # fmt: skip
            continue
        body.append(statement)
    tree.body = body
    known = assigned | BUILTIN_NAMES | set(MODULES)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", None)
        if isinstance(node, ast.Import):
            raise CodeRefused("imports belong at the top level, and only `import pyautogui` and `import time`", line)
        kind = type(node)
        if kind in _REFUSED:
            raise CodeRefused(f"{_REFUSED[kind]} is not allowed here: the code may call pyautogui and time "
                              "functions, assign variables, loop and branch", line)  # fmt: skip
        if not isinstance(node, _STATEMENTS + _EXPRESSIONS):
            raise CodeRefused(f"{kind.__name__} is not allowed here", line)
        if isinstance(node, ast.Name):
            if node.id.startswith("__") or node.id not in known:
                raise CodeRefused(f"name {node.id!r} is not available: the code may use pyautogui, time and "
                                  f"{', '.join(sorted(BUILTIN_NAMES))}", line)  # fmt: skip
            if node.id in MODULES and not isinstance(node.ctx, ast.Load):
                raise CodeRefused(f"{node.id!r} cannot be assigned", line)
        elif isinstance(node, ast.Attribute):
            if node.attr not in ATTRIBUTES:
                raise CodeRefused(f"attribute {node.attr!r} is not available; pyautogui offers "
                                  f"{', '.join(sorted(PYAUTOGUI_NAMES))}; time offers {', '.join(sorted(TIME_NAMES))}", line)  # fmt: skip
            if not isinstance(node.ctx, ast.Load):
                raise CodeRefused(f"attribute {node.attr!r} cannot be assigned", line)
    return tree


def run(code: str, namespaces: dict, pause: float, pyautogui) -> dict:
    """Check and run ``code``; every failure is an answer, never an exception."""
    output = io.StringIO()
    try:
        tree = check(code)
        compiled = compile(tree, "<code>", "exec", dont_inherit=True)
    except CodeRefused as exc:
        return {"ok": False, "error": f"refused: {exc}", "line": exc.line}
    except SyntaxError as exc:
        return {"ok": False, "error": f"SyntaxError: {exc.msg}", "line": exc.lineno}
    except (RecursionError, MemoryError, ValueError) as exc:  # nested too deep, NUL bytes
        return {"ok": False, "error": f"{type(exc).__name__}: the code cannot be parsed ({exc})", "line": None}
    pyautogui.PAUSE = pause
    scope = {"__builtins__": safe_builtins(output), **namespaces}
    try:
        exec(compiled, scope)  # noqa: S102 - the point of this process; see the module docstring
    except Exception as exc:  # noqa: BLE001 - the code's own failure is the answer
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000], "line": _line_of(exc), "output": output.getvalue()[:MAX_OUTPUT]}
    return {"ok": True, "output": output.getvalue()[:MAX_OUTPUT]}


def _line_of(exc: BaseException) -> int | None:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<code>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _release_held(pyautogui) -> None:
    """Let go of the buttons and keys a process killed at its timeout left pressed: the X server
    keeps them down, and the next code would type with shift held or drag instead of moving."""
    from Xlib import X
    from Xlib.ext import xtest

    display = pyautogui.platformModule._display
    root = display.screen().root
    mask = root.query_pointer().mask
    for button, held in ((1, X.Button1Mask), (2, X.Button2Mask), (3, X.Button3Mask)):
        if mask & held:
            xtest.fake_input(display, X.ButtonRelease, button)
    for index, byte in enumerate(display.query_keymap()):
        for bit in range(8):
            if byte & (1 << bit):
                xtest.fake_input(display, X.KeyRelease, index * 8 + bit)
    display.sync()


def main() -> None:
    reply = os.fdopen(os.dup(1), "w", encoding="utf-8")
    # Whatever else writes to stdout (a library's warning) must not mix with the answers.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    import pyautogui

    pyautogui.FAILSAFE = False  # a click in a corner is a click, not an exception
    _release_held(pyautogui)
    namespaces = {"pyautogui": offered_pyautogui(pyautogui), "time": offered_time()}
    width, height = pyautogui.size()
    reply.write(json.dumps({"ready": True, "screen": [width, height]}) + "\n")
    reply.flush()
    for line in sys.stdin:
        try:
            request = json.loads(line)
            code, pause = request["code"], float(request.get("pause", 0.1))
            if not isinstance(code, str):
                raise TypeError("code must be a string")
        except (ValueError, KeyError, TypeError) as exc:
            answer = {"ok": False, "error": f"bad request: {exc}"}
        else:
            answer = run(code, namespaces, pause, pyautogui)
        reply.write(json.dumps(answer) + "\n")
        reply.flush()


if __name__ == "__main__":
    main()
