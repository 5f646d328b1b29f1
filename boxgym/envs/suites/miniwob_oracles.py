"""Scripted oracles for MiniWoB++ tasks: policies that read the same observations an agent reads.

An oracle is a generator function ``oracle(utterance, page)``: it yields the next tool call and
is sent the page text that call's observation showed (the tool message), until the task is
done. It sees exactly what a policy sees: the utterance and the pruned accessibility tree
(:func:`~boxgym.toolsets.browser.page_elements` reads it), never the page's script or DOM. Adding
one for another task is the only code that task needs (:data:`ORACLES`).

:func:`play` runs one through an env made by ``gym.make``, as the tests and ``boxgym envs``
users do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator, Iterable
from typing import Any

from ...toolsets.browser import Element, page_elements

__all__ = ["ORACLES", "Oracle", "play", "tool_message"]

Call = tuple[str, dict[str, Any]]
Oracle = Callable[[str, str], Generator[Call, str, None]]


def tool_message(name: str, arguments: dict[str, Any], call_id: str = "oracle") -> dict[str, Any]:
    """The assistant message that makes one tool call."""
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
    return {"role": "assistant", "content": "", "tool_calls": [call]}


def _quoted(utterance: str) -> str:
    match = re.search(r'"(.*?)"', utterance)
    if match is None:
        raise ValueError(f"no quoted text in {utterance!r}")
    return match[1]


def _find(page: str, role: str | None = None, name: str | None = None, *, skip_first: bool = False) -> Element:
    found = _all(page, role, name, skip_first=skip_first)
    if not found:
        raise LookupError(f"no {role or 'element'} {name!r} on the page:\n{page}")
    return found[0]


def _all(page: str, role: str | None = None, name: str | None = None, *, skip_first: bool = False) -> list[Element]:
    elements = page_elements(page)
    if skip_first:  # the utterance's own text, which repeats what it asks for
        elements = elements[2:] if elements and elements[0].id is None else elements[1:]
    return [
        e for e in elements if e.id is not None and (role is None or e.role == role) and (name is None or e.name == name)
    ]


def click(element: Element) -> Call:
    return "click", {"id": element.id}


def type_(element: Element, text: str, submit: bool = False) -> Call:
    return "type", {"id": element.id, "text": text, **({"submit": True} if submit else {})}


def _click_all(page: str, targets: Iterable[tuple[str | None, str]]) -> Generator[Call, str, str]:
    for role, name in targets:
        page = yield click(_find(page, role, name))
    return page


# -- the oracles -----------------------------------------------------------------------


def click_button(utterance: str, page: str) -> Generator[Call, str, None]:
    yield click(_find(page, "button", _quoted(utterance)))


def click_button_sequence(utterance: str, page: str) -> Generator[Call, str, None]:
    first, second = re.findall(r"button (\S+?)[,.]", utterance)
    yield from _click_all(page, [("button", first), ("button", second)])


def click_checkboxes(utterance: str, page: str) -> Generator[Call, str, None]:
    listed = re.match(r"Select (.*) and click Submit\.", utterance)
    assert listed is not None, utterance
    names = [] if listed[1] == "nothing" else [n.strip() for n in re.split(r",| and ", listed[1]) if n.strip()]
    for name in names:
        page = yield click(_find(page, "checkbox", name))
    yield click(_find(page, "button", "Submit"))


def click_collapsible(utterance: str, page: str) -> Generator[Call, str, None]:
    header = next(e for e in _all(page, "tab") if e.name.startswith("Section"))
    page = yield click(header)
    yield click(_find(page, "button", "Submit"))


def click_dialog(utterance: str, page: str) -> Generator[Call, str, None]:
    yield click(_find(page, "button", "Close"))


def click_link(utterance: str, page: str) -> Generator[Call, str, None]:
    yield click(_find(page, None, _quoted(utterance), skip_first=True))


def click_option(utterance: str, page: str) -> Generator[Call, str, None]:
    name = re.match(r"Select (.*) and click Submit\.", utterance)
    assert name is not None, utterance
    page = yield click(_find(page, "radio", name[1]))
    yield click(_find(page, "button", "Submit"))


def click_widget(utterance: str, page: str) -> Generator[Call, str, None]:
    kind = _quoted(utterance)
    if kind in ("text", "textarea"):
        multiline = kind == "textarea"
        target = next(e for e in _all(page, "textbox") if ("multiline" in e.states) == multiline)
    else:
        target = _find(page, kind)
    yield click(target)


def enter_text(utterance: str, page: str) -> Generator[Call, str, None]:
    page = yield type_(_find(page, "textbox"), _quoted(utterance))
    yield click(_find(page, "button", "Submit"))


def enter_password(utterance: str, page: str) -> Generator[Call, str, None]:
    password = _quoted(utterance)
    for box in _all(page, "textbox"):
        page = yield type_(box, password)
    yield click(_find(page, "button", "Submit"))


def focus_text(utterance: str, page: str) -> Generator[Call, str, None]:
    yield click(_find(page, "textbox"))


_ORDINALS = {"1st": 0, "2nd": 1, "3rd": 2, "4th": 3, "5th": 4}


def focus_text_2(utterance: str, page: str) -> Generator[Call, str, None]:
    nth = re.search(r"(\d(?:st|nd|rd|th))", utterance)
    assert nth is not None, utterance
    yield click(_all(page, "textbox")[_ORDINALS[nth[1]]])


def login_user(utterance: str, page: str) -> Generator[Call, str, None]:
    username, password = re.findall(r'"(.*?)"', utterance)[:2]
    user_box, password_box = _all(page, "textbox")[:2]
    page = yield type_(user_box, username)
    page = yield type_(password_box, password)
    yield click(_find(page, "button", "Login"))


def navigate_tree(utterance: str, page: str) -> Generator[Call, str, None]:
    name = _quoted(utterance)
    opened: set[str] = set()
    while True:
        shown = _all(page, "StaticText", name, skip_first=True)
        if shown:
            yield click(shown[0])
            return
        # Open a folder (a list item that holds hidden content); clicking a file would end the task.
        elements = page_elements(page)
        folder = next(
            (elements[i + 1] for i, e in enumerate(elements[:-1])
             if e.role == "listitem" and "collapsed" in e.states and elements[i + 1].name not in opened),
            None,
        )  # fmt: skip
        if folder is None:
            return
        opened.add(folder.name)
        page = yield click(folder)


def simple_arithmetic(utterance: str, page: str) -> Generator[Call, str, None]:
    problem = next(e.name for e in page_elements(page) if re.fullmatch(r"-?\d+ [-+*x/] -?\d+ =", e.name))
    a, op, b = problem.rstrip(" =").split(" ")
    x, y = int(a), int(b)
    answer = {"+": x + y, "-": x - y, "*": x * y, "x": x * y, "/": x // y if y else 0}[op]
    page = yield type_(_find(page, "textbox"), str(answer))
    yield click(_find(page, "button", "Submit"))


def simple_algebra(utterance: str, page: str) -> Generator[Call, str, None]:
    equation = next(e.name for e in page_elements(page) if re.fullmatch(r".*x.*=\s*-?\d+", e.name) and e.name != "x =")
    left, right = (side.replace(" ", "") for side in equation.split("="))
    target = int(right)
    # a*x + b, written "x + 3", "3 - x", "2x - 4": solve with two probes, exact on integers.
    value = lambda x: eval(re.sub(r"(\d)x", r"\1*x", left), {"__builtins__": {}}, {"x": x})  # noqa: E731,S307
    slope, offset = value(1) - value(0), value(0)
    answer = (target - offset) // slope
    page = yield type_(_find(page, "textbox"), str(answer))
    yield click(_find(page, "button", "Submit"))


def grid_coordinate(utterance: str, page: str) -> Generator[Call, str, None]:
    match = re.search(r"\((-?\d+),(-?\d+)\)", page)
    assert match is not None, page
    x, y = int(match[1]), int(match[2])
    cells = []
    for e in page_elements(page):
        at = re.search(r"at \((-?\d+),(-?\d+)\)", e.detail)
        if e.role == "graphics-symbol" and at:
            cells.append((int(at[1]), int(at[2]), e))
    xs, ys = sorted({c[0] for c in cells}), sorted({c[1] for c in cells})
    half = len(xs) // 2
    column, row = xs[x + half], ys[half - y]  # y grows upwards on the grid, downwards on the page
    yield click(next(e for cx, cy, e in cells if (cx, cy) == (column, row)))


_SHAPES = {"rect": "Rectangle", "circle": "Circle", "polygon": "Triangle"}


def identify_shape(utterance: str, page: str) -> Generator[Call, str, None]:
    elements = page_elements(page)
    at = next(i for i, e in enumerate(elements) if e.detail.startswith("<svg"))
    drawn = re.search(r"of 1 (\w+)", elements[at].detail)
    if drawn and drawn[1] in _SHAPES:
        answer = _SHAPES[drawn[1]]
    else:  # a character: the svg's text
        text = next(e.name for e in elements[at + 1 :] if e.role == "StaticText")
        answer = "Number" if text.isdigit() else "Letter"
    yield click(_find(page, "button", answer))


def guess_number(utterance: str, page: str) -> Generator[Call, str, None]:
    low, high = 0, 9
    while low <= high:
        guess = (low + high) // 2
        page = yield type_(_find(page, "spinbutton"), str(guess))
        page = yield click(_find(page, "button", "Submit"))
        feedback = " ".join(e.name for e in page_elements(page) if e.role == "StaticText")
        higher, lower = re.search(r"higher than (-?\d+)", feedback), re.search(r"lower than (-?\d+)", feedback)
        if higher:
            low = int(higher[1]) + 1
        elif lower:
            high = int(lower[1]) - 1
        else:
            return


ORACLES: dict[str, Oracle] = {
    "click-button": click_button,
    "click-button-sequence": click_button_sequence,
    "click-checkboxes": click_checkboxes,
    "click-collapsible": click_collapsible,
    "click-dialog": click_dialog,
    "click-link": click_link,
    "click-option": click_option,
    "click-widget": click_widget,
    "enter-text": enter_text,
    "enter-text-dynamic": enter_text,
    "enter-password": enter_password,
    "focus-text": focus_text,
    "focus-text-2": focus_text_2,
    "login-user": login_user,
    "navigate-tree": navigate_tree,
    "simple-arithmetic": simple_arithmetic,
    "simple-algebra": simple_algebra,
    "grid-coordinate": grid_coordinate,
    "identify-shape": identify_shape,
    "guess-number": guess_number,
}


async def play(env: Any, seed: int, task: str | None = None, *, max_steps: int = 20) -> tuple[float, dict[str, Any]]:
    """One episode of ``env`` (a MiniWoB++ env, async API) with the oracle of its task: ``(reward, last info)``.

    The task is the episode's own (``info["metadata"]["miniwob_task"]``) unless ``task`` says.
    An oracle that runs out of moves before the page ends the episode answers, which ends it.
    """
    obs, info = await env.areset(seed=seed)
    if info["infra_failure"]:
        return 0.0, info
    text = obs[-1]["content"]
    utterance = text.split("\n", 1)[0].removeprefix("Task: ")
    oracle = ORACLES[task or info["metadata"]["miniwob_task"]](utterance, text)
    reply: str | None = None
    for step in range(max_steps):
        try:
            name, arguments = oracle.send(reply) if step else next(oracle)
        except StopIteration:
            name, arguments = "answer", {}
        obs, reward, terminated, truncated, info = await env.astep(tool_message(name, arguments, f"oracle_{step}"))
        if terminated or truncated:
            return reward, info
        reply = obs[0]["content"]
    obs, reward, terminated, truncated, info = await env.astep(tool_message("answer", {}, "oracle_end"))
    return reward, info
