"""A small Tk application described as data: ``python3 -I gui_app.py SPEC.json STATE.json``.

Started by the ``gui`` plugin as the display's user (never the agent), it builds the window the
description asks for, every widget at an absolute position (so that where a thing is on the
screen follows from the description alone), and writes what happened to ``STATE.json`` after
every change, by rename (a reader never sees half of it)::

    {"ready": true, "values": {widget id: value}, "events": [{"kind": "press", "id": ...}, ...],
     "layout": {widget id: [x, y, width, height] on the screen}}

The description (``spec``)::

    {"title": str, "window": [w, h],
     "widgets": [{"type": ..., "id": ..., "x", "y", "w", "h", "scrolled": bool, ...}],
     "menus": [{"id", "label", "x", "y", "w", "h", "items": [str]}],
     "scroll": {"x", "y", "w", "h", "content_height", "unit"},   # the area of "scrolled" widgets
     "dialog": {"text", "x", "y", "w", "h", "button": BUTTON}}      # a modal dialog shown first

where a dialog's buttons (``BUTTON``: ``{"text", "x", "y", "w", "h"}``) are placed in the dialog.

Widget types and what they record: ``label`` (text); ``button`` (``press`` events with the
values of the entries, checks, scales and spinboxes at that moment; with ``confirm`` (a dialog:
``{"text", "x", "y", "w", "h", "ok": BUTTON, "cancel": BUTTON}``) a modal dialog asks first, and
its cancel button records ``cancel``; ``saves``: the id of an editor it saves);
``entry`` (its text; Ctrl+A selects it all, as in an editor); ``check`` (bool); ``scale`` (int; a click gives it the keyboard, where Home,
End and the arrows move it); ``spinbox`` (its text); ``editor`` (its text, and ``save`` events
with the saved text, on Ctrl+S or its save button); ``board`` (items dragged with the mouse into
boxes: ``drop`` events, and each item's box as its value). Menus record ``menu`` events. The
mouse wheel over the scrolled area scrolls it by ``unit`` pixels a notch.

Settling: a line written to the app's stdin (a number) is answered on its stdout with the same
line once the app has handled every event before it and the X server has drawn what it asked; a
modal dialog that a click opened is visible first. The plugin waits for it before a screenshot
and before the judge reads the state: the app runs at the lowest CPU priority, and on a busy
machine it may be behind the agent's clicks by far more than any fixed pause.
"""

from __future__ import annotations

import json
import os
import sys
import tkinter as tk

FONT = ("DejaVu Sans", -13)  # pixels: the same size whatever the display's DPI


class App:
    def __init__(self, spec: dict, state_path: str) -> None:
        self.spec, self.state_path = spec, state_path
        self.values: dict = {}
        self.events: list[dict] = []
        self.readers: dict = {}  # id -> function giving the widget's value
        self.widgets: dict = {}  # id -> the Tk widget (for the layout)
        self.editors: dict = {}  # id -> the Text widget of an editor
        self.form = [w["id"] for w in spec.get("widgets", ()) if w["type"] in ("entry", "check", "scale", "spinbox")]
        self._wheel = None  # scrolls the scrolled area, when there is one
        self.ready = False
        self._showing = 0  # modal dialogs being waited for (mapped and visible)
        self._pending: list[bytes] = []  # settle requests answered once they are shown
        self._requests = b""
        self.root = tk.Tk(className="boxgymapp")
        self.root.title(spec.get("title", "App"))
        width, height = spec.get("window", (800, 600))
        self.root.geometry(f"{width}x{height}+0+0")
        self.root.resizable(False, False)
        self.root.option_add("*Font", FONT)
        self.root.bind_all("<Control-s>", self._save_focused)
        # Ctrl+A selects everything, as in most applications (Tk's own binding moves to the line start).
        for kind in ("Entry", "Spinbox"):
            self.root.bind_class(kind, "<Control-a>", _select_all_entry)
        self.root.bind_class("Text", "<Control-a>", _select_all_text)
        self.area = self._scroll_area(spec.get("scroll"))
        for menu in spec.get("menus", ()):
            self._menu(menu)
        for widget in spec.get("widgets", ()):
            parent = self.area if widget.get("scrolled") and self.area is not None else self.root
            getattr(self, "_" + widget["type"])(parent, widget)
        self.root.after(50, self._shown)
        self.root.tk.createfilehandler(sys.stdin.fileno(), tk.READABLE, self._settle_requested)

    # -- state ------------------------------------------------------------------------------

    def write(self) -> None:
        for key, read in self.readers.items():
            self.values[key] = read()
        state = {"ready": self.ready, "values": self.values, "events": self.events, "layout": self._layout()}
        tmp = self.state_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(state, fh)
        os.replace(tmp, self.state_path)

    def event(self, kind: str, **fields) -> None:
        self.events.append({"kind": kind, **fields})
        self.write()

    def _layout(self) -> dict:
        out = {}
        for key, widget in self.widgets.items():
            if widget.winfo_ismapped():
                out[key] = [widget.winfo_rootx(), widget.winfo_rooty(), widget.winfo_width(), widget.winfo_height()]
        return out

    def _shown(self) -> None:
        self.root.update_idletasks()
        if not self.root.winfo_viewable():
            self.root.after(20, self._shown)
            return
        dialog = self.spec.get("dialog")
        if dialog and not self.ready:
            self._dialog(dialog)
        self.ready = True
        self.root.after(30, self.write)  # once the window (and the dialog) is drawn

    def _settle_requested(self, fd, _mask) -> None:
        data = os.read(fd, 4096)
        if not data:  # the plugin has gone: nobody asks any more
            self.root.tk.deletefilehandler(fd)
            return
        *asked, self._requests = (self._requests + data).split(b"\n")
        self._pending.extend(asked)
        self._answer()

    def _answer(self) -> None:
        if self._showing or not self._pending:
            return
        # A round trip reads every event the X server sent before it (a click, a new dialog's
        # Expose), whether still in the socket or already in Xlib's queue where select cannot see
        # it; update handles and draws them (a click may open a dialog, which is waited for and
        # answers this from its own idle callback); a last round trip: the server has drawn it all.
        self.root.winfo_pointerxy()
        self.root.update()
        if self._showing or not self._pending:
            return
        self.root.winfo_pointerxy()
        answers, self._pending = self._pending, []
        for line in answers:
            os.write(sys.stdout.fileno(), line + b"\n")

    def _form(self) -> dict:
        return {key: self.readers[key]() for key in self.form}

    # -- containers ---------------------------------------------------------------------------

    def _scroll_area(self, scroll: dict | None):
        if not scroll:
            return None
        canvas = tk.Canvas(self.root, highlightthickness=0, borderwidth=0)
        canvas.place(x=scroll["x"], y=scroll["y"], width=scroll["w"] - 16, height=scroll["h"])
        bar = tk.Scrollbar(self.root, orient="vertical", command=canvas.yview)
        bar.place(x=scroll["x"] + scroll["w"] - 16, y=scroll["y"], width=16, height=scroll["h"])
        frame = tk.Frame(canvas, width=scroll["w"] - 16, height=scroll["content_height"], borderwidth=0)
        canvas.create_window(0, 0, window=frame, anchor="nw")
        canvas.configure(scrollregion=(0, 0, scroll["w"] - 16, scroll["content_height"]),
                         yscrollincrement=scroll.get("unit", 20), yscrollcommand=bar.set)  # fmt: skip

        def wheel(notches: int) -> None:
            canvas.yview_scroll(notches, "units")
            self.write()

        self._wheel = wheel
        for widget in (canvas, frame):
            self._on_wheel(widget)
        return frame

    def _on_wheel(self, widget) -> None:
        if self._wheel is not None:
            widget.bind("<Button-4>", lambda e: self._wheel(-1), add="+")
            widget.bind("<Button-5>", lambda e: self._wheel(1), add="+")

    def _place(self, widget, spec: dict) -> None:
        widget.place(x=spec["x"], y=spec["y"], width=spec["w"], height=spec["h"])
        if spec.get("scrolled"):
            self._on_wheel(widget)
        if "id" in spec:
            self.widgets[spec["id"]] = widget

    # -- widgets ------------------------------------------------------------------------------

    def _label(self, parent, spec: dict) -> None:
        label = tk.Label(parent, text=spec["text"], anchor=spec.get("anchor", "w"), justify="left",
                         wraplength=spec["w"], fg=spec.get("color", "black"))  # fmt: skip
        self._place(label, spec)

    def _button(self, parent, spec: dict) -> None:
        key = spec["id"]

        def pressed() -> None:
            if spec.get("saves"):
                self._save(spec["saves"])
            if spec.get("confirm"):
                self._confirm(spec["confirm"], lambda: self.event("press", id=key, values=self._form()),
                              lambda: self.event("cancel", id=key))  # fmt: skip
            else:
                self.event("press", id=key, values=self._form())

        self._place(tk.Button(parent, text=spec["text"], command=pressed), spec)

    def _entry(self, parent, spec: dict) -> None:
        var = tk.StringVar(value=spec.get("value", ""))
        var.trace_add("write", lambda *_: self.write() if self.ready else None)
        self.readers[spec["id"]] = var.get
        self._place(tk.Entry(parent, textvariable=var), spec)

    def _check(self, parent, spec: dict) -> None:
        var = tk.BooleanVar(value=bool(spec.get("value", False)))
        self.readers[spec["id"]] = var.get
        box = tk.Checkbutton(parent, text=spec["text"], variable=var, anchor="w", command=self.write)
        self._place(box, spec)

    def _scale(self, parent, spec: dict) -> None:
        var = tk.IntVar(value=int(spec.get("value", spec["from"])))
        self.readers[spec["id"]] = var.get
        scale = tk.Scale(parent, from_=spec["from"], to=spec["to"], orient="horizontal", variable=var,
                         resolution=1, command=lambda _v: self.write() if self.ready else None)  # fmt: skip
        # A click gives it the keyboard (Tk's scale does not take it by itself): Home, End, arrows.
        scale.bind("<Button-1>", lambda e: scale.focus_set(), add="+")
        self._place(scale, spec)

    def _spinbox(self, parent, spec: dict) -> None:
        var = tk.StringVar(value=str(spec.get("value", spec["from"])))
        var.trace_add("write", lambda *_: self.write() if self.ready else None)
        self.readers[spec["id"]] = var.get
        spin = tk.Spinbox(parent, from_=spec["from"], to=spec["to"], textvariable=var, increment=1)
        self._place(spin, spec)

    def _editor(self, parent, spec: dict) -> None:
        text = tk.Text(parent, wrap="none", undo=True)
        text.insert("1.0", spec.get("value", ""))
        text.bind("<<Modified>>", lambda e: (text.edit_modified(False), self.write() if self.ready else None))
        self.readers[spec["id"]] = lambda: text.get("1.0", "end-1c")
        self.editors[spec["id"]] = text
        self._place(text, spec)

    def _save(self, key: str) -> None:
        content = self.editors[key].get("1.0", "end-1c")
        name = os.path.basename(str(self.spec_of(key).get("file", key + ".txt")))
        with open(os.path.join(os.path.dirname(self.state_path), name), "w", encoding="utf-8") as fh:
            fh.write(content)
        self.values[key + ":saved"] = content
        self.event("save", id=key, content=content)

    def _save_focused(self, _event=None) -> str:
        for key, text in self.editors.items():
            if self.root.focus_get() is text:
                self._save(key)
        return "break"

    def spec_of(self, key: str) -> dict:
        return next(w for w in self.spec.get("widgets", ()) if w.get("id") == key)

    def _board(self, parent, spec: dict) -> None:
        canvas = tk.Canvas(parent, bg=spec.get("background", "white"), highlightthickness=0, borderwidth=0)
        self._place(canvas, spec)
        for box in spec.get("boxes", ()):
            canvas.create_rectangle(box["x"], box["y"], box["x"] + box["w"], box["y"] + box["h"], outline="#444", width=2, dash=(4, 2))
            canvas.create_text(box["x"] + box["w"] / 2, box["y"] + 12, text=box["text"], font=FONT)
        where = {item["id"]: None for item in spec.get("items", ())}
        self.readers[spec["id"]] = lambda: dict(where)
        grabbed: dict = {}
        for item in spec.get("items", ()):
            tag = "item-" + item["id"]
            canvas.create_rectangle(item["x"], item["y"], item["x"] + item["w"], item["y"] + item["h"],
                                    fill=item.get("color", "#9cf"), outline="#222", tags=(tag, "item"))  # fmt: skip
            canvas.create_text(item["x"] + item["w"] / 2, item["y"] + item["h"] / 2, text=item["text"], font=FONT, tags=(tag, "item"))

        def press(event) -> None:
            found = canvas.find_withtag("current")
            tags = canvas.gettags(found[0]) if found else ()
            grabbed["tag"] = next((t for t in tags if t.startswith("item-")), None)
            grabbed["at"] = (event.x, event.y)

        def motion(event) -> None:
            if grabbed.get("tag"):
                x, y = grabbed["at"]
                canvas.move(grabbed["tag"], event.x - x, event.y - y)
                grabbed["at"] = (event.x, event.y)

        def release(_event) -> None:
            tag = grabbed.pop("tag", None)
            if not tag:
                return
            x0, y0, x1, y1 = canvas.bbox(tag)
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            inside = next((b["id"] for b in spec.get("boxes", ()) if b["x"] <= cx <= b["x"] + b["w"] and b["y"] <= cy <= b["y"] + b["h"]), None)
            where[tag[5:]] = inside
            self.event("drop", item=tag[5:], box=inside)

        canvas.tag_bind("item", "<ButtonPress-1>", press)
        canvas.bind("<B1-Motion>", motion)
        canvas.bind("<ButtonRelease-1>", release)

    def _menu(self, spec: dict) -> None:
        button = tk.Menubutton(self.root, text=spec["label"], relief="raised", borderwidth=1)
        menu = tk.Menu(button, tearoff=0)
        for item in spec["items"]:
            menu.add_command(label=item, command=lambda item=item: self.event("menu", menu=spec["id"], item=item))
        button["menu"] = menu
        self._place(button, spec)

    # -- dialogs ------------------------------------------------------------------------------

    def _modal(self, spec: dict, title: str):
        """A dialog at the place its description gives, holding the grab: the window behind takes
        no clicks until it is answered. Its buttons are placed relative to it."""
        top = tk.Toplevel(self.root)
        top.title(title)
        top.transient(self.root)
        top.geometry(f"{spec['w']}x{spec['h']}+{spec['x']}+{spec['y']}")
        top.resizable(False, False)
        top.configure(borderwidth=2, relief="ridge")
        tk.Label(top, text=spec["text"], wraplength=spec["w"] - 24, justify="left", anchor="nw").place(
            x=12, y=12, width=spec["w"] - 24, height=spec["h"] - 70)
        self._showing += 1
        try:
            top.wait_visibility()
        finally:
            self._showing -= 1
        top.grab_set()
        top.focus_set()
        self.root.after_idle(self._answer)  # a settle asked while it was being shown
        return top

    def _dialog(self, spec: dict) -> None:
        top = self._modal(spec, "Notice")

        def close() -> None:
            top.grab_release()
            top.destroy()
            self.event("dialog_closed")

        self._dialog_button(top, spec["button"], close)
        top.protocol("WM_DELETE_WINDOW", lambda: None)

    def _confirm(self, spec: dict, ok, cancel) -> None:
        top = self._modal(spec, "Confirm")

        def answer(then) -> None:
            top.grab_release()
            top.destroy()
            then()

        self._dialog_button(top, spec["cancel"], lambda: answer(cancel))
        self._dialog_button(top, spec["ok"], lambda: answer(ok))
        top.protocol("WM_DELETE_WINDOW", lambda: answer(cancel))

    @staticmethod
    def _dialog_button(top, spec: dict, command) -> None:
        tk.Button(top, text=spec["text"], command=command).place(x=spec["x"], y=spec["y"], width=spec["w"], height=spec["h"])


def _select_all_entry(event) -> str:
    event.widget.selection_range(0, "end")
    event.widget.icursor("end")
    return "break"


def _select_all_text(event) -> str:
    event.widget.tag_add("sel", "1.0", "end-1c")
    event.widget.mark_set("insert", "end-1c")
    return "break"


def main() -> None:
    spec_path, state_path = sys.argv[1], sys.argv[2]
    with open(spec_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    App(spec, state_path)
    tk.mainloop()


if __name__ == "__main__":
    main()
