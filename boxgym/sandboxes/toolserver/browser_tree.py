"""The page as the agent reads it: Chromium's accessibility tree, pruned, one id per element.

Input is what CDP's ``Accessibility.getFullAXTree`` returns (Chromium's own tree: roles, names
and states as assistive technology sees them). Pruning keeps what carries meaning: nodes that
are ignored, generic containers and line breaks give way to their children, a text that only
repeats its parent's name is left out, and an empty leaf that cannot be used (a bare canvas, an
empty paragraph) goes. What is left is one line per node, indented by depth::

    [12] button "Submit" focused
    [13] textbox "Email" value="a@b.c" required
    StaticText "Total: 42"

Every node kept that stands for a DOM node gets an id: controls, and also text and graphics,
since pages make spans and SVG shapes clickable. An id is **stable**: the same element keeps
its number across observations for as long as its document lives, and numbers are never
reused within a browser, so an old id can only fail ("not on the page"), never hit another
element. An element without an accessible name that is an image or a graphic is described by
its tag and the centre of its box (``<circle> at (80,120)``; an SVG also says what it draws,
``<svg of 1 polygon> at (80,87)``), the only way to tell such shapes
apart in text. A shown element holding content that is not shown (a collapsed folder of a file
tree, a closed section) says ``collapsed``, as a sighted user reads from its icon. Long pages are cut, head and tail kept, with a marker that says so.

Pure functions over plain data: unit-tested without a browser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["IdMap", "Rendered", "TRUNCATED", "needs_description", "read_snapshot", "render"]

TRUNCATED = "[... boxgym: page truncated, {omitted} characters omitted; scroll or act to see other parts ...]"

# Give way to their children: they add structure, no meaning.
_HOIST = frozenset({"generic", "none", "presentation", "GenericContainer", "Ignored", "LineBreak", "Section"})
_SKIP = frozenset({"InlineTextBox"})
# Kept even when empty and unnamed: the agent must be able to act on them.
_INTERACTIVE = frozenset({
    "button", "checkbox", "combobox", "link", "listbox", "menuitem", "menuitemcheckbox", "menuitemradio",
    "option", "radio", "scrollbar", "searchbox", "slider", "spinbutton", "switch", "tab", "textbox",
    "treeitem", "TextField", "PopUpButton", "ComboBoxMenuButton", "ComboBoxGrouping", "DisclosureTriangle",
})  # fmt: skip
# Described by tag and position when they have no name.
_GRAPHIC = frozenset({"img", "image", "graphics-symbol", "graphics-object", "SvgRoot", "graphics-document"})
_SHOWN_STATES = (
    "focused", "checked", "selected", "expanded", "pressed", "disabled", "required", "readonly", "multiline", "invalid",
)  # fmt: skip
_TWO_SIDED = frozenset({"checked", "expanded", "pressed"})
_SPACE = re.compile(r"\s+")


@dataclass
class IdMap:
    """The ids of one tab's current document: backend DOM node id <-> the agent's id."""

    by_node: dict[int, int] = field(default_factory=dict)
    by_id: dict[int, int] = field(default_factory=dict)

    def id_for(self, node: int, new_id: Callable[[], int]) -> int:
        known = self.by_node.get(node)
        if known is None:
            known = self.by_node[node] = new_id()
            self.by_id[known] = node
        return known

    def clear(self) -> None:
        """A new document: its nodes are new (and backend ids may repeat in a new renderer)."""
        self.by_node.clear()
        self.by_id.clear()


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    truncated: bool
    elements: int  # lines with an id


def _value(field_: Mapping[str, Any] | None) -> Any:
    return None if not field_ else field_.get("value")


def _text(value: Any) -> str:
    return _SPACE.sub(" ", str(value)).strip() if value is not None else ""


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _states(node: Mapping[str, Any]) -> list[str]:
    props = {p.get("name"): _value(p.get("value")) for p in node.get("properties", ())}
    out = []
    for state in _SHOWN_STATES:
        value = props.get(state)
        if value in (True, "true"):
            out.append(state)
        elif value in (False, "false"):
            if state in _TWO_SIDED:  # an unchecked box is news; a field that is not required is not
                out.append(f"{state}=false")
        elif value is not None:
            out.append(f"{state}={value}")  # checked=mixed, invalid=spelling
    level = props.get("level")
    if level is not None and node.get("role", {}).get("value") == "heading":
        out.append(f"level={level}")
    url = props.get("url")
    if url and node.get("role", {}).get("value") == "link":
        out.append(f"url={_quote(str(url))}")
    return out


def needs_description(nodes: Sequence[Mapping[str, Any]]) -> list[int]:
    """Backend ids of the unnamed graphics, which :func:`render` describes by tag and position."""
    return [
        n["backendDOMNodeId"]
        for n in nodes
        if not n.get("ignored")
        and _value(n.get("role")) in _GRAPHIC
        and not _text(_value(n.get("name")))
        and n.get("backendDOMNodeId") is not None
    ]


# Holders of content: one of these without a box inside a shown element is hidden content.
_CONTENT = frozenset({"UL", "OL", "DL", "DIV", "SECTION", "TABLE", "TBODY", "LI", "P", "NAV", "FORM", "ARTICLE"})


def read_snapshot(snapshot: Mapping[str, Any], wanted: Sequence[int]) -> tuple[dict[int, str], frozenset[int]]:
    """From CDP's ``DOMSnapshot.captureSnapshot``: ``<tag> at (x,y)`` for the ``wanted`` backend
    ids (an SVG also says what it draws), and the elements that are shown but hold content that
    is not (a collapsed folder of a tree, a closed section): what a sighted user reads from an
    icon, which the accessibility tree does not say."""
    want, described, collapsed = set(wanted), {}, set()
    strings = snapshot.get("strings", [])
    for doc in snapshot.get("documents", ()):
        nodes = doc.get("nodes", {})
        backend, names, parents = nodes.get("backendNodeId", []), nodes.get("nodeName", []), nodes.get("parentIndex", [])
        layout = doc.get("layout", {})
        boxes = dict(zip(layout.get("nodeIndex", []), layout.get("bounds", [])))
        tag = [strings[n] if 0 <= n < len(strings) else "" for n in names]
        drawn: dict[int, dict[str, int]] = {}
        for i, parent in enumerate(parents):
            if parent < 0:
                continue
            if tag[i] in _CONTENT and i not in boxes and parent in boxes:
                collapsed.add(backend[parent])
            if tag[i] in ("circle", "rect", "polygon", "ellipse", "line", "path", "polyline", "text", "image"):
                owner = parent
                while owner >= 0 and tag[owner] != "svg":
                    owner = parents[owner]
                if owner >= 0:
                    counts = drawn.setdefault(owner, {})
                    counts[tag[i]] = counts.get(tag[i], 0) + 1
        for i, node in enumerate(backend):
            if node not in want:
                continue
            box = boxes.get(i)
            where = f" at ({box[0] + box[2] / 2:.0f},{box[1] + box[3] / 2:.0f})" if box and len(box) == 4 else ""
            shapes = drawn.get(i)
            what = " of " + ", ".join(f"{n} {t}" for t, n in list(shapes.items())[:5]) if shapes else ""
            described[node] = f"<{tag[i].lower()}{what}>{where}"
    return described, frozenset(collapsed)


def render(
    nodes: Sequence[Mapping[str, Any]],
    ids: IdMap,
    new_id: Callable[[], int],
    *,
    descriptions: Mapping[int, str] | None = None,
    collapsed: frozenset[int] = frozenset(),
    max_chars: int = 20_000,
) -> Rendered:
    """The pruned tree as text (see the module docstring); assigns ids through ``ids``."""
    by_id = {n["nodeId"]: n for n in nodes}
    roots = [n for n in nodes if not n.get("parentId") or n.get("parentId") not in by_id]
    descriptions = descriptions or {}
    lines: list[str] = []
    elements = 0

    def visit(node: Mapping[str, Any], depth: int, parent_says: tuple[str, ...]) -> bool:
        """Append the node's lines; True when it (or a descendant) added any."""
        nonlocal elements
        role = _value(node.get("role")) or ""
        if role in _SKIP:
            return False
        name = _text(_value(node.get("name")))
        children = [by_id[c] for c in node.get("childIds", ()) if c in by_id]
        if node.get("ignored") or (role in _HOIST and not name):
            shown = False
            for child in children:
                shown |= visit(child, depth, parent_says)
            return shown
        if role == "StaticText" and (not name or name in parent_says):
            return False  # a button's label, a field's text: its parent's line says it already
        value = _text(_value(node.get("value")))
        backend = node.get("backendDOMNodeId")
        at = len(lines)
        lines.append("")  # placeholder: the line is known once the children are
        shown_children = False
        for child in children:
            shown_children |= visit(child, depth + 1, (name, value) if name or value else parent_says)
        description = descriptions.get(backend) if backend is not None and not name else None
        keep = bool(name or value or shown_children or description or role in _INTERACTIVE or role == "RootWebArea")
        if not keep:
            del lines[at:]
            return False
        parts = [role, _quote(name)] if (name or role in _INTERACTIVE) else [role]
        if description:
            parts.append(description)
        if value and value != name:
            parts.append(f"value={_quote(value)}")
        parts.extend(_states(node))
        if backend in collapsed and role not in _INTERACTIVE and "expanded" not in parts[-1]:
            parts.append("collapsed")
        head = "  " * depth
        if backend is not None and role != "RootWebArea":
            head += f"[{ids.id_for(backend, new_id)}] "
            elements += 1
        lines[at] = head + " ".join(parts)
        return True

    for root in roots:
        visit(root, 0, ())
    text = "\n".join(lines)
    if len(text) <= max_chars:
        return Rendered(text, False, elements)
    half = max_chars // 2
    head, tail = text[:half], text[len(text) - half :]
    # Cut at line boundaries: a half line with an id would be misread.
    head = head[: head.rfind("\n")] if "\n" in head else head
    tail = tail[tail.find("\n") + 1 :] if "\n" in tail else tail
    marker = TRUNCATED.format(omitted=len(text) - len(head) - len(tail))
    return Rendered(f"{head}\n{marker}\n{tail}", True, elements)
