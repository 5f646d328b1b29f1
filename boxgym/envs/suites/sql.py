"""The SQL suite: answer a question about a generated SQLite database with a query.

Each task builds a company database from its seed (``data.db`` in the work
directory: departments, employees, projects, assignments) and asks a
question; the agent explores the database (``python3`` has ``sqlite3``) and
submits a SELECT query. The judge runs it and the gold query against a
pristine copy and compares the results (execution match).

=====  =====================================================================
level  questions
=====  =====================================================================
0      one table, a filter and a count or a list
1      one table, aggregates and grouping
2      two-table joins
3      joins with grouping, HAVING and a required order
=====  =====================================================================
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import numpy as np

from ...judges.sql import SqlOracle
from ...toolsets.calls import ToolCall
from ..tasks import ProceduralTaskSet, Task

__all__ = ["LEVELS", "SYSTEM_PROMPT", "generate", "task_set", "build_setup"]

LEVELS = 4
SYSTEM_PROMPT = (
    "You are a data analyst working in a Linux sandbox with no network access. The database is the SQLite "
    "file data.db in the working directory; python3 with its sqlite3 module is installed (there is no sqlite3 "
    "command). Explore it with the tools, then call submit with answer set to one SQLite SELECT query whose "
    "result answers the question."
)
_DEPTS = ["Sales", "Research", "Support", "Legal", "Finance", "Design", "Operations", "Marketing"]
_FIRST = ["Ada", "Ben", "Cleo", "Dan", "Eve", "Finn", "Gia", "Hal", "Ivy", "Jon", "Kai", "Lea", "Max", "Nia", "Oto"]
_LAST = ["Ng", "Ruiz", "Okafor", "Berg", "Kim", "Silva", "Novak", "Haddad", "Ito", "Moreau"]
_PROJECTS = ["Atlas", "Beacon", "Comet", "Drift", "Ember", "Flux", "Glade", "Harbor"]


def build_setup(rng: np.random.Generator) -> str:
    """A SQL script that creates and fills the database (deterministic in ``rng``)."""
    depts = list(rng.choice(_DEPTS, size=int(rng.integers(3, 6)), replace=False))
    lines = [
        "CREATE TABLE departments (id INTEGER PRIMARY KEY, name TEXT NOT NULL, floor INTEGER NOT NULL);",
        "CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT NOT NULL, department_id INTEGER NOT NULL "
        "REFERENCES departments(id), salary INTEGER NOT NULL, hired TEXT NOT NULL);",
        "CREATE TABLE projects (id INTEGER PRIMARY KEY, name TEXT NOT NULL, department_id INTEGER NOT NULL "
        "REFERENCES departments(id), budget INTEGER NOT NULL);",
        "CREATE TABLE assignments (employee_id INTEGER NOT NULL REFERENCES employees(id), project_id INTEGER "
        "NOT NULL REFERENCES projects(id), hours INTEGER NOT NULL, PRIMARY KEY (employee_id, project_id));",
    ]
    for i, name in enumerate(depts, 1):
        lines.append(f"INSERT INTO departments VALUES ({i}, '{name}', {int(rng.integers(1, 10))});")
    employees = int(rng.integers(12, 30))
    for i in range(1, employees + 1):
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        dept = int(rng.integers(1, len(depts) + 1))
        salary = int(rng.integers(30, 160)) * 1000
        hired = f"{int(rng.integers(2015, 2025))}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}"
        lines.append(f"INSERT INTO employees VALUES ({i}, '{name}', {dept}, {salary}, '{hired}');")
    projects = list(rng.choice(_PROJECTS, size=int(rng.integers(3, 7)), replace=False))
    for i, name in enumerate(projects, 1):
        budget = int(rng.integers(10, 500)) * 1000
        lines.append(f"INSERT INTO projects VALUES ({i}, '{name}', {int(rng.integers(1, len(depts) + 1))}, {budget});")
    pairs = {(int(rng.integers(1, employees + 1)), int(rng.integers(1, len(projects) + 1))) for _ in range(employees)}
    for emp, proj in sorted(pairs):
        lines.append(f"INSERT INTO assignments VALUES ({emp}, {proj}, {int(rng.integers(1, 200))});")
    return "\n".join(lines) + "\n"


def _names(setup: str, table: str) -> list[str]:
    conn = sqlite3.connect(":memory:")
    conn.executescript(setup)
    return [row[0] for row in conn.execute(f"SELECT name FROM {table} ORDER BY id")]


Question = tuple[str, str, bool]  # (question, gold query, ordered)


def _level0(rng: np.random.Generator, setup: str) -> Question:
    if rng.random() < 0.5:
        limit = int(rng.integers(60, 130)) * 1000
        return (
            f"How many employees earn a salary greater than {limit}?",
            (f"SELECT COUNT(*) FROM employees WHERE salary > {limit}"),
            False,
        )
    year = int(rng.integers(2015, 2025))
    return (
        f"What are the names of the employees hired in {year}?",
        (f"SELECT name FROM employees WHERE hired LIKE '{year}-%'"),
        False,
    )


def _level1(rng: np.random.Generator, setup: str) -> Question:
    if rng.random() < 0.5:
        return (
            "For each department id, how many employees does it have? Give the id and the count.",
            ("SELECT department_id, COUNT(*) FROM employees GROUP BY department_id"),
            False,
        )
    dept = int(rng.integers(1, len(_names(setup, "departments")) + 1))
    return (
        f"What is the highest salary among employees of the department with id {dept}?",
        (f"SELECT MAX(salary) FROM employees WHERE department_id = {dept}"),
        False,
    )


def _level2(rng: np.random.Generator, setup: str) -> Question:
    dept = str(rng.choice(_names(setup, "departments")))
    if rng.random() < 0.5:
        return (
            f"What are the names of the employees who work in the {dept} department?",
            (f"SELECT e.name FROM employees e JOIN departments d ON e.department_id = d.id WHERE d.name = '{dept}'"),
            False,
        )
    return (
        f"What is the total budget of the projects owned by the {dept} department (0 if none)?",
        (
            "SELECT COALESCE(SUM(p.budget), 0) FROM projects p JOIN departments d ON p.department_id = d.id "
            f"WHERE d.name = '{dept}'"
        ),
        False,
    )


def _level3(rng: np.random.Generator, setup: str) -> Question:
    if rng.random() < 0.5:
        floor = int(rng.integers(2, 6)) * 50000
        return (
            f"Which departments pay their employees more than {floor} in total? Give each department's name and "
            "total salary, largest total first (ties by name).",
            "SELECT d.name, SUM(e.salary) AS total FROM departments d JOIN employees e ON e.department_id = d.id "
            f"GROUP BY d.id HAVING total > {floor} ORDER BY total DESC, d.name",
            True,
        )
    return (
        "For each project with at least one assignment, give the project's name and the total hours logged on it, "
        "most hours first (ties by project name).",
        "SELECT p.name, SUM(a.hours) AS hours FROM projects p JOIN assignments a ON a.project_id = p.id "
        "GROUP BY p.id ORDER BY hours DESC, p.name",
        True,
    )


_QUESTIONS: tuple[Callable[[np.random.Generator, str], Question], ...] = (_level0, _level1, _level2, _level3)


def generate(seed: int, level: int) -> Task:
    rng = np.random.default_rng(seed)
    setup = build_setup(rng)
    conn = sqlite3.connect(":memory:")
    conn.executescript(setup)
    while True:
        question, gold, ordered = _QUESTIONS[level](rng, setup)
        rows = conn.execute(gold).fetchall()
        # An empty or zero answer would reward any query that returns nothing.
        if rows and rows not in ([(0,)], [(None,)]):
            break
    database = conn.serialize()
    explore = (
        "python3 -c \"import sqlite3; c = sqlite3.connect('data.db'); "
        "print(c.execute('SELECT sql FROM sqlite_master').fetchall())\""
    )
    return Task(
        id=f"sql/d{level}/s{seed}",
        prompt=f"{question}\n\nSubmit one SQLite SELECT query (submit's answer) whose result answers it."
        + (" The order of the rows matters." if ordered else " The order of the rows does not matter."),
        oracle=SqlOracle(setup=setup, gold=gold, ordered=ordered),
        files={"data.db": database},
        reference=(
            ToolCall("ref_0", "bash", {"command": explore}),
            ToolCall("ref_1", "submit", {"answer": gold}),
        ),
        difficulty=level,
        metadata={"suite": "sql", "ordered": ordered},
    )


def task_set() -> ProceduralTaskSet:
    return ProceduralTaskSet("sql", generate, LEVELS)
