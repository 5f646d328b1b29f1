"""Two shoppers for ``boxgym/Shop-v0``: a scripted one that reads the pages as an agent does, and a
random one. Tests and the docs' figures use them: the scripted shopper scores high, the random
one low.

The scripted shopper reads the request (the task's ``metadata["request"]``, the instruction's
words as data) and, like an agent, everything else from the pages: the user's sizes and
preferences from the account page, the items from the results and item pages. It searches for
the said attributes and type, looks at the first results, and buys the item that has everything
said, offers the options (the said ones and the user's size), is under the price and has the
most of what the user always prefers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...toolsets.browser import Element, page_elements
from ..tasks import Task
from .miniwob_oracles import tool_message

__all__ = ["ItemPage", "play", "random_call", "read_item", "scripted"]

Call = tuple[str, dict[str, Any]]
#: How many results the scripted shopper opens at most.
LOOK_AT = 12
_SIZE_KIND = {"size": "clothing", "shoe size": "shoes"}


@dataclass(frozen=True, slots=True)
class ItemPage:
    """What an item page says (:func:`read_item`)."""

    type: str
    price: int  # cents
    attributes: tuple[str, ...]
    options: dict[str, dict[str, int]]  # dimension -> value -> the radio's id


def _el(page: str, role: str, name: str) -> Element:
    for e in page_elements(page):
        if e.id is not None and e.role == role and e.name == name:
            return e
    raise LookupError(f"no {role} {name!r} on the page:\n{page}")


def _after(elements: list[Element], heading: str) -> list[Element]:
    """The elements after the heading ``heading``, up to the next heading."""
    start = next(i for i, e in enumerate(elements) if e.role == "heading" and e.name == heading)
    out = []
    for e in elements[start + 1 :]:
        if e.role == "heading":
            break
        out.append(e)
    return out


def read_profile(page: str) -> tuple[dict[str, str], list[str]]:
    """The account page's usual sizes and the attributes the user always prefers."""
    elements = page_elements(page)
    sizes = dict(e.name.split(": ", 1) for e in _after(elements, "Usual sizes") if e.role == "StaticText")
    prefers = next(e.name for e in _after(elements, "Always prefers") if e.role == "StaticText")
    return sizes, [] if prefers == "nothing in particular" else prefers.split(", ")


def read_item(page: str) -> ItemPage:
    elements = page_elements(page)
    texts = [e.name for e in elements if e.role == "StaticText"]
    price = next(t for t in texts if t.startswith("Price: $"))[len("Price: $") :]
    dollars, cents = price.split(".")
    kind = next(t for t in texts if t.startswith("Type: "))[len("Type: ") :]
    attributes = tuple(e.name for e in _after(elements, "Features") if e.role == "StaticText")
    options: dict[str, dict[str, int]] = {}
    group = None
    for e in elements:
        if e.role == "group":
            group = options.setdefault(e.name, {})
        elif e.role == "radio" and group is not None and e.id is not None:
            group[e.name] = e.id
    return ItemPage(kind, int(dollars) * 100 + int(cents), attributes, options)


def scripted(task: Task, page: str) -> Generator[Call, str, None]:
    """The scripted shopper (module docstring): a generator of calls, sent each call's page."""
    request = task.metadata["request"]
    page = yield "click", {"id": _el(page, "link", "Account").id}
    sizes, prefers = read_profile(page)
    query = " ".join([*request["attributes"], request["type"]])
    page = yield "type", {"id": _el(page, "searchbox", "Search").id, "text": query, "submit": True}
    links = [e.url for e in page_elements(page) if e.role == "link" and "/item/" in e.url]
    following = [e for e in page_elements(page) if e.role == "link" and e.name == "Next >"]
    if len(links) < LOOK_AT and following:
        page = yield "click", {"id": following[0].id}
        links += [e.url for e in page_elements(page) if e.role == "link" and "/item/" in e.url]
    best: tuple[int, str, dict[str, str]] | None = None  # (preferences met, url, options to choose)
    for url in links[:LOOK_AT]:
        page = yield "goto", {"url": url}
        item = read_item(page)
        wanted = dict(request["options"])
        for dim in item.options:
            if dim in _SIZE_KIND and dim not in wanted and _SIZE_KIND[dim] in sizes:
                wanted[dim] = sizes[_SIZE_KIND[dim]]
        fits = (
            item.type == request["type"]
            and set(request["attributes"]) <= set(item.attributes)
            and item.price <= request["max_price"]
            and all(value in item.options.get(dim, {}) for dim, value in wanted.items())
        )
        if not fits:
            continue
        met = sum(p in item.attributes for p in prefers)
        if best is None or met > best[0]:
            best = (met, url, wanted)
    if best is None:
        return
    _, url, wanted = best
    page = yield "goto", {"url": url}
    item = read_item(page)  # ids are new on every visit: read them again
    for dim, value in wanted.items():
        page = yield "click", {"id": item.options[dim][value]}
    yield "click", {"id": _el(page, "button", "Buy Now").id}


def random_call(rng: np.random.Generator, page: str, vocabulary: list[str]) -> dict[str, Any]:
    """A random action on the page: mostly clicks on random elements, sometimes a search for
    random words of the page, a step back or a scroll."""
    ids = [e.id for e in page_elements(page) if e.id is not None] or [1]
    kind = str(rng.choice(["click"] * 6 + ["type", "type", "go_back", "scroll"]))
    if kind == "click":
        arguments: dict[str, Any] = {"id": int(rng.choice(ids))}
    elif kind == "type":
        words = " ".join(str(w) for w in rng.choice(vocabulary, size=int(rng.integers(1, 4))))
        arguments = {"id": int(rng.choice(ids)), "text": words, "submit": True}
    elif kind == "scroll":
        arguments = {"direction": str(rng.choice(["up", "down"]))}
    else:
        arguments = {}
    return tool_message(kind, arguments, "random")


def _vocabulary(page: str) -> list[str]:
    return sorted({w for e in page_elements(page) for w in re.findall(r"[a-z]+", e.name.lower()) if len(w) > 2}) or ["shop"]


Policy = Callable[[Task, str], Generator[Call, str, None]]


async def play(env: Any, *, seed: int | None = None, options: dict[str, Any] | None = None, policy: str = "scripted", max_steps: int = 40) -> tuple[float, dict[str, Any]]:
    """One episode of a Shop env (async API): ``policy`` "scripted" or "random" (seeded by ``seed``).
    Returns ``(reward, last info)``; a policy that stops without buying answers, which scores 0."""
    obs, info = await env.areset(seed=seed, options=options)
    if info["infra_failure"]:
        return 0.0, info
    task = env.tasks.get(info["task_id"])
    page = obs[-1]["content"]
    rng = np.random.default_rng(seed)
    vocabulary = _vocabulary(task.prompt) + _vocabulary(page)
    shopper = scripted(task, page) if policy == "scripted" else None
    reply: str | None = None
    for step in range(max_steps):
        if shopper is None:
            action = random_call(rng, page, vocabulary)
        else:
            try:
                name, arguments = shopper.send(reply) if step else next(shopper)
            except StopIteration:
                name, arguments = "answer", {}
            action = tool_message(name, arguments, f"shopper_{step}")
        obs, reward, terminated, truncated, info = await env.astep(action)
        if terminated or truncated:
            return reward, info
        page = reply = obs[0]["content"]
    _, reward, _, _, info = await env.astep(tool_message("answer", {}, "end"))
    return reward, info
