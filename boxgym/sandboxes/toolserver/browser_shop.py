"""The personalised shop (``boxgym/Shop-v0``): WebShop's pages over a generated catalogue, served
by the browser plugin like every sandbox site (:mod:`.browser_sites`), never by a network.

Pages, after WebShop (Yao et al., 2022): a home page with a search box, result pages of ten
items with ``Next >`` and ``< Prev``, an item page (price, rating, features, one radio group
per option, ``Buy Now``), and the signed-in user's account page, which says what the user
usually wants (UA2's user profile: what an instruction leaves implicit).

The search is personalised (UA2's environment dynamics): :func:`rank` orders the matching items
by how well their text matches the query, plus the signed-in user's affinity for them
(attributes they value, brands they like or avoid). Two users searching the same words see
different orders.

The purchase is the record the judge reads (``browser.site_state``): the item and its options
as this catalogue has them, never as the request claimed. A request for an item the catalogue
lacks, or for an option value the item does not offer, is refused and records nothing; only
the first purchase counts, and the seconds from opening the shop to it are recorded with it.
Standard library only: this runs in the tool server.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from .browser_sites import Response, _not_found

__all__ = ["PAGE_SIZE", "WebShop", "affinity", "rank", "text_score", "words"]

PAGE_SIZE = 10
#: How much one unit of the user's affinity weighs against one matched query word.
AFFINITY_WEIGHT = 0.75

_STYLE = "body{font-family:sans-serif;margin:16px;max-width:900px}li{margin:6px 0}fieldset{margin:8px 0}"


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.casefold())


def _item_words(item: Mapping[str, Any]) -> set[str]:
    return set(words(" ".join([item["title"], item["type"], item["brand"], *item["attributes"]])))


def text_score(item: Mapping[str, Any], query: str) -> int:
    """How many distinct query words the item's title, type, brand and attributes contain."""
    have = _item_words(item)
    return sum(1 for w in set(words(query)) if w in have)


def affinity(item: Mapping[str, Any], user: Mapping[str, Any] | None) -> float:
    """The user's leaning towards the item: +1 per attribute they value and for a brand they like,
    -1 for a brand they avoid."""
    if not user:
        return 0.0
    score = float(len(set(item["attributes"]) & set(user.get("values", ()))))
    if item["brand"] in user.get("brands", ()):
        score += 1.0
    if item["brand"] in user.get("avoid_brands", ()):
        score -= 1.0
    return score


def rank(items: Sequence[Mapping[str, Any]], query: str, user: Mapping[str, Any] | None = None) -> list[Mapping[str, Any]]:
    """The items matching at least one query word, best first: text match plus the user's
    affinity (:data:`AFFINITY_WEIGHT` each), then the cheaper, then by id (a total order)."""
    scored = [(text_score(item, query), item) for item in items]
    hits = [(s + AFFINITY_WEIGHT * affinity(item, user), item) for s, item in scored if s > 0]
    hits.sort(key=lambda pair: (-pair[0], pair[1]["price"], pair[1]["id"]))
    return [item for _, item in hits]


def _e(value: Any) -> str:
    return html.escape(str(value))


def _money(cents: int) -> str:
    return f"${cents // 100}.{cents % 100:02d}"


@dataclass
class WebShop:
    """A generated catalogue (``spec["items"]``) for one signed-in user (``spec["user"]``), and what
    happened on it (module docstring)."""

    spec: Mapping[str, Any]
    purchases: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    opened: float = field(default_factory=time.monotonic)

    MAX_LOG = 1000

    def __post_init__(self) -> None:
        self.items = {item["id"]: item for item in self.spec.get("items", ())}

    @property
    def done(self) -> bool:
        """A purchase ends the episode, as WebShop's ``click[Buy Now]`` does."""
        return bool(self.purchases)

    def state(self) -> dict[str, Any]:
        return {
            "purchases": [dict(p) for p in self.purchases],
            "searches": [e["query"].get("q", "") for e in self.log if e["path"] == "/search"],
            "requests": len(self.log),
            "seconds_open": time.monotonic() - self.opened,
        }

    def handle(self, method: str, url: str, body: bytes | None) -> Response:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        form = parse_qs((body or b"").decode("utf-8", "replace")) if method == "POST" else {}
        path = parts.path.rstrip("/") or "/"
        if len(self.log) < self.MAX_LOG:
            self.log.append({"method": method, "path": path, "query": query})
        if method == "POST" and path == "/buy":
            return self._buy({k: v[-1] for k, v in form.items()})
        if method not in ("GET", "HEAD"):
            return _not_found(path)
        if path == "/":
            return self._home()
        if path == "/search":
            return self._results(query)
        if path == "/account":
            return self._account()
        if path.startswith("/item/"):
            return self._item(path.split("/", 2)[2], query)
        return _not_found(path)

    # -- pages -------------------------------------------------------------------

    def _page(self, title: str, body: str, *, search: str = "") -> Response:
        shop = _e(self.spec.get("name", "Shop"))
        header = (
            f'<header><h1>{shop}</h1><nav><a href="/">Home</a> <a href="/account">Account</a></nav>'
            f'<form action="/search" method="get" role="search"><input type="search" name="q" value="{_e(search)}" '
            'aria-label="Search"><button type="submit">Search</button></form></header>'
        )
        doc = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)} - {shop}</title>"
            f"<style>{_STYLE}</style></head><body>{header}<main><h2>{_e(title)}</h2>{body}</main></body></html>"
        )
        return Response(200, doc.encode())

    def _home(self) -> Response:
        user = self.spec.get("user", {})
        return self._page("Welcome", f"<p>Signed in as {_e(user.get('name', 'a guest'))}. Search for a product above.</p>")

    def _account(self) -> Response:
        user = self.spec.get("user", {})
        sizes = "".join(f"<li>{_e(kind)}: {_e(size)}</li>" for kind, size in sorted(user.get("sizes", {}).items()))
        values = ", ".join(user.get("values", ())) or "nothing in particular"
        body = (
            f"<p>Name: {_e(user.get('name', ''))}</p><h3>Usual sizes</h3><ul>{sizes}</ul>"
            f"<h3>Always prefers</h3><p>{_e(values)}</p>"
            f"<h3>Favourite brands</h3><p>{_e(', '.join(user.get('brands', ())) or 'none')}</p>"
            f"<h3>Avoids brands</h3><p>{_e(', '.join(user.get('avoid_brands', ())) or 'none')}</p>"
        )
        return self._page("Your account", body)

    def _results(self, query: dict[str, str]) -> Response:
        q = " ".join(query.get("q", "").split())
        if not q:
            return self._page("Search", "<p>Type what you are looking for.</p>")
        found = rank(list(self.items.values()), q, self.spec.get("user"))
        pages = max(1, -(-len(found) // PAGE_SIZE))
        try:
            page = min(max(int(query.get("page", "1")), 1), pages)
        except ValueError:
            page = 1
        shown = found[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        back = urlencode({"q": q, "page": page})
        rows = "".join(
            f'<li><a href="/item/{quote(item["id"])}?{back}">{_e(item["title"])}</a> {_money(item["price"])}</li>' for item in shown
        )
        links = []
        if page > 1:
            links.append(f'<a href="/search?{urlencode({"q": q, "page": page - 1})}">&lt; Prev</a>')
        if page < pages:
            links.append(f'<a href="/search?{urlencode({"q": q, "page": page + 1})}">Next &gt;</a>')
        listing = f"<ol>{rows}</ol>" if rows else "<p>No results.</p>"
        body = f"<p>Page {page} of {pages} ({len(found)} results)</p>{listing}<p>{' '.join(links)}</p>"
        return self._page(f"Results for \u201c{q}\u201d", body, search=q)

    def _item(self, item_id: str, query: dict[str, str]) -> Response:
        item = self.items.get(item_id)
        if item is None:
            return _not_found(f"/item/{item_id}")
        groups = "".join(
            f"<fieldset><legend>{_e(dim)}</legend>"
            + "".join(
                f'<label><input type="radio" name="opt_{_e(dim)}" value="{_e(v)}"> {_e(v)}</label> ' for v in values
            )
            + "</fieldset>"
            for dim, values in item["options"].items()
        )
        features = "".join(f"<li>{_e(a)}</li>" for a in item["attributes"])
        back = f'<a href="/search?{urlencode(query)}">&lt; Back to results</a>' if query.get("q") else ""
        body = (
            f"<p>Price: {_money(item['price'])}</p><p>Rating: {item['rating']} of 5</p><p>Type: {_e(item['type'])}</p>"
            f"<p>Brand: {_e(item['brand'])}</p><h3>Features</h3><ul>{features}</ul>"
            f'<form action="/buy" method="post"><input type="hidden" name="item" value="{_e(item_id)}">{groups}'
            f'<button type="submit">Buy Now</button></form><p>{back}</p>'
        )
        return self._page(item["title"], body, search=query.get("q", ""))

    def _buy(self, form: dict[str, str]) -> Response:
        if self.purchases:
            return self._page("Order placed", "<p>Your order is already placed; this shop takes one order.</p>")
        item = self.items.get(form.get("item", ""))
        if item is None:
            return self._page("Cannot buy", "<p>There is no such item.</p>")
        chosen: dict[str, str] = {}
        for key, value in form.items():
            if key == "item":
                continue
            dim = key.removeprefix("opt_")
            if not key.startswith("opt_") or value not in item["options"].get(dim, ()):
                return self._page("Cannot buy", f"<p>{_e(item['title'])} has no option {_e(dim)} = {_e(value)}.</p>")
            chosen[dim] = value
        # What the catalogue says, never what the request said: the judge reads this record.
        self.purchases.append({
            "item": item["id"], "type": item["type"], "category": item["category"],
            "attributes": list(item["attributes"]), "options": chosen, "price": item["price"],
            "seconds": time.monotonic() - self.opened,
        })  # fmt: skip
        said = ", ".join(f"{d}: {v}" for d, v in chosen.items())
        return self._page("Thank you for shopping with us", f"<p>You bought {_e(item['title'])}{f' ({_e(said)})' if said else ''}.</p>")
