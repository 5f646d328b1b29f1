"""Laying out a Desktop app and its reference solution together (:mod:`boxgym.envs.suites.desktop`).

An :class:`AppBuilder` writes an app's description (``gui_app.py`` draws it: every widget at an
absolute position) and, beside it, the :class:`Script` that solves it: since every widget is where
the description says, a click is the centre of its box, and a widget in a level-3 scrolled
:class:`Area` is reached by scrolling the area ``unit`` pixels a notch until it is in view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...toolsets.calls import ToolCall

__all__ = ["MENUS", "AppBuilder", "Area", "Script"]

_APPS = "Order desk|Ticket center|Invoice manager|Project board|Contact book|Budget planner|Field notes|Stock room".split("|")
_DIALOG_BUTTONS = ("Continue", "OK", "Got it", "Close")
MENUS = {
    "File": "New|Open|Open recent|Save|Save as|Export as PDF|Export as CSV|Print|Close".split("|"),
    "Edit": "Undo|Redo|Cut|Copy|Paste|Find|Find and replace|Select all".split("|"),
    "View": "Zoom in|Zoom out|Full screen|Show grid|Show rulers|Show sidebar|Dark theme".split("|"),
    "Tools": "Spelling|Word count|Macros|Options|Plugins|Statistics".split("|"),
    "Help": "Contents|Shortcuts|Report a bug|Check for updates|About".split("|"),
}


@dataclass
class Area:
    """The scrolled area of a level-3 app: widgets inside are placed relative to its content."""

    x: int
    y: int
    w: int
    h: int
    content_height: int
    unit: int = 40

    def spec(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h, "content_height": self.content_height, "unit": self.unit}


@dataclass
class Script:
    """The reference solution, built as the app is laid out: where to click, and how far to scroll."""

    area: Area | None = None
    calls: list[ToolCall] = field(default_factory=list)
    offset: int = 0  # how far the scrolled area has scrolled, in pixels

    def add(self, name: str, **arguments: Any) -> None:
        self.calls.append(ToolCall(f"ref_{len(self.calls)}", name, arguments))

    def point(self, widget: dict[str, Any], dx: float = 0.5, dy: float = 0.5) -> tuple[int, int]:
        """The screen point at (dx, dy) of ``widget``, scrolling its area first if it is out of view."""
        x, y = widget["x"] + int(widget["w"] * dx), widget["y"] + int(widget["h"] * dy)
        if not widget.get("scrolled"):
            return x, y
        area = self.area
        assert area is not None
        top, bottom = widget["y"] - self.offset, widget["y"] + widget["h"] - self.offset
        if top < 8 or bottom > area.h - 8:
            want = max(0, math.ceil((widget["y"] + widget["h"] + 16 - area.h) / area.unit) * area.unit)
            if widget["y"] - want < 8:  # taller than the view: its top in view
                want = max(0, (widget["y"] - 8) // area.unit * area.unit)
            notches = (want - self.offset) // area.unit
            self.add("scroll", clicks=-notches, x=area.x + area.w // 2, y=area.y + area.h // 2)
            self.offset = want
        return area.x + x, area.y + y - self.offset

    def click(self, widget: dict[str, Any], dx: float = 0.5, dy: float = 0.5, clicks: int = 1) -> None:
        x, y = self.point(widget, dx, dy)
        self.add("click", x=x, y=y, **({"clicks": clicks} if clicks != 1 else {}))


class AppBuilder:
    """An app's description being written, its reference solution beside it."""

    def __init__(self, rng: np.random.Generator, level: int, screen: tuple[int, int], kind: str) -> None:
        self.rng, self.level, self.kind = rng, level, kind
        self.width, self.height = screen
        self.title = str(rng.choice(_APPS))
        self.widgets: list[dict[str, Any]] = [
            {"type": "label", "text": self.title, "x": 40, "y": 40, "w": 600, "h": 30},
        ]
        self.menus: list[dict[str, Any]] = []
        # Level 3 scrolls the widgets of the kinds that have a grid of them (an editor scrolls its
        # own text, a board is one widget).
        scrolls = level >= 3 and kind in ("press", "form", "menu", "value", "checks")
        self.area = Area(40, 90, self.width - 80, self.height - 130, 2 * (self.height - 130)) if scrolls else None
        self.script = Script(self.area)
        self.dialog: dict[str, Any] | None = None
        self._ids = 0
        if level >= 2:
            self.dialog = self._notice()
            # The notice holds the grab: nothing else can be used before it is closed.
            self.script.add("click", **dict(zip(("x", "y"), self._dialog_button(self.dialog, "button"))))

    # -- layout -----------------------------------------------------------------------------

    def next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids}"

    def cells(self, count: int, *, width: int = 280, height: int = 40, below: int = 0) -> list[tuple[int, int, bool]]:
        """``count`` free places ``(x, y, scrolled)`` for widgets of a grid cell each, in a random order;
        in a level-3 app the first ``below`` of them lie below the visible part of the scrolled area."""
        columns = max((self.width - 80) // (width + 20), 1)
        if self.area is None:
            rows = max((self.height - 110) // (height + 12), 1)
            spots = [(40 + c * (width + 20), 100 + r * (height + 12), False) for r in range(rows) for c in range(columns)]
            order = self.rng.permutation(len(spots))
            return [spots[i] for i in order[:count]]
        rows = max((self.area.content_height - 20) // (height + 12), 1)
        visible_rows = (self.area.h - 20) // (height + 12)
        spots = [(10 + c * (width + 20), 10 + r * (height + 12), True) for r in range(rows) for c in range(min(columns, 3))]
        hidden = [s for s in spots if s[1] + height > self.area.h]
        shown = [s for s in spots if s[1] + height <= self.area.h and s[1] // (height + 12) < visible_rows]
        first = [hidden[i] for i in self.rng.permutation(len(hidden))[:below]]
        rest_pool = [s for s in shown + hidden if s not in first]
        rest = [rest_pool[i] for i in self.rng.permutation(len(rest_pool))[: count - len(first)]]
        return first + rest

    def add(self, widget: dict[str, Any], at: tuple[int, int, bool] | None = None) -> dict[str, Any]:
        if at is not None:
            widget = {**widget, "x": at[0] + widget.get("x", 0), "y": at[1] + widget.get("y", 0), "scrolled": at[2]}
        self.widgets.append(widget)
        return widget

    def _notice(self) -> dict[str, Any]:
        text = str(self.rng.choice([
            "Welcome back. Your workspace was restored from the last session.",
            "Tip of the day: most actions can be undone from the Edit menu.",
            "A new version is available. You can update later from the Help menu.",
        ]))  # fmt: skip
        return self._dialog_spec(text, {"button": str(self.rng.choice(_DIALOG_BUTTONS))})

    def confirm(self, action: str) -> dict[str, Any]:
        ok = str(self.rng.choice(["Yes", "Confirm", "OK"]))
        return self._dialog_spec(f"Do you really want to {action}?", {"ok": ok, "cancel": "Cancel"})

    def _dialog_spec(self, text: str, buttons: dict[str, str]) -> dict[str, Any]:
        w, h = 420, 170
        x, y = (self.width - w) // 2 + int(self.rng.integers(-60, 61)), (self.height - h) // 2 + int(self.rng.integers(-60, 61))
        spec: dict[str, Any] = {"text": text, "x": x, "y": y, "w": w, "h": h}
        right = w - 112
        for key in ("button", "ok", "cancel"):
            if key in buttons:
                spec[key] = {"text": buttons[key], "x": right if key != "cancel" else right - 110, "y": h - 46, "w": 100, "h": 34}
        return spec

    @staticmethod
    def _dialog_button(dialog: dict[str, Any], key: str) -> tuple[int, int]:
        button = dialog[key]
        return dialog["x"] + button["x"] + button["w"] // 2, dialog["y"] + button["y"] + button["h"] // 2

    def press(self, button: dict[str, Any]) -> None:
        """Press ``button`` in the reference, and answer its confirmation if it asks one."""
        self.script.click(button)
        if button.get("confirm"):
            self.script.add("click", **dict(zip(("x", "y"), self._dialog_button(button["confirm"], "ok"))))

    def button(self, text: str, at: tuple[int, int, bool], *, confirm: str | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": "button", "id": self.next_id("b"), "text": text, "w": 220, "h": 34, "x": 0, "y": 0}
        if confirm is not None and self.level >= 2 and self.rng.random() < 0.75:
            spec["confirm"] = self.confirm(confirm)
        return self.add(spec, at)

    def decoy_menus(self) -> None:
        if self.level >= 1 and not self.menus:
            for i, name in enumerate(self.rng.choice(list(MENUS), size=3, replace=False)):
                self.menus.append({"id": f"m{i}", "label": str(name), "x": i * 90, "y": 0, "w": 86, "h": 28,
                                   "items": list(MENUS[str(name)])})  # fmt: skip

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"title": self.title, "window": [self.width, self.height], "widgets": self.widgets, "menus": self.menus}
        if self.area is not None:
            spec["scroll"] = self.area.spec()
        if self.dialog is not None:
            spec["dialog"] = self.dialog
        return spec
