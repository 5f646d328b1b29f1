"""The viewer's aiohttp app: a JSON API over indexed run directories, and a small static front end.

    app = create_app([Path("runs/r1")])     # web.run_app(app), or aiohttp_client in tests

Each run is indexed by a background task (:class:`~boxgym.viewer.index.RunIndex`) that keeps
following its file, so a run still being written updates in the browser: ``/api/events`` is a
server-sent event stream that says which episodes changed. A run that a replayed episode names
as its origin (``branch_of``) is opened on demand, so a replay is compared with its original
without being asked for.

Routes (all GET): ``/`` and ``/static/*`` (the front end); ``/api/runs``;
``/api/runs/{run}/episodes`` (the table: filters, sort, page); ``/api/runs/{run}/episodes/{id}``
(one episode); ``/api/runs/{run}/episodes/{id}/tokens`` (its model calls' tokens);
``/api/diff?a={run}/{id}&b={run}/{id}``; ``/api/runs/{run}/file?path=`` (an image a record
references, inside the run directory only); ``/api/events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from ..errors import ReplayError
from ..replay.rundir import open_run
from .index import SORTABLE, Query, RunIndex
from .pages import critical_path, diff_json, episode_json, prompt_of, tokens_json

__all__ = ["create_app", "Runs", "RUNS"]

_STATIC = resources.files(__package__).joinpath("static")
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
_MAX_TREE_DEPTH = 4


@dataclass
class _Run:
    key: str
    index: RunIndex
    follower: asyncio.Task[None] | None = None


@dataclass
class Runs:
    """The runs the viewer shows, by key, each indexed and followed by its own task."""

    interval: float = 0.5  # seconds between looks at a file that has nothing new
    by_key: dict[str, _Run] = field(default_factory=dict)
    by_path: dict[Path, str] = field(default_factory=dict)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    version: int = 0
    last_changes: dict[str, list[str]] = field(default_factory=dict)  # run key -> episode ids of the last change

    async def open(self, path: str | Path) -> _Run:
        real = Path(path).resolve()
        key = self.by_path.get(real)
        if key is not None:
            return self.by_key[key]
        run = _Run(str(len(self.by_key)), RunIndex(open_run(real)))
        self.by_key[run.key], self.by_path[real] = run, run.key
        await run.index.update(first=True)  # a first short block now, so the first page has rows at once
        run.follower = asyncio.create_task(self._follow(run), name=f"boxgym-view-follow-{run.key}")
        return run

    async def _follow(self, run: _Run) -> None:
        while True:
            more, changed = await run.index.update()
            if changed:
                async with self.changed:
                    self.version += 1
                    self.last_changes[run.key] = changed
                    self.changed.notify_all()
            if not more:
                await asyncio.sleep(self.interval)

    def get(self, key: str) -> _Run:
        run = self.by_key.get(key)
        if run is None:
            raise web.HTTPNotFound(text=json.dumps({"error": f"no run {key!r}"}), content_type="application/json")
        return run

    async def aclose(self) -> None:
        runs, self.by_key = list(self.by_key.values()), {}
        for run in runs:
            if run.follower is not None:
                run.follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run.follower
            await run.index.aclose()


RUNS = web.AppKey("runs", Runs)
_PATHS = web.AppKey("paths", tuple)


def create_app(paths: Sequence[str | Path], *, interval: float = 0.5) -> web.Application:
    """The viewer over ``paths`` (run directories). Raises :class:`ReplayError` for one that is not."""
    for path in paths:
        open_run(path)  # refuse a directory with no trajectories before anything starts
    app = web.Application()
    app[_PATHS] = tuple(paths)
    app[RUNS] = Runs(interval=interval)
    app.cleanup_ctx.append(_runs)
    r = app.router
    r.add_get("/", _page)
    r.add_get("/static/{name}", _static)
    r.add_get("/favicon.ico", _no_icon)
    r.add_get("/api/runs", _runs_list)
    r.add_get("/api/runs/{run}/episodes", _table)
    r.add_get("/api/runs/{run}/episodes/{episode}", _episode)
    r.add_get("/api/runs/{run}/episodes/{episode}/tokens", _tokens)
    r.add_get("/api/runs/{run}/file", _file)
    r.add_get("/api/diff", _diff)
    r.add_get("/api/events", _events)
    return app


async def _runs(app: web.Application) -> AsyncIterator[None]:
    runs = app[RUNS]
    runs.changed = asyncio.Condition()  # bound to the app's loop
    try:
        for path in app[_PATHS]:
            await runs.open(path)
        yield
    finally:
        await runs.aclose()


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, default=str), status=status, content_type="application/json")


async def _page(request: web.Request) -> web.Response:
    return await _static_file("index.html")


async def _no_icon(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def _static(request: web.Request) -> web.Response:
    return await _static_file(request.match_info["name"])


async def _static_file(name: str) -> web.Response:
    suffix = Path(name).suffix
    if "/" in name or suffix not in _TYPES:
        raise web.HTTPNotFound()
    resource = _STATIC.joinpath(name)
    if not resource.is_file():
        raise web.HTTPNotFound()
    return web.Response(body=resource.read_bytes(), content_type=_TYPES[suffix], headers={"Cache-Control": "no-cache"})


def _run_json(run: _Run) -> dict[str, Any]:
    index = run.index
    return {
        "key": run.key,
        "path": str(index.run.path),
        "name": index.run.path.name,
        "indexed_bytes": index.indexed_bytes,
        "total_bytes": index.total_bytes,
        "version": index.version,
        "has_gateway": bool(index.run.gateway_files),
    }


async def _runs_list(request: web.Request) -> web.Response:
    return _json([_run_json(run) for run in request.app[RUNS].by_key.values()])


def _query(request: web.Request) -> Query:
    q = request.query

    def flag(name: str) -> bool:
        return q.get(name, "") in ("1", "true", "yes")

    def number(name: str, default: int) -> int:
        try:
            return int(q.get(name, default))
        except ValueError:
            raise web.HTTPBadRequest(text=f"{name} must be an integer") from None

    sort = q.get("sort", "started")
    if sort not in SORTABLE:
        raise web.HTTPBadRequest(text=f"sort by one of {', '.join(SORTABLE)}")
    return Query(
        env=q.get("env") or None,
        reason=q.get("reason") or None,
        outcome=q.get("outcome") or None,
        text=q.get("q") or None,
        failed=flag("failed"),
        subagents=flag("subagents"),
        sort=sort,
        descending=q.get("order") == "desc",
        offset=number("offset", 0),
        limit=number("limit", 100),
    )


async def _table(request: web.Request) -> web.Response:
    run = request.app[RUNS].get(request.match_info["run"])
    page = await run.index.page(_query(request))
    return _json({"run": _run_json(run), "rows": page.rows, "total": page.total, "facets": page.facets})


async def _tree(index: RunIndex, node: dict[str, Any], depth: int) -> dict[str, Any]:
    keep = ("episode_id", "env_id", "subagent", "steps", "reward", "spawned_at", "reason", "outcome")
    tree = {k: node.get(k) for k in keep}
    children = await index.children(node["episode_id"]) if depth < _MAX_TREE_DEPTH else []
    tree["children"] = [await _tree(index, child, depth + 1) for child in children]
    return tree


async def _found(runs: Runs, key: str, episode_id: str) -> tuple[_Run, dict[str, Any]]:
    run = runs.get(key)
    summary = await run.index.summary(episode_id)
    if summary is None:
        raise web.HTTPNotFound(text=json.dumps({"error": f"no episode {episode_id!r} in run {key}"}),
                               content_type="application/json")  # fmt: skip
    return run, summary


async def _episode(request: web.Request) -> web.Response:
    runs = request.app[RUNS]
    run, summary = await _found(runs, request.match_info["run"], request.match_info["episode"])
    index = run.index
    records = await index.records(summary["episode_id"])
    tree = await _tree(index, summary, 0)
    critical_path(tree)
    page = episode_json(summary, records, tree)
    group = await index.group(summary["group_id"]) if summary.get("group_id") else []
    page["group"] = [{"run": run.key, "episode_id": g["episode_id"], "reward": g["reward"]} for g in group]
    origin = None
    if summary.get("branch_run") and summary.get("branch_episode"):
        try:
            source = await runs.open(summary["branch_run"])
            origin = {"run": source.key, "episode_id": summary["branch_episode"], "shared_steps": summary["shared_steps"]}
        except ReplayError:
            origin = {"run": None, "path": summary["branch_run"], "episode_id": summary["branch_episode"]}
    page["branch_of"] = origin
    page["branches"] = [
        {"run": other.key, "episode_id": b["episode_id"], "shared_steps": b["shared_steps"], "reward": b["reward"]}
        for other in list(runs.by_key.values())
        for b in await other.index.branches(summary["episode_id"])
        if b["branch_run"] and Path(b["branch_run"]).resolve() == index.run.path.resolve()
    ]
    page["run"] = _run_json(run)
    return _json(page)


async def _tokens(request: web.Request) -> web.Response:
    runs = request.app[RUNS]
    run, summary = await _found(runs, request.match_info["run"], request.match_info["episode"])
    episode_id = summary["episode_id"]
    calls = await asyncio.to_thread(run.index.run.calls, episode_id)
    records = await run.index.records(episode_id)
    steps = [r for r in records if r.kind == "step"]
    data = tokens_json(calls, steps)  # type: ignore[arg-type]
    data["prompt"] = prompt_of(calls)
    data["has_gateway"] = bool(run.index.run.gateway_files)
    return _json(data)


def _ref(value: str | None) -> tuple[str, str]:
    if not value or "/" not in value:
        raise web.HTTPBadRequest(text="name episodes as RUN/EPISODE_ID")
    key, episode = value.split("/", 1)
    return key, episode


async def _diff(request: web.Request) -> web.Response:
    runs = request.app[RUNS]
    (a_key, a_id), (b_key, b_id) = _ref(request.query.get("a")), _ref(request.query.get("b"))
    a_run, a = await _found(runs, a_key, a_id)
    b_run, b = await _found(runs, b_key, b_id)
    data = diff_json(a, await a_run.index.records(a_id), b, await b_run.index.records(b_id))
    data["a"]["run"], data["b"]["run"] = a_run.key, b_run.key
    return _json(data)


async def _file(request: web.Request) -> web.StreamResponse:
    run = request.app[RUNS].get(request.match_info["run"])
    root = run.index.run.path.resolve()
    target = (root / request.query.get("path", "")).resolve()
    if root not in target.parents or not target.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(target)


async def _events(request: web.Request) -> web.StreamResponse:
    runs = request.app[RUNS]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    seen = runs.version
    try:
        while True:
            async with runs.changed:
                try:
                    await asyncio.wait_for(runs.changed.wait_for(lambda: runs.version != seen), 15.0)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                seen = runs.version
                changes = dict(runs.last_changes)
            payload = {"version": seen, "runs": [_run_json(r) for r in runs.by_key.values()], "changed": changes}
            await response.write(b"event: update\ndata: " + json.dumps(payload).encode() + b"\n\n")
    except ConnectionResetError:
        pass  # the browser left
    return response
