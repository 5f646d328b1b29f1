"""The pages a sandbox's browser may load: served from the tool server itself, never a network.

The browser's every request goes through the plugin (:mod:`.ops_browser` routes them), which
answers for the origins registered here and refuses the rest. So a site needs no server
process and no port: nothing the agent runs can reach it but the browser, and what the site
records (requests, carts, orders, messages) lives in the tool server's memory, which the agent
cannot write. A judge reads that record (``browser.site_state``).

* :class:`StaticSite`: files under a directory (MiniWoB++'s pages, from the ``miniwob`` wheel:
  root-owned, in the read-only image).
* :class:`ShopSite`: a small generated shop and company site from a spec (WebTasks): product
  tables over pages, product pages with an add-to-cart form, a cart with checkout, a staff
  directory by department, a contact form, and search over all of it.
"""

from __future__ import annotations

import html
import mimetypes
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

__all__ = ["Response", "ShopSite", "StaticSite"]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"


def _not_found(path: str) -> Response:
    return Response(404, f"<html><head><title>Not found</title></head><body><h1>Not found</h1><p>{html.escape(path)}</p></body></html>".encode())


class StaticSite:
    """Files under ``root`` (a request for a path outside it is a 404)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)

    def handle(self, method: str, url: str, body: bytes | None) -> Response:
        path = urlsplit(url).path
        full = os.path.realpath(os.path.join(self.root, path.lstrip("/")))
        if method not in ("GET", "HEAD") or not full.startswith(self.root + os.sep) or not os.path.isfile(full):
            return _not_found(path)
        with open(full, "rb") as fh:
            data = fh.read()
        kind = mimetypes.guess_type(full)[0] or "application/octet-stream"
        return Response(200, data, kind + ("; charset=utf-8" if kind.startswith("text/") or kind.endswith("javascript") else ""))


_STYLE = (
    "body{font-family:sans-serif;margin:16px;max-width:900px}nav a{margin-right:12px}"
    "table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 8px}"
    "form{margin:8px 0}label{display:block;margin:6px 0}"
)


def _page(site: str, title: str, body: str) -> Response:
    nav = (
        '<nav><a href="/">Home</a><a href="/products">Products</a><a href="/staff">Staff</a>'
        '<a href="/contact">Contact</a><a href="/cart">Cart</a></nav>'
        '<form action="/search" method="get" role="search"><input type="search" name="q" aria-label="Search the site">'
        '<button type="submit">Search</button></form>'
    )
    doc = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)} - {html.escape(site)}</title>"
        f"<style>{_STYLE}</style></head><body><header><h1>{html.escape(site)}</h1>{nav}</header>"
        f"<main><h2>{html.escape(title)}</h2>{body}</main></body></html>"
    )
    return Response(200, doc.encode())


def _e(value: Any) -> str:
    return html.escape(str(value))


def _money(cents: int) -> str:
    return f"${cents // 100}.{cents % 100:02d}"


@dataclass
class ShopSite:
    """A generated site (see the module docstring) and what happened on it."""

    spec: Mapping[str, Any]
    cart: dict[str, int] = field(default_factory=dict)
    orders: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)

    MAX_LOG = 1000  # requests kept; the agent cannot make the record grow without bound

    @property
    def products(self) -> list[Mapping[str, Any]]:
        return list(self.spec.get("products", ()))

    def state(self) -> dict[str, Any]:
        return {
            "cart": dict(self.cart),
            "orders": [dict(o) for o in self.orders],
            "messages": [dict(m) for m in self.messages],
            "log": list(self.log),
        }

    def handle(self, method: str, url: str, body: bytes | None) -> Response:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        form = {k: v[-1] for k, v in parse_qs((body or b"").decode("utf-8", "replace")).items()} if method == "POST" else {}
        path = parts.path.rstrip("/") or "/"
        if len(self.log) < self.MAX_LOG:
            self.log.append({"method": method, "path": path, "query": query, "form": form})
        route = getattr(self, f"_{method.lower()}_{path.strip('/').split('/')[0] or 'home'}", None)
        if route is None:
            return _not_found(path)
        return route(path, query, form)

    # -- pages -------------------------------------------------------------------

    def _site(self) -> str:
        return str(self.spec.get("name", "Shop"))

    def _get_home(self, path: str, query: dict, form: dict) -> Response:
        if path != "/":
            return _not_found(path)
        cats = "".join(f'<li><a href="/products?category={quote(c)}">{_e(c)}</a></li>' for c in self.spec.get("categories", ()))
        return _page(self._site(), "Welcome", f"<p>{_e(self.spec.get('tagline', ''))}</p><h3>Categories</h3><ul>{cats}</ul>")

    def _product_table(self, products: list[Mapping[str, Any]]) -> str:
        rows = "".join(
            f'<tr><td><a href="/product/{quote(p["sku"])}">{_e(p["name"])}</a></td><td>{_e(p["sku"])}</td>'
            f'<td>{_e(p["category"])}</td><td>{_money(p["price"])}</td><td>{_e(p["stock"])}</td></tr>'
            for p in products
        )
        return f"<table><thead><tr><th>Product</th><th>SKU</th><th>Category</th><th>Price</th><th>In stock</th></tr></thead><tbody>{rows}</tbody></table>"

    def _get_products(self, path: str, query: dict, form: dict) -> Response:
        products = self.products
        category = query.get("category")
        if category:
            products = [p for p in products if p["category"] == category]
        size = int(self.spec.get("page_size", 10))
        pages = max(1, -(-len(products) // size))
        try:
            page = min(max(int(query.get("page", 1)), 1), pages)
        except ValueError:
            page = 1
        shown = products[(page - 1) * size : page * size]
        extra = f"&category={quote(category)}" if category else ""
        links = " ".join(
            f"<strong>{n}</strong>" if n == page else f'<a href="/products?page={n}{extra}">Page {n}</a>' for n in range(1, pages + 1)
        )
        title = f"Products: {category}" if category else "Products"
        return _page(self._site(), title, f"{self._product_table(shown)}<p>Page {page} of {pages}. {links if pages > 1 else ''}</p>")

    def _get_product(self, path: str, query: dict, form: dict) -> Response:
        sku = path.split("/", 2)[-1]
        product = next((p for p in self.products if p["sku"] == sku), None)
        if product is None:
            return _not_found(path)
        body = (
            f"<p>{_e(product.get('description', ''))}</p><dl><dt>SKU</dt><dd>{_e(sku)}</dd><dt>Category</dt>"
            f"<dd>{_e(product['category'])}</dd><dt>Price</dt><dd>{_money(product['price'])}</dd><dt>In stock</dt>"
            f"<dd>{_e(product['stock'])}</dd></dl>"
            f'<form action="/cart/add" method="post"><input type="hidden" name="sku" value="{_e(sku)}">'
            f'<label>Quantity <input type="number" name="quantity" value="1" min="1" max="99"></label>'
            '<button type="submit">Add to cart</button></form>'
        )
        return _page(self._site(), product["name"], body)

    def _get_staff(self, path: str, query: dict, form: dict) -> Response:
        departments = list(self.spec.get("departments", ()))
        dept = path.split("/", 2)[2] if path.count("/") >= 2 else None
        if dept is None:
            items = "".join(f'<li><a href="/staff/{quote(d)}">{_e(d)}</a></li>' for d in departments)
            return _page(self._site(), "Staff directory", f"<p>Choose a department.</p><ul>{items}</ul>")
        if dept not in departments:
            return _not_found(path)
        people = [s for s in self.spec.get("staff", ()) if s["department"] == dept]
        rows = "".join(
            f"<tr><td>{_e(s['name'])}</td><td>{_e(s['title'])}</td><td>{_e(s['email'])}</td><td>{_e(s['phone'])}</td></tr>"
            for s in people
        )
        table = f"<table><thead><tr><th>Name</th><th>Title</th><th>Email</th><th>Phone</th></tr></thead><tbody>{rows}</tbody></table>"
        return _page(self._site(), f"Staff: {dept}", table)

    def _get_search(self, path: str, query: dict, form: dict) -> Response:
        q = " ".join(query.get("q", "").split()).casefold()
        if not q:
            return _page(self._site(), "Search", "<p>Type something to search for.</p>")
        products = [p for p in self.products if q in p["name"].casefold() or q == p["sku"].casefold()]
        people = [s for s in self.spec.get("staff", ()) if q in s["name"].casefold()]
        items = "".join(f'<li><a href="/product/{quote(p["sku"])}">{_e(p["name"])}</a> ({_money(p["price"])})</li>' for p in products)
        items += "".join(f'<li><a href="/staff/{quote(s["department"])}">{_e(s["name"])}</a> ({_e(s["department"])})</li>' for s in people)
        found = f"<ul>{items}</ul>" if items else "<p>No results.</p>"
        return _page(self._site(), f"Search results for \u201c{query.get('q', '')}\u201d", found)

    def _get_contact(self, path: str, query: dict, form: dict) -> Response:
        topics = "".join(f'<option value="{_e(t)}">{_e(t)}</option>' for t in self.spec.get("topics", ()))
        body = (
            '<form action="/contact" method="post">'
            '<label>Your name <input type="text" name="name"></label>'
            '<label>Email <input type="email" name="email"></label>'
            f'<label>Topic <select name="topic"><option value="">Choose a topic</option>{topics}</select></label>'
            '<label>Message <textarea name="message" rows="3"></textarea></label>'
            '<label><input type="checkbox" name="subscribe" value="yes"> Subscribe to the newsletter</label>'
            '<button type="submit">Send</button></form>'
        )
        return _page(self._site(), "Contact us", body)

    def _post_contact(self, path: str, query: dict, form: dict) -> Response:
        message = {k: " ".join(form.get(k, "").split()) for k in ("name", "email", "topic", "message")}
        message["subscribe"] = form.get("subscribe") == "yes"
        self.messages.append(message)
        return _page(self._site(), "Message sent", f"<p>Thank you, {_e(message['name'])}. We will answer soon.</p>")

    def _get_cart(self, path: str, query: dict, form: dict) -> Response:
        if path != "/cart":
            return _not_found(path)
        by_sku = {p["sku"]: p for p in self.products}
        rows, total = "", 0
        for sku, qty in self.cart.items():
            product = by_sku[sku]
            total += qty * product["price"]
            rows += (
                f"<tr><td>{_e(product['name'])}</td><td>{qty}</td><td>{_money(qty * product['price'])}</td><td>"
                f'<form action="/cart/remove" method="post"><input type="hidden" name="sku" value="{_e(sku)}">'
                f'<button type="submit" aria-label="Remove {_e(product["name"])}">Remove</button></form></td></tr>'
            )
        if not rows:
            return _page(self._site(), "Your cart", "<p>Your cart is empty.</p>")
        shipping = "".join(f'<option value="{_e(s)}">{_e(s)}</option>' for s in self.spec.get("shipping", ()))
        body = (
            f"<table><thead><tr><th>Product</th><th>Quantity</th><th>Subtotal</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
            f"<p>Total: {_money(total)}</p><h3>Checkout</h3>"
            '<form action="/checkout" method="post"><label>Full name <input type="text" name="name"></label>'
            '<label>Address <input type="text" name="address"></label>'
            f'<label>Shipping <select name="shipping">{shipping}</select></label>'
            '<button type="submit">Place order</button></form>'
        )
        return _page(self._site(), "Your cart", body)

    def _post_cart(self, path: str, query: dict, form: dict) -> Response:
        sku = form.get("sku", "")
        if sku not in {p["sku"] for p in self.products}:
            return _page(self._site(), "Cart", "<p>There is no such product.</p>")
        if path == "/cart/add":
            try:
                qty = int(form.get("quantity", "1"))
            except ValueError:
                qty = 0
            if not 1 <= qty <= 99:
                return _page(self._site(), "Cart", "<p>The quantity must be a whole number from 1 to 99.</p>")
            self.cart[sku] = min(self.cart.get(sku, 0) + qty, 99)
        elif path == "/cart/remove":
            self.cart.pop(sku, None)
        else:
            return _not_found(path)
        # The cart itself answers (a redirect cannot be fulfilled for a routed navigation).
        return self._get_cart("/cart", {}, {})

    def _post_checkout(self, path: str, query: dict, form: dict) -> Response:
        if not self.cart:
            return _page(self._site(), "Checkout", "<p>Your cart is empty.</p>")
        order = {
            "items": dict(self.cart),
            "name": " ".join(form.get("name", "").split()),
            "address": " ".join(form.get("address", "").split()),
            "shipping": form.get("shipping", ""),
        }
        self.orders.append(order)
        self.cart.clear()
        return _page(self._site(), "Order placed", f"<p>Order number {len(self.orders)} is placed. Thank you!</p>")
