"""SQL execution-match checker: executed *inside the sandbox* as root by :mod:`boxgym.judges.sql`.

Stdlib only, started as ``python3 -I -S -c <this file>`` with a JSON payload
on stdin: ``setup`` (the SQL script that builds the pristine database),
``gold``, ``query`` (the agent's), ``ordered``, ``max_rows``, ``seconds``, ``nonce``.

Both queries run against a fresh in-memory copy of the database built from
``setup``, never the file the agent may have edited. An authorizer allows
reads only (no ATTACH, PRAGMA, writes or schema changes) and a progress
handler stops a query that runs past its time. The verdict is the last
stdout line, echoing the nonce.
"""

import collections
import json
import os
import sqlite3
import sys
import time

SQLITE_READ, SQLITE_SELECT, SQLITE_FUNCTION, SQLITE_RECURSIVE = 20, 21, 31, 33
ALLOWED = {SQLITE_READ, SQLITE_SELECT, SQLITE_FUNCTION, SQLITE_RECURSIVE}
MAX_VALUE = 1 << 20  # bytes in one string or blob


def authorizer(action, *args):
    return sqlite3.SQLITE_OK if action in ALLOWED else sqlite3.SQLITE_DENY


def canonical(value):
    # Execution match as in Spider/BIRD: 3 and 3.0 are the same answer; floats to 6 places.
    if isinstance(value, float):
        value = round(value, 6)
        return int(value) if value.is_integer() else value
    return value


def run(conn, sql, cfg):
    deadline = time.monotonic() + cfg["seconds"]
    conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
    rows = conn.execute(sql).fetchmany(cfg["max_rows"] + 1)
    if len(rows) > cfg["max_rows"]:
        raise ValueError(f"more than {cfg['max_rows']} rows")
    return [tuple(canonical(v) for v in row) for row in rows]


def main():
    real_stdout = os.dup(1)
    cfg = json.loads(sys.stdin.read())
    verdict = {"nonce": cfg["nonce"], "match": False, "detail": "", "harness_error": None}
    status = 2
    try:
        conn = sqlite3.connect(":memory:")
        conn.executescript(cfg["setup"])
        conn.set_authorizer(authorizer)
        # A query like SELECT zeroblob(1e9) must fail as a query, not take the
        # checker down with the sandbox's memory (which would read as a judge failure).
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE)
        gold = run(conn, cfg["gold"], cfg)
        try:
            got = run(conn, cfg["query"], cfg)
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            verdict["detail"] = f"the query failed: {type(exc).__name__}: {exc}"[:1000]
            status = 1
        else:
            if cfg["ordered"]:
                match = got == gold
            else:
                match = collections.Counter(got) == collections.Counter(gold)
            verdict["match"] = match
            verdict["detail"] = f"{len(got)} rows, gold has {len(gold)}; first: {got[:3]!r}"[:1000]
            status = 0 if match else 1
    except BaseException as exc:  # noqa: BLE001 - the harness reports its own failure, whatever it is
        verdict["harness_error"] = f"{type(exc).__name__}: {exc}"[:2000]
        status = 2
    os.write(real_stdout, (json.dumps(verdict) + "\n").encode())
    os._exit(status)


if __name__ == "__main__":
    main()
