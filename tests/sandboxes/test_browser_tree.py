"""The page as text: pruning, stable ids, descriptions of graphics, truncation (no browser needed)."""

from __future__ import annotations

import itertools

from boxgym.sandboxes.toolserver.browser_tree import TRUNCATED, IdMap, needs_description, read_snapshot, render
from boxgym.toolsets.browser import page_elements


def node(node_id, role, name="", children=(), backend=None, parent=None, ignored=False, value=None, props=()):
    out = {
        "nodeId": str(node_id),
        "role": {"value": role},
        "name": {"value": name},
        "childIds": [str(c) for c in children],
        "backendDOMNodeId": node_id if backend is None else backend,
        "ignored": ignored,
        "properties": [{"name": k, "value": {"value": v}} for k, v in props],
    }
    if parent is not None:
        out["parentId"] = str(parent)
    if value is not None:
        out["value"] = {"value": value}
    return out


def page():
    return [
        node(1, "RootWebArea", "Shop", [2], props=[("focused", True)]),
        node(2, "generic", "", [3, 4, 6, 8, 9, 10], parent=1),
        node(3, "StaticText", "Welcome  to\nthe shop", parent=2),
        node(4, "button", "Buy", [5], parent=2),
        node(5, "StaticText", "Buy", parent=4),  # repeats its parent's name: left out
        node(6, "textbox", "Email", [7], parent=2, value="a@b.c", props=[("required", True)]),
        node(7, "StaticText", "a@b.c", parent=6),  # repeats its parent's value: left out
        node(8, "checkbox", "News", parent=2, props=[("checked", "false")]),
        node(9, "Canvas", "", parent=2),  # empty and unusable: pruned
        node(10, "graphics-symbol", "", parent=2),  # unnamed graphic: described
        node(11, "InlineTextBox", "x", parent=3),
    ]


def counter():
    numbers = itertools.count(1)
    return lambda: next(numbers)


def test_the_tree_is_pruned_and_every_element_line_has_an_id():
    ids = IdMap()
    rendered = render(page(), ids, counter(), descriptions={10: "<circle> at (5,6)"})
    assert rendered.text.splitlines() == [
        'RootWebArea "Shop" focused',
        '  [1] StaticText "Welcome to the shop"',
        '  [2] button "Buy"',
        '  [3] textbox "Email" value="a@b.c" required',
        '  [4] checkbox "News" checked=false',
        "  [5] graphics-symbol <circle> at (5,6)",
    ]
    assert rendered.elements == 5 and not rendered.truncated
    assert ids.by_id[2] == 4 and ids.by_node[6] == 3


def test_ids_are_stable_across_observations_and_never_reused_after_a_new_document():
    ids, new_id = IdMap(), counter()
    first = render(page(), ids, new_id).text
    again = render(list(reversed(page())), ids, new_id).text
    assert "[2] button" in first and "[2] button" in again
    ids.clear()  # a new document: the same backend ids may come back from a new renderer
    fresh = render(page(), ids, new_id).text
    assert "[2] button" not in fresh and '[6] button "Buy"' in fresh


def test_a_long_page_is_cut_at_line_boundaries_with_a_marker():
    nodes = [node(1, "RootWebArea", "Long", list(range(2, 502)))]
    nodes += [node(i, "link", f"item number {i}", parent=1) for i in range(2, 502)]
    rendered = render(nodes, IdMap(), counter(), max_chars=2000)
    assert rendered.truncated and len(rendered.text) < 2200
    marker = next(line for line in rendered.text.splitlines() if line.startswith("[... boxgym"))
    assert marker.startswith(TRUNCATED.split("{")[0])
    assert all(line.startswith(("  [", "RootWebArea", "[...")) for line in rendered.text.splitlines())
    assert "item number 501" in rendered.text  # the tail is kept too


def test_graphics_are_described_from_the_dom_snapshot_and_hidden_content_says_collapsed():
    strings = ["svg", "circle", "LI", "UL", "SPAN"]
    snapshot = {
        "strings": strings,
        "documents": [
            {
                "nodes": {
                    "backendNodeId": [10, 11, 20, 21, 22],
                    "nodeName": [0, 1, 2, 3, 4],
                    "parentIndex": [-1, 0, -1, 2, 2],
                },
                "layout": {"nodeIndex": [0, 1, 2, 4], "bounds": [[0, 0, 100, 50], [1, 1, 2, 2], [0, 60, 10, 10], [0, 60, 5, 5]]},
            }
        ],
    }
    described, collapsed = read_snapshot(snapshot, [10])
    assert described == {10: "<svg of 1 circle> at (50,25)"}
    assert collapsed == {20}  # the list item shows, its nested list does not
    graphic = [node(10, "image", "", parent=None)]
    assert needs_description(graphic) == [10]


def test_the_agent_side_parser_reads_what_render_writes():
    text = "URL: x\nTitle: Shop\n\n" + render(page(), IdMap(), counter(), descriptions={10: "<circle> at (5,6)"}).text
    elements = page_elements(text)
    box = next(e for e in elements if e.role == "textbox")
    assert (box.id, box.name, box.value, box.states) == (3, "Email", "a@b.c", frozenset({"required"}))
    assert next(e for e in elements if e.role == "checkbox").states == {"checked=false"}
    assert next(e for e in elements if e.role == "graphics-symbol").detail == "<circle> at (5,6)"
