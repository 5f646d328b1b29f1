"""The personalised shop (``boxgym/Shop-v0``): WebShop over a generated catalogue, with UA2's users.

Each task's seed generates a catalogue (products of ten types in five categories, each with
attributes, options, a brand, a price), a signed-in user and an instruction in WebShop's manner
("I am looking for a ... priced under $..."). The shop is served inside the sandbox by the
browser plugin (:mod:`boxgym.sandboxes.toolserver.browser_shop`): search, result pages, item
pages with options and a Buy Now button, and the user's account page. The judge
(:class:`~boxgym.judges.shop.ShopJudge`) scores the bought item with WebShop's reward and reports
UA2's runtime cost beside it.

UA2's user profile: the user has usual sizes and attributes they always prefer; from level 1 on
the goal holds some of them while the instruction does not say them (the account page does).

=====  ==========================================================================================
level  goal
=====  ==========================================================================================
0      WebShop's: type, two attributes, the options and a price ceiling all said (40 items)
1      + one implicit intention: the user's usual size (or, for types without sizes, an
       attribute they always prefer); cheaper items that lack it (80 items)
2      + both: the usual size where the type has one, and a preferred attribute (160 items)
=====  ==========================================================================================

The catalogue is generated on the host from the task id (:func:`catalogue`) and handed to the
plugin when the episode opens; the goal stays on the host, in the task's oracle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...judges.shop import ShopGoal
from ..tasks import ProceduralTaskSet, Task

if TYPE_CHECKING:
    from ...sandboxes.base import Sandbox
    from ..core import BoxEnv

__all__ = ["LEVELS", "ORIGIN", "SYSTEM_PROMPT", "TYPES", "catalogue", "generate", "make", "open_shop", "task_set"]

LEVELS = 3
ORIGIN = "http://webshop.test"
SYSTEM_PROMPT = (
    "You are shopping in a web shop for the user who is signed in to it. You see the page as an "
    "accessibility tree in which every element you can act on has an id in [brackets]: click, type into "
    "or select elements by that id. The browser has no internet access: it shows the shop. Find the item "
    "that fits the user's request, choose its options, and click Buy Now: that ends the task, and only "
    "one purchase counts. The user's account page says what they usually want, which their request may "
    "leave unsaid."
)

_CATEGORIES: dict[str, tuple[str, ...]] = {
    "clothing": ("cotton", "organic", "machine washable", "slim fit", "long sleeve", "wrinkle free", "moisture wicking", "fleece lined"),
    "footwear": ("non slip", "breathable", "memory foam", "vegan", "waterproof", "lightweight", "wide fit", "arch support"),
    "beauty": ("sulfate free", "fragrance free", "vegan", "organic", "paraben free", "for sensitive skin", "cruelty free", "travel size"),
    "kitchen": ("dishwasher safe", "microwave safe", "bpa free", "insulated", "leak proof", "stainless steel", "eco friendly", "stackable"),
    "electronics": ("wireless", "noise cancelling", "waterproof", "long battery life", "fast charging", "foldable", "bluetooth", "eco friendly"),
}  # fmt: skip
#: Attributes a user may always prefer: at least two in every category.
VALUES = ("organic", "vegan", "waterproof", "eco friendly", "fragrance free", "cruelty free", "bpa free", "breathable")
_COLORS = ("black", "white", "navy", "red", "olive", "grey", "beige", "teal")
_SIZES = ("XS", "S", "M", "L", "XL", "XXL")
_SHOE_SIZES = ("6", "7", "8", "9", "10", "11", "12")
#: type -> (category, {option dimension: values}); "size" and "shoe size" are the user's sizes.
TYPES: dict[str, tuple[str, dict[str, tuple[str, ...]]]] = {
    "t-shirt": ("clothing", {"color": _COLORS, "size": _SIZES}),
    "hoodie": ("clothing", {"color": _COLORS, "size": _SIZES}),
    "sneakers": ("footwear", {"color": _COLORS, "shoe size": _SHOE_SIZES}),
    "boots": ("footwear", {"color": _COLORS, "shoe size": _SHOE_SIZES}),
    "shampoo": ("beauty", {"scent": ("lavender", "citrus", "mint", "coconut", "unscented"), "volume": ("8 oz", "12 oz", "16 oz", "32 oz")}),
    "lotion": ("beauty", {"scent": ("lavender", "citrus", "vanilla", "aloe", "unscented"), "volume": ("4 oz", "8 oz", "16 oz")}),
    "mug": ("kitchen", {"color": _COLORS, "capacity": ("12 oz", "16 oz", "20 oz")}),
    "water bottle": ("kitchen", {"color": _COLORS, "capacity": ("18 oz", "24 oz", "32 oz", "40 oz")}),
    "headphones": ("electronics", {"color": _COLORS}),
    "speaker": ("electronics", {"color": _COLORS, "style": ("portable", "bookshelf", "smart")}),
}  # fmt: skip
_SIZE_KIND = {"size": "clothing", "shoe size": "shoes"}  # option dimension -> the user's size of that kind
_BRANDS = ("Northwind", "Acme", "Lumen", "Brightway", "Kestrel", "Oakridge", "Novella", "Pinecrest", "Solace", "Tidewater")
_FIRST = ("Ada", "Ben", "Cleo", "Dev", "Elin", "Finn", "Hana", "Ivo", "Jun", "Kai", "Lea", "Milo", "Nora", "Omar", "Pia", "Rosa")
_CATALOGUE_SIZE = (40, 80, 160)


def _user(rng: np.random.Generator, category: str) -> dict[str, Any]:
    """A profile whose preferred attributes include one the target's category can have."""
    own = [v for v in VALUES if v in _CATEGORIES[category]]
    first = str(rng.choice(own))
    second = str(rng.choice([v for v in VALUES if v != first]))
    brands = [str(b) for b in rng.choice(_BRANDS, size=3, replace=False)]
    return {
        "name": f"{rng.choice(_FIRST)} {rng.choice(_FIRST)}son",
        "sizes": {"clothing": str(rng.choice(_SIZES[1:5])), "shoes": str(rng.choice(_SHOE_SIZES[1:6]))},
        "values": [first, second], "brands": brands[:2], "avoid_brands": brands[2:],
    }  # fmt: skip


def _item(rng: np.random.Generator, kind: str, serial: int, *, attributes: list[str] | None = None) -> dict[str, Any]:
    category, dims = TYPES[kind]
    if attributes is None:
        attributes = [str(a) for a in rng.choice(_CATEGORIES[category], size=3, replace=False)]
    options = {}
    for dim, values in dims.items():
        if dim in _SIZE_KIND:  # a run of sizes, as shops stock them
            start = int(rng.integers(0, len(values) - 2))
            options[dim] = list(values[start : start + int(rng.integers(2, 5))])
        else:
            options[dim] = sorted(str(v) for v in rng.choice(values, size=min(3, len(values)), replace=False))
    brand = str(rng.choice(_BRANDS))
    return {
        "id": f"B0{serial:03d}{''.join(rng.choice(list('ABCDEFGHJKLMNPQRSTUVWXYZ23456789'), size=4))}",
        "title": f"{brand} {attributes[0].title()} {kind.title()}", "type": kind, "category": category,
        "brand": brand, "attributes": attributes, "options": options,
        "price": int(rng.integers(5, 90)) * 100 + int(rng.choice([0, 49, 95, 99])),
        "rating": round(float(rng.uniform(2.5, 5.0)), 1),
    }  # fmt: skip


def _build(seed: int, level: int) -> tuple[dict[str, Any], ShopGoal, str]:
    """The shop's spec (what the plugin serves), the goal and the instruction of task ``seed`` at ``level``."""
    rng = np.random.default_rng([seed, level, 16])
    kind = str(rng.choice(sorted(TYPES)))
    category, dims = TYPES[kind]
    user = _user(rng, category)
    size_dim = next((d for d in dims if d in _SIZE_KIND), None)
    preferred = user["values"][0]  # in the category's attributes (see _user)
    implicit_options = {size_dim: user["sizes"][_SIZE_KIND[size_dim]]} if size_dim and level >= 1 else {}
    implicit_attributes = (preferred,) if level >= 2 or (level == 1 and not size_dim) else ()
    said = [str(a) for a in rng.choice([a for a in _CATEGORIES[category] if a not in user["values"]], size=2, replace=False)]
    items = [_item(rng, str(rng.choice(sorted(TYPES))), i) for i in range(_CATALOGUE_SIZE[level] - 6)]
    serial = len(items)

    target = _item(rng, kind, serial, attributes=[*said, *implicit_attributes])
    if target["brand"] in user["avoid_brands"]:  # the user would not want it
        target["brand"] = user["brands"][0]
        target["title"] = f"{target['brand']} {said[0].title()} {kind.title()}"
    options = {dim: str(rng.choice(values)) for dim, values in target["options"].items()}
    for dim, value in implicit_options.items():
        if value not in target["options"][dim]:
            target["options"][dim] = sorted({*target["options"][dim], value}, key=TYPES[kind][1][dim].index)
        options[dim] = value
    explicit_options = {d: v for d, v in options.items() if d not in implicit_options}
    max_price = (target["price"] // 1000 + 1) * 1000
    items.append(target)
    # Distractors: everything said, at a lower price, but none of what was left unsaid; and one
    # that fits everything but the price.
    for n in range(5):
        other = _item(rng, kind, serial + 1 + n, attributes=[*said, str(rng.choice([a for a in _CATEGORIES[category] if a not in said and a not in user["values"]]))])
        for dim, value in explicit_options.items():
            if value not in other["options"][dim]:
                other["options"][dim] = sorted([*other["options"][dim], value])
        for dim, value in implicit_options.items():
            other["options"][dim] = [v for v in TYPES[kind][1][dim] if v != value][:3]
        other["price"] = max(199, target["price"] - int(rng.integers(100, 900))) if n < 4 else max_price + int(rng.integers(100, 3000))
        if n == 4:  # over budget but everything else right
            other["attributes"] = list(target["attributes"])
            other["options"] = {dim: list(v) for dim, v in target["options"].items()}
        items.append(other)
    order = rng.permutation(len(items))
    spec = {"kind": "webshop", "origin": ORIGIN, "name": "The Web Shop", "user": user, "items": [items[int(i)] for i in order]}
    goal = ShopGoal(ORIGIN, kind, category, tuple(said), explicit_options, max_price, implicit_attributes, implicit_options)
    said_options = " and ".join(f"{dim} {value}" for dim, value in explicit_options.items())
    instruction = f"I am looking for a {said[0]} and {said[1]} {kind} with {said_options}, priced under ${max_price // 100}.00."
    return spec, goal, instruction


def catalogue(seed: int, level: int) -> dict[str, Any]:
    """What the plugin serves for task ``seed`` at ``level``: the items and the signed-in user."""
    return _build(seed, level)[0]


def generate(seed: int, level: int) -> Task:
    _, goal, instruction = _build(seed, level)
    request = {"type": goal.type, "attributes": list(goal.attributes), "options": dict(goal.options), "max_price": goal.max_price}
    prompt = f"Shop for the signed-in user. Their request: \u201c{instruction}\u201d"
    implicit = len(goal.implicit_attributes) + len(goal.implicit_options)
    return Task(f"shop/d{level}/s{seed}", prompt, goal, difficulty=level, metadata={"request": request, "implicit": implicit})


def task_set() -> ProceduralTaskSet:
    return ProceduralTaskSet("shop", generate, LEVELS)


async def open_shop(sandbox: Sandbox, task: Task) -> str:
    """The toolset's setup: serve the task's shop (regenerated from its id) and open its home page."""
    level, seed = task.id.rsplit("/", 2)[1:]
    await sandbox.call("browser.open_site", {"spec": catalogue(int(seed[1:]), int(level[1:])), "path": "/"}, timeout=60)
    return ""


def make(*, screenshots: str = "on_request", budget: Any = None, tokens: Any = None, **kwargs: Any) -> BoxEnv:
    """``boxgym/Shop-v0``. ``budget``: a :class:`~boxgym.judges.shop.CostBudget` (over it, the reward is
    0); ``tokens``: the policy's tokens per episode id (:func:`~boxgym.judges.shop.episode_tokens`);
    other keywords go to the env (:func:`boxgym.envs.make.build`)."""
    from ...judges.shop import ShopJudge
    from ...toolsets.browser import BrowserToolset
    from ..make import build

    kwargs.setdefault("tasks", task_set())
    kwargs.setdefault("system_prompt", SYSTEM_PROMPT)
    kwargs.setdefault("toolset", BrowserToolset(screenshots=screenshots, setup=open_shop))  # type: ignore[arg-type]
    kwargs.setdefault("judge", ShopJudge(budget=budget, tokens=tokens))
    kwargs.setdefault("image", "desktop")
    return build(**kwargs)
