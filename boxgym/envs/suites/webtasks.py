"""WebTasks: generated small sites in a real browser, judged from what the site recorded.

Each task's seed generates a shop-and-company site (products in categories, a staff directory
by department, a contact form, a cart with checkout, search over all of it), served inside the
sandbox by the browser plugin (:class:`~boxgym.sandboxes.toolserver.browser_sites.ShopSite`), and
a goal on it. The answer, or the site's final state, is known by construction; a state goal is
judged from the record the site keeps in the tool server (orders, messages: nothing the agent
can write), an answer by :class:`~boxgym.judges.AnswerJudge`.

=====  ==========================================================================================
level  goals
=====  ==========================================================================================
0      a product's price from a one-page table; a contact message (name, email, topic)
1      a colleague's phone number two pages deep; a full contact message (+ text and newsletter)
2      a product's stock, beyond the first page of products (search or page through); buy one
       product in a quantity and check out
3      buy several products in quantities and check out with a shipping option; buy the cheapest
       product of a category
=====  ==========================================================================================

The reference solutions (:data:`REFERENCES`, :func:`play`) are scripted policies that read the
same observations an agent reads and act by element id; a test plays every level with them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import numpy as np

from ...judges.answer import ExpectedAnswer
from ...judges.browser import SiteState
from ...toolsets.browser import Element, page_elements
from ..tasks import ProceduralTaskSet, Task

if TYPE_CHECKING:
    from ...sandboxes.base import Sandbox
    from ..core import BoxEnv

__all__ = ["LEVELS", "ORIGIN", "REFERENCES", "SYSTEM_PROMPT", "generate", "make", "open_site", "play", "site", "task_set"]

LEVELS = 4
ORIGIN = "http://shop.test"
SYSTEM_PROMPT = (
    "You operate a web browser through tools. Each observation shows the page's URL, its title and its "
    "accessibility tree, in which every element you can act on has an id in [brackets]: click, type into, "
    "select or hover elements by that id. The browser has no internet access: it shows the site of the task. "
    "When the task is done, call answer, with the answer if the task asks a question."
)

_COLOURS = "amber azure coral ivory jade olive plum rust sage slate teal umber".split()
_MATERIALS = "bamboo brass canvas cedar copper linen marble oak steel wool".split()
_ITEMS = "bowl clock desk lamp jar kettle mirror mug rug shelf stool vase".split()
_CATEGORIES = "Kitchen Lighting Furniture Decor Garden Office".split()
_FIRST = "Ada Ben Cleo Dev Elin Finn Gus Hana Ivo Jun Kai Lea Milo Nora Omar Pia Quin Rosa Sol Tess".split()
_LAST = "Abbott Brook Castro Dunn Eze Ford Gray Holm Iyer Jonas Kerr Lund Moss Novak Ortiz Park".split()
_DEPARTMENTS = "Sales Support Finance Design Logistics".split()
_TITLES = "Manager Analyst Specialist Coordinator Lead".split()
_TOPICS = ("Order question", "Returns", "Wholesale", "Press")
_SHIPPING = ("Standard", "Express", "Overnight")
_SIZES = (6, 12, 30, 40)  # products per level
_PAGE = (20, 8, 8, 8)  # products per page


def _money(cents: int) -> str:
    return f"${cents // 100}.{cents % 100:02d}"


def site(seed: int, level: int) -> dict[str, Any]:
    """The site of task ``seed`` at ``level``: plain data the browser plugin serves."""
    rng = np.random.default_rng([seed, level, 1])
    categories = [str(c) for c in rng.choice(_CATEGORIES, size=4, replace=False)]
    names: set[str] = set()
    products = []
    while len(products) < _SIZES[level]:
        name = f"{rng.choice(_COLOURS).title()} {rng.choice(_MATERIALS)} {rng.choice(_ITEMS)}"
        if name in names:
            continue
        names.add(name)
        products.append({
            "sku": f"SKU-{len(products) + 1:02d}{int(rng.integers(100, 999))}",
            "name": name,
            "category": categories[int(rng.integers(0, len(categories)))],
            "price": int(rng.integers(199, 19999)),
            "stock": int(rng.integers(0, 60)),
            "description": f"A {name.lower()} for the {rng.choice(['home', 'studio', 'office', 'garden'])}.",
        })  # fmt: skip
    departments = [str(d) for d in rng.choice(_DEPARTMENTS, size=3, replace=False)]
    people: set[str] = set()
    staff = []
    for department in departments:
        for _ in range(4):
            name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
            if name in people:
                continue
            people.add(name)
            first, last = name.lower().split()
            staff.append({
                "name": name, "department": department, "title": str(rng.choice(_TITLES)),
                "email": f"{first}.{last}@example.test", "phone": f"555-{int(rng.integers(1000, 9999))}",
            })  # fmt: skip
    shop = f"{rng.choice(_COLOURS).title()} & {rng.choice(_MATERIALS).title()}"
    return {
        "origin": ORIGIN, "name": shop, "tagline": f"Things of {rng.choice(_MATERIALS)} and care since 19{int(rng.integers(50, 99))}.",
        "categories": categories, "products": products, "departments": departments, "staff": staff,
        "topics": list(_TOPICS), "shipping": list(_SHIPPING), "page_size": _PAGE[level],
    }  # fmt: skip


def _person(rng: np.random.Generator) -> tuple[str, str]:
    first, last = str(rng.choice(_FIRST)), str(rng.choice(_LAST))
    return f"{first} {last}", f"{first.lower()}@mail.test"


def generate(seed: int, level: int) -> Task:
    spec = site(seed, level)
    rng = np.random.default_rng([seed, level, 2])
    kind = str(rng.choice(_KINDS[level]))
    products, staff = spec["products"], spec["staff"]
    meta: dict[str, Any] = {"kind": kind}
    oracle: Any
    if kind == "price":
        product = products[int(rng.integers(0, len(products)))]
        prompt = f"On this shop's site, find the price of the product \u201c{product['name']}\u201d. Answer with the price."
        oracle, meta["product"] = ExpectedAnswer(_money(product["price"]), "numeric"), product["name"]
    elif kind == "stock":
        product = products[int(rng.integers(spec["page_size"], len(products)))]  # not on the first page
        prompt = f"How many units of \u201c{product['name']}\u201d are in stock? Answer with the number."
        oracle, meta["product"] = ExpectedAnswer(str(product["stock"]), "numeric"), product["name"]
    elif kind == "phone":
        person = staff[int(rng.integers(0, len(staff)))]
        prompt = (
            f"What is the phone number of {person['name']}, who works in {person['department']}? "
            "Answer with the number."
        )
        oracle, meta["person"] = ExpectedAnswer(person["phone"]), person["name"]
    elif kind in ("contact", "contact_full"):
        name, email = _person(rng)
        message = {"name": name, "email": email, "topic": str(rng.choice(_TOPICS)), "message": "", "subscribe": False}
        asks = f"your name \u201c{name}\u201d, the email \u201c{email}\u201d and the topic \u201c{message['topic']}\u201d"
        if kind == "contact_full":
            message["message"] = f"Please call me about order {int(rng.integers(1000, 9999))}."
            message["subscribe"] = bool(rng.integers(0, 2))
            asks += f", the message \u201c{message['message']}\u201d"
            asks += ", and subscribe to the newsletter" if message["subscribe"] else ", without subscribing to the newsletter"
        prompt = f"Send a message through the site's contact form with {asks}. Then call answer."
        oracle, meta["message"] = SiteState(ORIGIN, messages=(message,), checks=("messages",)), message
    else:  # buying: "buy_one", "buy_many", "cheapest"
        count = {"buy_one": 1, "buy_many": int(rng.integers(2, 4)), "cheapest": 1}[kind]
        if kind == "cheapest":
            category = str(rng.choice(sorted({p["category"] for p in products})))
            chosen = [min((p for p in products if p["category"] == category), key=lambda p: p["price"])]
        else:
            chosen = [products[int(i)] for i in rng.choice(len(products), size=count, replace=False)]
        items = {p["sku"]: int(rng.integers(1, 5)) if kind != "cheapest" else 1 for p in chosen}
        name, _ = _person(rng)
        address = f"{int(rng.integers(1, 200))} {rng.choice(_LAST)} Street"
        shipping = str(rng.choice(_SHIPPING)) if level >= 3 else "Standard"
        if kind == "cheapest":
            what = f"one unit of the cheapest product in the category \u201c{category}\u201d"
        else:
            what = ", ".join(f"{items[p['sku']]} \u00d7 \u201c{p['name']}\u201d" for p in chosen)
        prompt = (
            f"Buy {what}. Check out with the name \u201c{name}\u201d, the address \u201c{address}\u201d and "
            f"{shipping} shipping, then call answer."
        )
        order = {"items": items, "name": name, "address": address, "shipping": shipping}
        oracle = SiteState(ORIGIN, orders=(order,), checks=("orders",))
        meta.update(order=order, products={p["sku"]: p["name"] for p in chosen})
    return Task(f"webtasks/d{level}/s{seed}", prompt, oracle, difficulty=level, metadata=meta)


_KINDS = (("price", "contact"), ("phone", "contact_full"), ("stock", "buy_one"), ("buy_many", "cheapest"))


def task_set() -> ProceduralTaskSet:
    return ProceduralTaskSet("webtasks", generate, LEVELS)


async def open_site(sandbox: Sandbox, task: Task) -> str:
    """The toolset's setup: serve the task's site (regenerated from its id) and open its home page."""
    level, seed = task.id.rsplit("/", 2)[1:]
    await sandbox.call("browser.open_site", {"spec": site(int(seed[1:]), int(level[1:])), "path": "/"}, timeout=60)
    return ""


def make(*, screenshots: str = "on_request", **kwargs: Any) -> BoxEnv:
    """``boxgym/WebTasks-v0``; other keywords go to the env (:func:`boxgym.envs.make.build`)."""
    from ...judges.answer import AnswerJudge
    from ...judges.browser import SiteStateJudge
    from ...judges.oracle import OracleJudge
    from ...toolsets.browser import BrowserToolset
    from ..make import build

    kwargs.setdefault("tasks", task_set())
    kwargs.setdefault("system_prompt", SYSTEM_PROMPT)
    kwargs.setdefault("toolset", BrowserToolset(screenshots=screenshots, setup=open_site))  # type: ignore[arg-type]
    kwargs.setdefault("judge", OracleJudge({SiteState: SiteStateJudge(), ExpectedAnswer: AnswerJudge()}))
    kwargs.setdefault("image", "desktop")
    return build(**kwargs)


# -- reference solutions: scripted policies over the observation ----------------------------

Call = tuple[str, dict[str, Any]]
Reference = Callable[[Task, str], Generator[Call, str, None]]


def _el(page: str, role: str | None, name: str) -> Element:
    for e in page_elements(page):
        if e.id is not None and (role is None or e.role == role) and e.name == name:
            return e
    raise LookupError(f"no {role or 'element'} {name!r} on the page:\n{page}")


def _row_cells(page: str, first: str) -> list[str]:
    """The cells of the table row whose first cell says ``first`` (or links to it)."""
    elements = page_elements(page)
    for i, e in enumerate(elements):
        if e.role == "row":
            cells = []
            for f in elements[i + 1 :]:
                if f.depth <= e.depth:
                    break
                if f.role in ("cell", "gridcell") and f.depth == e.depth + 1:
                    cells.append(f.name)
                elif f.role == "link" and cells == [""]:
                    cells[0] = f.name
            if cells and cells[0] == first:
                return cells
    raise LookupError(f"no table row for {first!r} on the page:\n{page}")


def _go_to_product(page: str, name: str) -> Generator[Call, str, str]:
    page = yield "type", {"id": _el(page, "searchbox", "Search the site").id, "text": name, "submit": True}
    page = yield "click", {"id": _el(page, "link", name).id}
    return page


def _price(task: Task, page: str) -> Generator[Call, str, None]:
    page = yield "click", {"id": _el(page, "link", "Products").id}
    yield "answer", {"text": _row_cells(page, task.metadata["product"])[3]}


def _stock(task: Task, page: str) -> Generator[Call, str, None]:
    page = yield from _go_to_product(page, task.metadata["product"])
    elements = page_elements(page)
    term = next(i for i, e in enumerate(elements) if e.role == "term" and e.name == "In stock")
    definition = next(i for i in range(term + 1, len(elements)) if elements[i].role == "definition")
    yield "answer", {"text": elements[definition].name or elements[definition + 1].name}


def _phone(task: Task, page: str) -> Generator[Call, str, None]:
    department = task.prompt.split(" works in ")[1].split("?")[0]
    page = yield "click", {"id": _el(page, "link", "Staff").id}
    page = yield "click", {"id": _el(page, "link", department).id}
    yield "answer", {"text": _row_cells(page, task.metadata["person"])[3]}


def _contact(task: Task, page: str) -> Generator[Call, str, None]:
    message = task.metadata["message"]
    page = yield "click", {"id": _el(page, "link", "Contact").id}
    page = yield "type", {"id": _el(page, "textbox", "Your name").id, "text": message["name"]}
    page = yield "type", {"id": _el(page, "textbox", "Email").id, "text": message["email"]}
    page = yield "select_option", {"id": _el(page, "combobox", "Topic").id, "option": message["topic"]}
    if message["message"]:
        page = yield "type", {"id": _el(page, "textbox", "Message").id, "text": message["message"]}
    if message["subscribe"]:
        page = yield "click", {"id": _el(page, "checkbox", "Subscribe to the newsletter").id}
    page = yield "click", {"id": _el(page, "button", "Send").id}
    yield "answer", {}


def _buy(task: Task, page: str) -> Generator[Call, str, None]:
    order, names = task.metadata["order"], task.metadata["products"]
    for sku, quantity in order["items"].items():
        page = yield from _go_to_product(page, names[sku])
        page = yield "type", {"id": _el(page, "spinbutton", "Quantity").id, "text": str(quantity)}
        page = yield "click", {"id": _el(page, "button", "Add to cart").id}
    yield from _checkout(order, page)


def _checkout(order: dict[str, Any], page: str) -> Generator[Call, str, None]:
    page = yield "type", {"id": _el(page, "textbox", "Full name").id, "text": order["name"]}
    page = yield "type", {"id": _el(page, "textbox", "Address").id, "text": order["address"]}
    page = yield "select_option", {"id": _el(page, "combobox", "Shipping").id, "option": order["shipping"]}
    page = yield "click", {"id": _el(page, "button", "Place order").id}
    yield "answer", {}


def _cheapest(task: Task, page: str) -> Generator[Call, str, None]:
    category = re.search(r"category \u201c(.+?)\u201d", task.prompt)
    assert category is not None
    page = yield "click", {"id": _el(page, "link", category[1]).id}
    prices: list[tuple[float, str]] = []
    while True:  # every page of the category
        elements = page_elements(page)
        for e in elements:
            if e.role == "link" and "/product/" in e.url:
                prices.append((float(_row_cells(page, e.name)[3].lstrip("$")), e.name))
        following = next((e for e in elements if e.role == "link" and e.name == f"Page {_page_number(page) + 1}"), None)
        if following is None:
            break
        page = yield "click", {"id": following.id}
    page = yield from _go_to_product(page, min(prices)[1])
    page = yield "click", {"id": _el(page, "button", "Add to cart").id}
    yield from _checkout(task.metadata["order"], page)


def _page_number(page: str) -> int:
    match = re.search(r"Page (\d+) of \d+", page)
    return int(match[1]) if match else 1


REFERENCES: dict[str, Reference] = {
    "price": _price, "stock": _stock, "phone": _phone, "contact": _contact, "contact_full": _contact,
    "buy_one": _buy, "buy_many": _buy, "cheapest": _cheapest,
}  # fmt: skip


async def play(env: Any, *, seed: int | None = None, options: dict[str, Any] | None = None, max_steps: int = 40) -> tuple[float, dict[str, Any]]:
    """One episode of a WebTasks env (async API) played by its task's reference: ``(reward, last info)``."""
    from .miniwob_oracles import tool_message

    obs, info = await env.areset(seed=seed, options=options)
    if info["infra_failure"]:
        return 0.0, info
    task = env.tasks.get(info["task_id"])
    policy = REFERENCES[task.metadata["kind"]](task, obs[-1]["content"])
    reply: str | None = None
    for step in range(max_steps):
        try:
            name, arguments = policy.send(reply) if step else next(policy)
        except StopIteration:
            name, arguments = "answer", {}
        obs, reward, terminated, truncated, info = await env.astep(tool_message(name, arguments, f"ref_{step}"))
        if terminated or truncated:
            return reward, info
        reply = obs[0]["content"]
    return 0.0, info
