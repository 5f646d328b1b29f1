"""The data-analysis suite: questions about generated data files, answered with an IPython kernel.

Each task generates its data from its seed (CSV, JSON and SQLite files in the work directory)
and asks one question whose answer is a number, computed here by construction, in plain
Python over the generated records, never by the code an agent would write. The agent has the
``python`` tool (a Jupyter kernel with pandas, NumPy and Matplotlib: the ``jupyter`` image) and
``submit``; the judge compares the submitted number with the answer within the precision the
question asks for (2 decimals, or exactly for counts and days).

=====  ===========================================================================================
level  data and questions
=====  ===========================================================================================
0      ``orders.csv``: one table, a filter and an aggregation (a category's revenue, a month's
       large orders, a product's mean quantity)
1      ``orders.json``: nested records to flatten, then group (the best city's total, repeat
       customers, a city's mean order total)
2      ``orders.csv`` + ``products.json`` + ``shop.db`` (SQLite): joins across the three (a
       segment's revenue in a city after discounts, the best category of a city, distinct
       products of early customers)
3      ``sensors.csv``: an hourly time series with gaps (the highest daily mean, the highest
       24-hour rolling mean, and the peak day read from a plot the agent makes and saves as
       ``plot.png``, which the judge requires)
=====  ===========================================================================================

The data come from :mod:`.analysis_data`. The reference solution is a pandas cell that prints
the answer, then ``submit``; the tests check that the cell prints the constructed answer, so
the question, the data and the construction agree. The answer never enters the sandbox.
"""

from __future__ import annotations

import calendar
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

from ...errors import JudgeError, SandboxBroken, SandboxClosed, SandboxError
from ...judges.answer import ExpectedAnswer, answers_match
from ...judges.base import Check, FinishedEpisode, Verdict
from ...toolsets.calls import ToolCall
from ..tasks import ProceduralTaskSet, Task
from .analysis_data import (
    Order,
    Product,
    Series,
    Shop,
    daily_means,
    make_series,
    make_shop,
    orders_json,
    orders_table,
    series_files,
    shop_files,
)

__all__ = ["AnalysisJudge", "LEVELS", "SYSTEM_PROMPT", "generate", "task_set"]

SYSTEM_PROMPT = (
    "You are a data analyst working in a Linux sandbox with no network access. The data files are in the "
    "working directory. The python tool runs code in a persistent IPython kernel (like a Jupyter notebook) with "
    "pandas, NumPy and Matplotlib installed. Explore the data, compute the answer, then call submit with answer "
    "set to the number the question asks for (the number alone)."
)
LEVELS = 4
PLOT = "plot.png"


# -- questions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Question:
    family: str
    text: str
    answer: float
    decimals: int  # 2, or 0 for a count or a day (judged exactly)
    code: str  # the reference cell: pandas, printing the answer
    plot: bool = False


Family = Callable[[np.random.Generator, Any], _Question]

_LOAD_L0 = "import pandas as pd\ndf = pd.read_csv('orders.csv', parse_dates=['date'])\n"


def _category_revenue(rng: np.random.Generator, shop: Shop) -> _Question:
    category = str(rng.choice(sorted({p.category for p in shop.products})))
    total = math.fsum(p.price * q for o in shop.orders for p, q in o.lines if p.category == category)
    return _Question(
        "category_revenue",
        f"What is the total revenue of the orders in the category '{category}'? The revenue of an order is its "
        "quantity times its unit_price. Answer with 2 decimals.",
        total,
        2,
        _LOAD_L0 + f"value = (df.quantity * df.unit_price)[df.category == {category!r}].sum()\nprint(round(value, 2))\n",
    )


def _large_orders(rng: np.random.Generator, shop: Shop) -> _Question:
    month, least = int(rng.integers(1, 13)), int(rng.integers(5, 9))
    count = sum(1 for o in shop.orders for _, q in o.lines if o.day.month == month and q >= least)
    return _Question(
        "large_orders",
        f"How many orders placed in {calendar.month_name[month]} 2023 have a quantity of at least {least}?",
        count,
        0,
        _LOAD_L0 + f"print(int(((df.date.dt.month == {month}) & (df.quantity >= {least})).sum()))\n",
    )


def _mean_quantity(rng: np.random.Generator, shop: Shop) -> _Question:
    sold = sorted({p.name for o in shop.orders for p, _ in o.lines})
    product = str(rng.choice(sold))
    quantities = [q for o in shop.orders for p, q in o.lines if p.name == product]
    return _Question(
        "mean_quantity",
        f"What is the mean quantity of the orders of the product '{product}'? Answer with 2 decimals.",
        math.fsum(quantities) / len(quantities),
        2,
        _LOAD_L0 + f"print(round(df.quantity[df['product'] == {product!r}].mean(), 2))\n",
    )


_LOAD_L1 = (
    "import json\nimport pandas as pd\nrecords = json.load(open('orders.json'))\n"
    "items = pd.json_normalize(records, 'items', ['order_id', ['customer', 'id'], ['customer', 'city']])\n"
    "items['total'] = items.quantity * items.unit_price\n"
)


def _order_total(order: Order) -> float:
    return math.fsum(p.price * q for p, q in order.lines)


def _best_city(rng: np.random.Generator, shop: Shop) -> _Question:
    totals: dict[str, list[float]] = defaultdict(list)
    for o in shop.orders:
        totals[o.customer.city].append(_order_total(o))
    best = max(math.fsum(v) for v in totals.values())
    return _Question(
        "best_city",
        "Which city's customers spent the most in total? An order's total is the sum of quantity times unit_price "
        "over its items; a customer's city is in the order's customer record. Answer with that city's total spend, "
        "with 2 decimals.",
        best,
        2,
        _LOAD_L1 + "print(round(items.groupby('customer.city').total.sum().max(), 2))\n",
    )


def _repeat_customers(rng: np.random.Generator, shop: Shop) -> _Question:
    counts: dict[int, int] = defaultdict(int)
    for o in shop.orders:
        counts[o.customer.id] += 1
    least = int(rng.integers(4, 9))
    return _Question(
        "repeat_customers",
        f"How many customers (by customer id) placed at least {least} orders?",
        sum(1 for n in counts.values() if n >= least),
        0,
        "import json\nimport pandas as pd\norders = pd.json_normalize(json.load(open('orders.json')))\n"
        f"print(int((orders.groupby('customer.id').size() >= {least}).sum()))\n",
    )


def _city_mean_total(rng: np.random.Generator, shop: Shop) -> _Question:
    city = str(rng.choice(sorted({o.customer.city for o in shop.orders})))
    totals = [_order_total(o) for o in shop.orders if o.customer.city == city]
    return _Question(
        "city_mean_total",
        f"What is the mean order total of the orders of customers in {city}? An order's total is the sum of "
        "quantity times unit_price over its items. Answer with 2 decimals.",
        math.fsum(totals) / len(totals),
        2,
        _LOAD_L1 + f"per_order = items[items['customer.city'] == {city!r}].groupby('order_id').total.sum()\n"
        "print(round(per_order.mean(), 2))\n",
    )


_LOAD_L2 = (
    "import sqlite3\nimport pandas as pd\norders = pd.read_csv('orders.csv')\n"
    "products = pd.read_json('products.json')\n"
    "customers = pd.read_sql('SELECT * FROM customers', sqlite3.connect('shop.db'))\n"
    "df = orders.merge(products, left_on='product_id', right_on='id').merge(customers, left_on='customer_id', "
    "right_on='id', suffixes=('_product', '_customer'))\n"
    "df['revenue'] = df.quantity * df.price * (1 - df.discount_pct / 100)\n"
)
_REVENUE = (
    "An order line's revenue is its quantity times the product's price (products.json) times "
    "(1 - discount_pct / 100)."
)


def _revenue(product: Product, quantity: int, order: Order) -> float:
    return quantity * product.price * (1 - order.discount_pct / 100)


def _segment_city_revenue(rng: np.random.Generator, shop: Shop) -> _Question:
    pairs = sorted({(o.customer.segment, o.customer.city) for o in shop.orders})
    segment, city = pairs[int(rng.integers(0, len(pairs)))]
    total = math.fsum(
        _revenue(p, q, o) for o in shop.orders for p, q in o.lines if (o.customer.segment, o.customer.city) == (segment, city)
    )
    return _Question(
        "segment_city_revenue",
        f"What is the total revenue from the {segment} customers (the customers table of shop.db) who live in "
        f"{city}? {_REVENUE} Answer with 2 decimals.",
        total,
        2,
        _LOAD_L2 + f"print(round(df.revenue[(df.segment == {segment!r}) & (df.city == {city!r})].sum(), 2))\n",
    )


def _city_best_category(rng: np.random.Generator, shop: Shop) -> _Question:
    city = str(rng.choice(sorted({o.customer.city for o in shop.orders})))
    by_category: dict[str, list[float]] = defaultdict(list)
    for o in shop.orders:
        if o.customer.city == city:
            for p, q in o.lines:
                by_category[p.category].append(_revenue(p, q, o))
    return _Question(
        "city_best_category",
        f"Which product category brought the most revenue from customers living in {city}? {_REVENUE} Answer with "
        "that category's revenue from them, with 2 decimals.",
        max(math.fsum(v) for v in by_category.values()),
        2,
        _LOAD_L2 + f"print(round(df[df.city == {city!r}].groupby('category').revenue.sum().max(), 2))\n",
    )


def _early_products(rng: np.random.Generator, shop: Shop) -> _Question:
    cutoff = date(2022, 1, 1) + timedelta(days=int(rng.integers(90, 300)))
    products = {p.id for o in shop.orders if o.customer.signup < cutoff for p, _ in o.lines}
    return _Question(
        "early_products",
        f"How many distinct products were bought by customers who signed up before {cutoff.isoformat()} (the "
        "signup column of the customers table in shop.db)?",
        len(products),
        0,
        _LOAD_L2 + f"print(df[df.signup < {cutoff.isoformat()!r}].product_id.nunique())\n",
    )


# -- the time series (level 3) -------------------------------------------------------------


def _load_sensor(sensor: str) -> str:
    return (
        "import pandas as pd\ndf = pd.read_csv('sensors.csv', parse_dates=['timestamp'])\n"
        f"s = df[df.sensor == {sensor!r}].set_index('timestamp').temperature.sort_index()\n"
    )


def _highest_daily_mean(rng: np.random.Generator, series: Series) -> _Question:
    sensor = str(rng.choice(sorted(series.readings)))
    return _Question(
        "highest_daily_mean",
        f"For the sensor '{sensor}', what is the highest daily mean temperature in March 2024? A day's mean is the "
        "mean of that sensor's readings on that day; missing readings (empty cells) are left out. Answer with 2 "
        "decimals.",
        max(daily_means(series.readings[sensor])),
        2,
        _load_sensor(sensor) + "print(round(s.resample('D').mean().max(), 2))\n",
    )


def _rolling_peak(rng: np.random.Generator, series: Series) -> _Question:
    sensor = str(rng.choice(sorted(series.readings)))
    values = series.readings[sensor]
    best = -math.inf
    for end in range(23, len(values)):
        present = [v for v in values[end - 23 : end + 1] if v is not None]
        if present:
            best = max(best, math.fsum(present) / len(present))
    return _Question(
        "rolling_peak",
        f"For the sensor '{sensor}', the file has one row per hour. For every window of 24 consecutive hours that "
        "lies entirely within March 2024 (the first starts at the first hour), compute the mean of the readings in "
        "the window, leaving missing readings (empty cells) out. What is the largest of these means? Answer with 2 "
        "decimals.",
        best,
        2,
        _load_sensor(sensor) + "print(round(s.rolling(24, min_periods=1).mean().iloc[23:].max(), 2))\n",
    )


def _plotted_peak(rng: np.random.Generator, series: Series) -> _Question:
    sensor = str(rng.choice(sorted(series.readings)))
    means = daily_means(series.readings[sensor])
    day = max(range(len(means)), key=means.__getitem__) + 1
    return _Question(
        "plotted_peak",
        f"Plot the daily mean temperature of the sensor '{sensor}' over March 2024 as a line chart (a day's mean "
        f"is the mean of its readings; missing readings are left out), save the figure as {PLOT} in the working "
        "directory, and read from it the day of the month on which the daily mean is highest. Answer with the day "
        "number (1 to 31).",
        day,
        0,
        _load_sensor(sensor) + "import matplotlib.pyplot as plt\ndaily = s.resample('D').mean()\n"
        "fig, ax = plt.subplots(figsize=(8, 3))\nax.plot(daily.index.day, daily.values, marker='o')\n"
        "ax.set_xlabel('day of March 2024'); ax.set_ylabel('mean temperature (C)')\n"
        f"fig.savefig({PLOT!r})\nplt.show()\nprint(int(daily.idxmax().day))\n",
        plot=True,
    )


_FAMILIES: tuple[tuple[Family, ...], ...] = (
    (_category_revenue, _large_orders, _mean_quantity),
    (_best_city, _repeat_customers, _city_mean_total),
    (_segment_city_revenue, _city_best_category, _early_products),
    (_highest_daily_mean, _rolling_peak, _plotted_peak),
)
_FILES = (orders_table, orders_json, shop_files, series_files)


def _format(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}" if decimals else str(int(round(value)))


def generate(seed: int, level: int) -> Task:
    rng = np.random.default_rng(seed)
    data: Any = make_series(rng) if level == 3 else make_shop(rng, max_lines=4 if level == 1 else 1)
    families = _FAMILIES[level]
    question = families[int(rng.integers(0, len(families)))](rng, data)
    answer = _format(question.answer, question.decimals)
    # Judged against the unrounded value: either rounding of a last digit that ends in 5 is right.
    exact = f"{question.answer:.9f}" if question.decimals else answer
    files = _FILES[level](data)
    listing = ", ".join(sorted(files))
    example = "with 2 decimals, e.g. submit(answer=\"1234.57\")" if question.decimals else "e.g. submit(answer=\"42\")"
    prompt = f"The working directory holds {listing}.\n\n{question.text}\n\nSubmit the number alone, {example}."
    return Task(
        id=f"analysis/d{level}/s{seed}",
        prompt=prompt,
        # Counts and days are exact; 2 decimals are right within half a cent of the exact value.
        oracle=ExpectedAnswer(exact, "numeric", rel_tol=0.0, abs_tol=0.0051 if question.decimals else 1e-9),
        files=files,
        reference=(
            ToolCall("ref_0", "python", {"code": question.code}),
            ToolCall("ref_1", "submit", {"answer": answer}),
        ),
        difficulty=level,
        metadata={"suite": "analysis", "family": question.family, **({"plot": PLOT} if question.plot else {})},
    )


def task_set() -> ProceduralTaskSet:
    return ProceduralTaskSet("analysis", generate, LEVELS)


# -- judging --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnalysisJudge:
    """The submitted number against the task's answer, within its precision; where the task asks
    for a plot, the answer counts only if the plot file is there and is a PNG image of a chart."""

    async def score(self, episode: FinishedEpisode) -> Verdict:
        expected = episode.task.oracle
        if not isinstance(expected, ExpectedAnswer):
            raise JudgeError(f"task {episode.task.id} has no expected answer")
        checks: list[Check] = []
        plot = episode.task.metadata.get("plot")
        if plot:
            checks.append(await _plot_check(episode, str(plot)))
        if episode.submission is None:
            return Verdict.fail("no answer was submitted", checks=checks)
        right = answers_match(expected, episode.submission)
        checks.append(Check("answer (numeric)", right, f"submitted {episode.submission[:200]!r}"))
        ok = all(check.passed for check in checks)
        return Verdict(1.0 if ok else 0.0, ok, tuple(checks))


async def _plot_check(episode: FinishedEpisode, path: str) -> Check:
    try:
        head = await episode.sandbox.read_file(path, max_bytes=64)
    except (SandboxBroken, SandboxClosed):
        raise
    except SandboxError as exc:  # missing, a directory, a FIFO: no plot
        return Check(f"plot {path}", False, f"cannot be read: {exc}")
    if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 24:
        return Check(f"plot {path}", False, "is not a PNG image")
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if width < 100 or height < 100:
        return Check(f"plot {path}", False, f"is {width}x{height} pixels: too small to be a chart")
    return Check(f"plot {path}", True, f"a {width}x{height} PNG")
