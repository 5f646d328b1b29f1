"""The generated data of the data-analysis suite: a shop's orders and a month of sensor readings.

Everything comes from a NumPy generator, so a seed gives the same data on every machine. The
records are kept as typed values here, from which :mod:`.data_analysis` computes its answers in
plain Python, and written out as the files an agent reads: CSV, nested JSON, SQLite.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

__all__ = [
    "Customer",
    "Order",
    "Product",
    "Series",
    "Shop",
    "daily_means",
    "make_series",
    "make_shop",
    "orders_json",
    "orders_table",
    "series_files",
    "shop_files",
]

_CITIES = ["Lisbon", "Oslo", "Quito", "Accra", "Hanoi", "Perth", "Tunis", "Lima", "Riga", "Osaka"]
_CATEGORIES = ["garden", "kitchen", "office", "toys", "sports", "books", "audio"]
_ADJECTIVES = ["red", "tiny", "smart", "solar", "quiet", "swift", "retro", "bold", "pure", "lucky"]
_NOUNS = ["lamp", "kettle", "chair", "drone", "racket", "novel", "speaker", "shovel", "mug", "puzzle"]
_FIRST_NAMES = ["Ana", "Bo", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana", "Ivo", "Jade", "Kofi", "Lena", "Mo", "Nils"]
_LAST_NAMES = ["Ng", "Ruiz", "Okafor", "Berg", "Kim", "Silva", "Novak", "Haddad", "Ito", "Moreau"]
_SENSORS = ["north", "south", "roof", "cellar"]


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    name: str
    category: str
    price: float


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    name: str
    city: str
    segment: str
    signup: date


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    day: date
    customer: Customer
    lines: tuple[tuple[Product, int], ...]  # (product, quantity)
    discount_pct: int


@dataclass(frozen=True, slots=True)
class Shop:
    products: tuple[Product, ...]
    customers: tuple[Customer, ...]
    orders: tuple[Order, ...]


def make_shop(rng: np.random.Generator, *, max_lines: int) -> Shop:
    cities = [str(c) for c in rng.choice(_CITIES, size=int(rng.integers(4, 7)), replace=False)]
    categories = [str(c) for c in rng.choice(_CATEGORIES, size=int(rng.integers(3, 6)), replace=False)]
    names = [f"{a} {n}" for a in _ADJECTIVES for n in _NOUNS]
    picked = rng.choice(len(names), size=int(rng.integers(8, 16)), replace=False)
    products = tuple(
        Product(i + 1, names[int(k)], categories[i % len(categories)], round(float(rng.uniform(2, 150)), 2))
        for i, k in enumerate(picked)
    )
    customers = tuple(
        Customer(
            i + 1,
            f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
            str(rng.choice(cities)),
            "business" if rng.random() < 0.35 else "consumer",
            date(2022, 1, 1) + timedelta(days=int(rng.integers(0, 365))),
        )
        for i in range(int(rng.integers(20, 45)))
    )
    days = sorted(int(d) for d in rng.integers(0, 365, size=int(rng.integers(150, 320))))
    orders = tuple(
        Order(
            1001 + i,
            date(2023, 1, 1) + timedelta(days=d),
            customers[int(rng.integers(0, len(customers)))],
            tuple(
                (products[int(rng.integers(0, len(products)))], int(rng.integers(1, 10)))
                for _ in range(int(rng.integers(1, max_lines + 1)))
            ),
            int(rng.choice([0, 0, 0, 5, 10, 20])),
        )
        for i, d in enumerate(days)
    )
    return Shop(products, customers, orders)


def csv_text(header: list[str], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def orders_table(shop: Shop) -> dict[str, str | bytes]:
    rows = [
        [o.id, o.day.isoformat(), o.customer.name, p.name, p.category, q, f"{p.price:.2f}"]
        for o in shop.orders
        for p, q in o.lines
    ]
    return {"orders.csv": csv_text(["order_id", "date", "customer", "product", "category", "quantity", "unit_price"], rows)}


def orders_json(shop: Shop) -> dict[str, str | bytes]:
    records = [
        {
            "order_id": o.id,
            "date": o.day.isoformat(),
            "customer": {"id": o.customer.id, "name": o.customer.name, "city": o.customer.city},
            "items": [{"product": p.name, "category": p.category, "quantity": q, "unit_price": p.price} for p, q in o.lines],
        }
        for o in shop.orders
    ]
    return {"orders.json": json.dumps(records, indent=1) + "\n"}


def shop_files(shop: Shop) -> dict[str, str | bytes]:
    orders = [
        [o.id, o.day.isoformat(), o.customer.id, p.id, q, o.discount_pct] for o in shop.orders for p, q in o.lines
    ]
    products = [{"id": p.id, "name": p.name, "category": p.category, "price": p.price} for p in shop.products]
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT, segment TEXT, signup TEXT)")
    db.executemany(
        "INSERT INTO customers VALUES (?, ?, ?, ?, ?)",
        [(c.id, c.name, c.city, c.segment, c.signup.isoformat()) for c in shop.customers],
    )
    db.commit()
    return {
        "orders.csv": csv_text(["order_id", "date", "customer_id", "product_id", "quantity", "discount_pct"], orders),
        "products.json": json.dumps(products, indent=1) + "\n",
        "shop.db": db.serialize(),
    }


@dataclass(frozen=True, slots=True)
class Series:
    start: datetime
    readings: dict[str, list[float | None]]  # sensor -> one value per hour, None where missing
    peak_day: dict[str, int]  # sensor -> the day of its heat event


def make_series(rng: np.random.Generator) -> Series:
    start, hours = datetime(2024, 3, 1), 31 * 24
    sensors = [str(s) for s in rng.choice(_SENSORS, size=int(rng.integers(2, 5)), replace=False)]
    readings: dict[str, list[float | None]] = {}
    peaks: dict[str, int] = {}
    for sensor in sensors:
        base, swing, trend = float(rng.uniform(4, 14)), float(rng.uniform(2, 6)), float(rng.uniform(-0.05, 0.15))
        peak = int(rng.integers(3, 30))
        values: list[float | None] = []
        for h in range(hours):
            day = h // 24
            value = base + trend * day + swing * math.sin((h % 24 - 9) / 24 * 2 * math.pi)
            value += float(rng.normal(0, 0.6)) + (6.0 if day == peak - 1 else 0.0)
            values.append(None if rng.random() < 0.04 else round(value, 1))
        readings[sensor], peaks[sensor] = values, peak
    return Series(start, readings, peaks)


def series_files(series: Series) -> dict[str, str | bytes]:
    rows = []
    for h in range(31 * 24):
        stamp = (series.start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M")
        for sensor, values in series.readings.items():
            rows.append([stamp, sensor, "" if values[h] is None else f"{values[h]:.1f}"])
    return {"sensors.csv": csv_text(["timestamp", "sensor", "temperature"], rows)}


def daily_means(values: list[float | None]) -> list[float]:
    means = []
    for day in range(len(values) // 24):
        present = [v for v in values[day * 24 : day * 24 + 24] if v is not None]
        means.append(math.fsum(present) / len(present) if present else -math.inf)
    return means
