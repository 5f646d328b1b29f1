"""The agent's pyautogui code, attacked: it may use pyautogui, time and a few builtins by name, and
nothing else; the ways out of a restricted namespace (imports through builtins, getattr chains,
dunders, format strings, frames of generators) are refused before the code runs, and the offered
functions take plain values only. A refusal is an answer the agent reads, never a crash."""

from __future__ import annotations

import pytest

from boxgym.sandboxes import FakeSandbox
from boxgym.sandboxes.toolserver import gui_worker
from boxgym.sandboxes.toolserver.gui_worker import CodeRefused, check

from ..display import needs_display

ESCAPES = [
    pytest.param("import os", id="import"),
    pytest.param("import subprocess as pyautogui", id="import-as-allowed-name"),
    pytest.param("import pyautogui as pg", id="import-alias"),
    pytest.param("from pyautogui import click", id="from-import"),
    pytest.param("from os import *", id="star-import"),
    pytest.param("if True:\n    import pyautogui", id="nested-import"),
    pytest.param("__import__('os').system('id')", id="dunder-import"),
    pytest.param("__builtins__['open']('/etc/passwd')", id="builtins-dict"),
    pytest.param("open('/etc/passwd')", id="open"),
    pytest.param("eval('1')", id="eval"),
    pytest.param("exec('x = 1')", id="exec"),
    pytest.param("getattr(pyautogui, 'click')", id="getattr"),
    pytest.param("type(pyautogui)", id="type"),
    pytest.param("vars(pyautogui)", id="vars"),
    pytest.param("globals()", id="globals"),
    pytest.param("pyautogui.click.__globals__['os']", id="function-globals"),
    pytest.param("().__class__.__base__.__subclasses__()", id="subclasses-walk"),
    pytest.param("[x for x in [].__class__.__mro__]", id="mro-in-comprehension"),
    pytest.param("'{0.__class__}'.format(pyautogui)", id="format-string"),
    pytest.param("'{.__init__.__globals__}'.format_map({})", id="format-map"),
    pytest.param("f'{pyautogui.__dict__}'", id="f-string-dunder"),
    pytest.param("g = (x for x in [1])\ng.gi_frame.f_back", id="generator-frame"),
    pytest.param("x = [1]\nx.gi_frame", id="gi-frame-attribute"),
    pytest.param("pyautogui.platformModule._display", id="pyautogui-internals"),
    pytest.param("pyautogui.os.system('id')", id="pyautogui-os"),
    pytest.param("pyautogui.screenshot('/workspace/x.png')", id="screenshot-writes-files"),
    pytest.param("pyautogui.locateOnScreen('x.png')", id="locate-reads-files"),
    pytest.param("time.os", id="time-internals"),
    pytest.param("(lambda: 1)()", id="lambda"),
    pytest.param("def f():\n    pass", id="def"),
    pytest.param("class A:\n    pass", id="class"),
    pytest.param("try:\n    x = 1\nexcept Exception as e:\n    e.__traceback__", id="try"),
    pytest.param("with open('x') as f:\n    pass", id="with"),
    pytest.param("global x", id="global"),
    pytest.param("raise SystemExit", id="raise"),
    pytest.param("pyautogui = 1", id="rebind-pyautogui"),
    pytest.param("pyautogui.click = print", id="patch-attribute"),
    pytest.param("del time", id="del"),
    pytest.param("assert False", id="assert"),
    pytest.param("x: int = 1", id="annotation"),
    pytest.param("print(__name__)", id="dunder-name"),
]


@pytest.mark.parametrize("code", ESCAPES)
def test_every_way_out_is_refused_before_the_code_runs(code):
    with pytest.raises(CodeRefused) as refused:
        check(code)
    assert refused.value.line is not None or "import" in str(refused.value)


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("import pyautogui\nimport time\npyautogui.click(x=10, y=20)\ntime.sleep(0.5)", id="k25-style"),
        pytest.param("for i in range(3):\n    pyautogui.press('down')\npyautogui.press('enter')", id="loop"),
        pytest.param("p = pyautogui.position()\npyautogui.click(p.x + 5, p.y)", id="position-fields"),
        pytest.param("w, h = pyautogui.size()\npyautogui.moveTo(w // 2, h // 2)", id="size-unpacking"),
        pytest.param("keys = ['ctrl', 's']\npyautogui.hotkey(*keys)", id="star-args"),
        pytest.param("print(f'{sum([1, 2])} {max(1, 2)}', [i * i for i in range(3)])", id="builtins-and-f-strings"),
    ],
)
def test_ordinary_agent_code_passes_the_check(code):
    check(code)


class _Recorder:
    """Stands in for pyautogui: records what the offered functions pass on."""

    FAILSAFE = True
    PAUSE = 0.1

    def __init__(self):
        self.calls = []

    def isValidKey(self, key):
        return key in ("a", "enter", "ctrl", "s")

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


@pytest.mark.parametrize(
    ("code", "error"),
    [
        pytest.param("pyautogui.click('button.png')", "TypeError: x must be a number", id="image-file-name"),
        pytest.param("pyautogui.click(1, 2, logScreenshot=True)", "unexpected keyword argument 'logScreenshot'", id="log-screenshot"),
        pytest.param("pyautogui.moveTo(1, 2, tween=print)", "unexpected keyword argument 'tween'", id="tween-callable"),
        pytest.param("pyautogui.press('rm -rf')", "ValueError: unknown key 'rm -rf'", id="unknown-key"),
        pytest.param("pyautogui.click(1, 2, button='any')", "button must be one of", id="bad-button"),
        pytest.param("pyautogui.write(pyautogui)", "write() takes a string", id="write-object"),
        pytest.param("time.sleep(-1)", "must not be negative", id="negative-sleep"),
    ],
)
def test_the_offered_functions_take_plain_values_only(code, error):
    recorder = _Recorder()
    namespaces = {"pyautogui": gui_worker.offered_pyautogui(recorder), "time": gui_worker.offered_time()}
    answer = gui_worker.run(code, namespaces, 0.0, recorder)
    assert answer["ok"] is False and error in answer["error"], answer
    assert recorder.calls == []


def test_a_plain_call_passes_on_with_only_the_values_given():
    recorder = _Recorder()
    namespaces = {"pyautogui": gui_worker.offered_pyautogui(recorder), "time": gui_worker.offered_time()}
    answer = gui_worker.run("pyautogui.click(3, 4, clicks=2)\npyautogui.hotkey('ctrl', 's')", namespaces, 0.0, recorder)
    assert answer == {"ok": True, "output": ""}
    assert recorder.calls == [
        ("click", (3, 4), {"clicks": 2, "interval": 0.0, "button": "left", "duration": 0.0}),
        ("hotkey", ("ctrl", "s"), {"interval": 0.0}),
    ]


@needs_display
async def test_in_the_worker_a_refusal_and_a_runtime_escape_attempt_are_answers():
    async with FakeSandbox() as sb:
        refused = await sb.call("gui.act", {"code": "pyautogui.click.__globals__['os'].system('id')"}, timeout=60)
        assert refused["ok"] is False and refused["error"].startswith("refused: attribute") and refused["line"] == 1
        # The names the code did not get are not there at run time either.
        print_ = await sb.call("gui.act", {"code": "print(pyautogui, time, str(print)[:9])"}, timeout=60)
        assert print_["ok"] is True and print_["output"] == "<module 'pyautogui'> <module 'time'> <function\n"
        huge = await sb.call("gui.act", {"code": "x = 1\n" * 70_000}, timeout=60)
        assert huge["ok"] is False and "at most 65536" in huge["error"]
        deep = await sb.call("gui.act", {"code": "x = " + "(" * 5000 + "1" + ")" * 5000}, timeout=60)
        assert deep["ok"] is False and ("cannot be parsed" in deep["error"] or "SyntaxError" in deep["error"])
        assert (await sb.call("gui.act", {"code": "pyautogui.click(1, 1)"}, timeout=60))["ok"] is True
