"""The Desktop suite: small Tk applications, generated from a seed, used with the mouse and keyboard.

Seven kinds of task, one per seed, each an app that fills the screen (``gui_app.py`` draws it from
its description; every widget is where the description says):

=========  ==========================================================================
press      press the named button among others with similar names
form       fill in labelled fields and press Submit
menu       choose an item from one of the app's menus
value      set a slider or a spinbox to a value
checks     check exactly the boxes that match a rule (even numbers, fruits, ...)
editor     edit a text file in a small editor and save it
drag       drag items into the named boxes
=========  ==========================================================================

=====  ======================================================================
level  what makes it harder
=====  ======================================================================
0      the widgets the task needs and a few others
1      more widgets and menus, names that differ by one word, prefilled fields
2      + a notice dialog to close first; buttons that ask for confirmation
3      + the widgets in a scrolled area, the ones the task needs below the fold
=====  ======================================================================

The judge (:class:`~boxgym.judges.desktop.DesktopJudge`) opens the app before the agent's first
step and reads the state it wrote. The reference solution is structured GUI calls (``click``,
``type``, ``press``, ``hotkey``, ``scroll``, ``drag``, ``terminate``) computed from the layout:
where each widget is, how far the scrolled area must scroll. :func:`k25_reference` writes it in
the K2.5 text format.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np

from ...judges.desktop import AppOracle, Goal
from ...toolsets.gui import code_of
from ...toolsets.gui_format import k25_reply
from ..tasks import ProceduralTaskSet, Task
from .desktop_layout import MENUS, AppBuilder

__all__ = ["KINDS", "LEVELS", "TOOLS_PROMPT", "generate", "k25_reference", "task_set"]

LEVELS = 4
KINDS = ("press", "form", "menu", "value", "checks", "editor", "drag")
DEFAULT_SCREEN = (1280, 800)

_VERBS = "Archive Approve Export Print Delete Duplicate Send Merge Sync Reset Upload Publish Lock Share Rename Close".split()
_NOUNS = "order invoice report ticket draft contact album project budget note".split()
_FIELDS = "Name City Email Code Phone Company Street Country".split()
_FIRST = "Ada Bruno Chen Dara Emil Fatou Greta Hugo Ines Jonas Kai Lena".split()
_LAST = "Park Silva Novak Okafor Berg Moreau Tanaka Costa Weber Lind".split()
_CITIES = "Lyon Porto Oslo Kyoto Leeds Quito Lagos Perth Graz Turin".split()
_COUNTRIES = "Chile Norway Ghana Japan Peru Austria Kenya Canada".split()
_SETTINGS = "Volume|Brightness|Contrast|Speed|Quality|Zoom|Balance|Threshold".split("|")
_FRUITS = "apple pear plum cherry mango lemon grape peach".split()
_VEGETABLES = "carrot leek onion pepper potato radish celery".split()
_TOOLS = "hammer saw wrench drill pliers chisel".split()

#: The system prompt with the structured tools (``action_format="tools"``).
TOOLS_PROMPT = (
    "You are a GUI agent. You see a screenshot of the screen at the start and after each of your actions, and you "
    "use the computer with the tools: click, double_click, move, drag, type, press, hotkey, scroll and wait. "
    "Coordinates are pixels from the top-left corner of the screen. When the task is done, call terminate with "
    "status success; if it cannot be done, with status failure. The password of the computer is {password}."
)


# -- the kinds -------------------------------------------------------------------------------


def _press(app: AppBuilder) -> tuple[str, Goal]:
    rng = app.rng
    count = (4, 9, 12, 16)[app.level]
    verb, noun = str(rng.choice(_VERBS)), str(rng.choice(_NOUNS))
    names = {f"{verb} {noun}"}
    # Look-alikes: the same verb or the same noun.
    while len(names) < count:
        if rng.random() < 0.5 or app.level == 0:
            names.add(f"{rng.choice(_VERBS)} {noun if app.level else rng.choice(_NOUNS)}")
        else:
            names.add(f"{verb} {rng.choice(_NOUNS)}")
    target_name = f"{verb} {noun}"
    others = sorted(names - {target_name})
    cells = app.cells(count, below=1)
    target = app.button(target_name, cells[0], confirm=f"{verb.lower()} the {noun}")
    for name, at in zip(rng.permutation(others), cells[1:]):
        app.button(str(name), at, confirm=f"{str(name).split()[0].lower()} the {str(name).split()[1]}")
    app.decoy_menus()
    app.press(target)
    return f'Press the button "{target_name}" (and no other button).', Goal("press", target=target["id"])


def _form(app: AppBuilder) -> tuple[str, Goal]:
    rng = app.rng
    fields = [str(f) for f in rng.choice(_FIELDS, size=(2, 3, 3, 4)[app.level], replace=False)]
    decoys = [str(f) for f in rng.choice([f for f in _FIELDS if f not in fields], size=app.level, replace=False)]
    cells = app.cells(len(fields) + len(decoys) + 3, width=300, below=len(fields) // 2)
    wanted: dict[str, str] = {}
    entries: list[tuple[dict[str, Any], str]] = []
    for name, at in zip(fields + decoys, cells):
        app.add({"type": "label", "text": name, "x": 0, "y": 0, "w": 100, "h": 32}, at)
        prefill = str(rng.choice(_CITIES)) if app.level >= 1 and rng.random() < 0.5 else ""
        entry = app.add({"type": "entry", "id": app.next_id("e"), "value": prefill, "x": 105, "y": 0, "w": 185, "h": 32}, at)
        if name in fields:
            value = _field_value(rng, name)
            wanted[entry["id"]] = value
            entries.append((entry, value))
    submit = app.button("Submit", cells[len(fields) + len(decoys)], confirm="submit the form")
    for extra, at in zip(("Clear", "Cancel"), cells[len(fields) + len(decoys) + 1 :]):
        app.button(extra, at)
    app.decoy_menus()
    for entry, value in sorted(entries, key=lambda e: (e[0]["y"], e[0]["x"])):
        app.script.click(entry)
        app.script.add("hotkey", keys=["ctrl", "a"])
        app.script.add("type", text=value)
    app.press(submit)
    asked = ", ".join(f'{name} "{value}"' for name, (_, value) in zip(fields, entries))
    return f'Fill in the form with {asked}, leave the other fields as they are, then press "Submit".', Goal(
        "submit", target=submit["id"], values=wanted
    )


def _field_value(rng: np.random.Generator, name: str) -> str:
    if name == "Name":
        return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    if name == "City":
        return str(rng.choice(_CITIES))
    if name == "Country":
        return str(rng.choice(_COUNTRIES))
    if name == "Email":
        return f"{str(rng.choice(_FIRST)).lower()}.{str(rng.choice(_LAST)).lower()}@example.org"
    if name in ("Code", "Phone"):
        return str(int(rng.integers(10_000, 99_999)))
    return f"{rng.choice(_LAST)} {rng.choice(['Ltd', 'Street', 'Works'])}"


def _menu(app: AppBuilder) -> tuple[str, Goal]:
    rng = app.rng
    names = [str(n) for n in rng.choice(list(MENUS), size=(2, 4, 4, 5)[app.level], replace=False)]
    for i, name in enumerate(names):
        items = list(MENUS[name])
        app.menus.append({"id": f"m{i}", "label": name, "x": i * 90, "y": 0, "w": 86, "h": 28, "items": items})
    menu = app.menus[int(rng.integers(len(app.menus)))]
    index = int(rng.integers(1 if app.level else 0, len(menu["items"])))
    item = menu["items"][index]
    # Something to look at besides the menus (and to click by mistake).
    for text, at in zip(rng.permutation(_VERBS)[: 2 + 2 * app.level], app.cells(2 + 2 * app.level)):
        app.button(f"{text}", at)
    app.script.click(menu)
    if index:
        app.script.add("press", keys="down", presses=index)  # a menu opened by a click has its first item active
    app.script.add("press", keys="enter")
    return f'Choose "{item}" from the "{menu["label"]}" menu.', Goal("menu", target=menu["id"], item=item)


def _value(app: AppBuilder) -> tuple[str, Goal]:
    rng = app.rng
    names = [str(n) for n in rng.choice(_SETTINGS, size=(1, 3, 3, 4)[app.level], replace=False)]
    cells = app.cells(len(names), width=560, height=50, below=1)
    targets = []
    for name, at in zip(names, cells):
        low, high = 0, int(rng.choice([50, 100]))
        start = int(rng.integers(low, high + 1))
        app.add({"type": "label", "text": name, "x": 0, "y": 8, "w": 120, "h": 32}, at)
        if rng.random() < 0.5:
            widget = app.add({"type": "scale", "id": app.next_id("s"), "from": low, "to": high, "value": start,
                              "x": 130, "y": 0, "w": 380, "h": 50}, at)  # fmt: skip
        else:
            widget = app.add({"type": "spinbox", "id": app.next_id("n"), "from": low, "to": high, "value": start,
                              "x": 130, "y": 8, "w": 110, "h": 32}, at)  # fmt: skip
        targets.append((name, widget, start))
    name, widget, start = targets[0]
    value = int(rng.integers(widget["from"], widget["to"] + 1))
    while abs(value - start) < 5:
        value = int(rng.integers(widget["from"], widget["to"] + 1))
    app.decoy_menus()
    if widget["type"] == "scale":
        # A click gives the slider the keyboard; Home takes it to its lowest value, each Right up by one.
        app.script.click(widget, dy=0.75)
        app.script.add("press", keys="home")
        if value > widget["from"]:
            app.script.add("press", keys="right", presses=value - widget["from"])
        what = "slider"
    else:
        app.script.click(widget, dx=0.3)
        app.script.add("hotkey", keys=["ctrl", "a"])
        app.script.add("type", text=str(value))
        app.script.add("press", keys="tab")
        what = "spinbox"
    return f'Set the {what} "{name}" to {value}.', Goal("values", values={widget["id"]: value})


_RULES = (
    ("even", "whose number is even", lambda n: n % 2 == 0),
    ("over", "whose number is greater than {k}", None),
    ("three", "whose number is a multiple of 3", lambda n: n % 3 == 0),
)


def _checks(app: AppBuilder) -> tuple[str, Goal]:
    rng = app.rng
    count = (6, 9, 12, 14)[app.level]
    if rng.random() < 0.6:
        numbers = [int(n) for n in rng.choice(np.arange(1, 100), size=count, replace=False)]
        key, words, rule = _RULES[int(rng.integers(len(_RULES)))]
        if key == "over":
            k = int(sorted(numbers)[count // 2])
            words, rule = words.format(k=k), (lambda n, k=k: n > k)
        labels = [str(n) for n in numbers]
        match = [rule(n) for n in numbers]
    else:
        fruits = [str(f) for f in rng.choice(_FRUITS, size=count // 2, replace=False)]
        others = [str(v) for v in rng.choice(_VEGETABLES + _TOOLS, size=count - count // 2, replace=False)]
        labels = [*fruits, *others]
        order = rng.permutation(count)
        labels = [labels[i] for i in order]
        match = [label in fruits for label in labels]
        words = "that name a fruit"
    cells = app.cells(count, width=200, below=count // 3)
    boxes, flips = [], []
    for label, wanted, at in zip(labels, match, cells):
        initial = bool(app.level >= 1 and rng.random() < 0.3)
        box = app.add({"type": "check", "id": app.next_id("c"), "text": label, "value": initial, "x": 0, "y": 0, "w": 180, "h": 30}, at)
        boxes.append((box, wanted))
        if initial != wanted:
            flips.append(box)
    if not flips:  # the task asks for something to be done
        box, wanted = boxes[0]
        box["value"] = not wanted
        flips.append(box)
    app.decoy_menus()
    for box in sorted(flips, key=lambda b: (b["y"], b["x"])):
        app.script.click(box, dx=0.15)
    prompt = f"Check exactly the boxes {words}, and uncheck every other box."
    return prompt, Goal("values", values={box["id"]: wanted for box, wanted in boxes})


def _editor(app: AppBuilder) -> tuple[str, Goal]:
    rng = app.rng
    lines = [f"{rng.choice(_VERBS).lower()} {rng.choice(_NOUNS)} for {rng.choice(_FIRST)}" for _ in range((5, 10, 16, 40)[app.level])]
    lines = list(dict.fromkeys(lines))
    index = int(rng.integers(len(lines) // 2, len(lines)))
    new_line = f"{rng.choice(_VERBS).lower()} {rng.choice(_NOUNS)} for {rng.choice(_FIRST)}"
    while new_line in lines:
        new_line = f"{rng.choice(_VERBS).lower()} {rng.choice(_NOUNS)} for {rng.choice(_FIRST)}"
    change = int(rng.integers(3))
    edited = list(lines)
    if change == 0:
        edited[index] = new_line
        asked = f'Replace the line "{lines[index]}" with "{new_line}"'
    elif change == 1:
        del edited[index]
        asked = f'Delete the line "{lines[index]}"'
    else:
        edited.append(new_line)
        asked = f'Add the line "{new_line}" at the end'
    name = f"{rng.choice(_NOUNS)}s.txt"
    height = min(app.height - 200, 560)
    editor = app.add({"type": "editor", "id": "doc", "file": name, "value": "\n".join(lines) + "\n",
                      "x": 40, "y": 100, "w": min(app.width - 320, 900), "h": height})  # fmt: skip
    save = app.add({"type": "button", "id": "save", "text": "Save", "saves": "doc", "x": 40, "y": 100 + height + 12, "w": 120, "h": 34})
    for text, y in zip(rng.permutation(["Revert", "Word wrap", "Spelling", "Print"])[: 1 + app.level], range(100, 400, 50)):
        app.add({"type": "button", "id": app.next_id("b"), "text": str(text), "x": app.width - 260, "y": y, "w": 200, "h": 34})
    app.decoy_menus()
    app.script.click(editor)
    app.script.add("hotkey", keys=["ctrl", "a"])
    app.script.add("type", text="\n".join(edited) + "\n")
    if rng.random() < 0.5:
        app.script.add("hotkey", keys=["ctrl", "s"])
    else:
        app.script.click(save)
    text = "\n".join(edited) + "\n"
    return f"In the editor showing {name}: {asked}. Then save the file (Ctrl+S or the Save button).", Goal(
        "saved", target="doc", text=text
    )


def _drag(app: AppBuilder) -> tuple[str, Goal]:
    rng = app.rng
    groups = {"Fruit": _FRUITS, "Vegetables": _VEGETABLES, "Tools": _TOOLS}
    kinds = [str(k) for k in rng.choice(list(groups), size=(2, 2, 3, 3)[app.level], replace=False)]
    width, height = min(app.width - 80, 1100), min(app.height - 150, 620)
    boxes = [{"id": kind.lower(), "text": kind, "x": 20 + i * (width - 40) // len(kinds), "y": height - 230,
              "w": (width - 40) // len(kinds) - 20, "h": 210} for i, kind in enumerate(kinds)]  # fmt: skip
    names = [str(n) for kind in kinds for n in rng.choice(groups[kind], size=2, replace=False)]
    names = [names[i] for i in rng.permutation(len(names))][: (3, 4, 6, 6)[app.level]]
    items = [{"id": name, "text": name, "x": 30 + (i % 6) * 150, "y": 30 + (i // 6) * 70, "w": 120, "h": 44,
              "color": str(rng.choice(["#9cf", "#fc9", "#9f9", "#f9c"]))} for i, name in enumerate(names)]  # fmt: skip
    board = app.add({"type": "board", "id": "board", "x": 40, "y": 100, "w": width, "h": height, "items": items, "boxes": boxes})
    kind_of = {n: k.lower() for k in kinds for n in groups[k]}
    moving = names[:1] if app.level < 2 else [n for n in names if kind_of[n] == kind_of[names[0]]]
    app.decoy_menus()
    filled: dict[str, int] = {}
    for name in moving:
        item = next(i for i in items if i["id"] == name)
        box = next(b for b in boxes if b["id"] == kind_of[name])
        slot = filled.get(box["id"], 0)
        filled[box["id"]] = slot + 1
        start = (board["x"] + item["x"] + item["w"] // 2, board["y"] + item["y"] + item["h"] // 2)
        end = (board["x"] + box["x"] + box["w"] // 2, board["y"] + box["y"] + 60 + slot * 55)
        app.script.add("drag", x=start[0], y=start[1], to_x=end[0], to_y=end[1])
    box_name = next(b["text"] for b in boxes if b["id"] == kind_of[moving[0]])
    what = f'"{moving[0]}"' if len(moving) == 1 else "every " + {"fruit": "fruit", "vegetables": "vegetable", "tools": "tool"}[kind_of[moving[0]]]
    placed = {name: (kind_of[name] if name in moving else None) for name in names}
    return f'Drag {what} into the box "{box_name}"; leave the other items where they are.', Goal(
        "placed", target="board", values=placed
    )


_MAKERS = {"press": _press, "form": _form, "menu": _menu, "value": _value, "checks": _checks, "editor": _editor, "drag": _drag}


def generate(seed: int, level: int, *, screen: tuple[int, int] = DEFAULT_SCREEN, kinds: tuple[str, ...] = KINDS) -> Task:
    rng = np.random.default_rng(seed)
    kind = kinds[int(rng.integers(len(kinds)))]
    app = AppBuilder(rng, level, screen, kind)
    asked, goal = _MAKERS[kind](app)
    app.script.add("terminate", status="success")
    closing = " First close the notice that the app shows." if app.dialog is not None else ""
    prompt = f'In the "{app.title}" app on the screen: {asked}{closing} When the task is done, terminate with status success.'
    oracle = AppOracle(app.spec(), goal, screen)
    return Task(
        f"desktop/d{level}/s{seed}", prompt, oracle, reference=tuple(app.script.calls), difficulty=level,  # type: ignore[arg-type]
        metadata={"kind": kind, "screen": list(screen)},
    )  # fmt: skip


def task_set(screen: tuple[int, int] = DEFAULT_SCREEN, kinds: tuple[str, ...] = KINDS) -> ProceduralTaskSet:
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        raise ValueError(f"kinds must be some of {', '.join(KINDS)}, not {sorted(unknown) or 'none'}")
    return ProceduralTaskSet("desktop", functools.partial(generate, screen=tuple(screen), kinds=tuple(kinds)), LEVELS)


def k25_reference(task: Task) -> Iterator[str]:
    """The reference solution as K2.5 replies, one per step."""
    screen = tuple(task.metadata.get("screen", DEFAULT_SCREEN))
    for call in task.reference:
        if call.name == "terminate":
            yield k25_reply("The task is done.", "Finish.", f"computer.terminate(status={call.arguments['status']!r})")
        elif call.name == "wait":
            yield k25_reply("The screen is still changing.", "Wait.", "computer.wait()")
        else:
            yield k25_reply(f"Next: {call.name}.", f"{call.name} {dict(call.arguments)}", code_of(call, screen))  # type: ignore[arg-type]
