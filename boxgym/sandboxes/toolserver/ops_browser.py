"""The ``browser.*`` operations: one Chromium per sandbox, driven by Playwright, run as the agent.

Chromium runs as the agent user, started on first use and stopped with the sandbox
(:mod:`.browser_launch` says how, and why the agent's shell cannot reach into it).

Pages never come from a network: every request of the browser is routed through this plugin,
which serves the registered origins (:mod:`.browser_sites`) and refuses the rest. The agent
navigates only to those origins (``goto`` and ``new_tab`` refuse ``javascript:``, ``file:``,
``data:`` and everything else), so it has no way to run script in a page.

Ops the agent's tools call (each answers with the new observation, see :meth:`Plugin._observe`):
``observe``, ``goto``, ``click``, ``type``, ``select_option``, ``hover``, ``press``, ``scroll``,
``go_back``, ``new_tab``, ``switch_tab``. What the agent gets wrong (an id that is not on the
page, a page that does not load, an action that times out) is an answer with ``"ok": false``
and an ``error``, and still carries the observation. Ops the env calls: ``open_miniwob``
(a MiniWoB++ task, seeded), ``miniwob_result`` (its reward and done flags as the page's own
code reported them), ``open_site`` (a WebTasks site, or the shop of :mod:`.browser_shop`) and
``site_state`` (what the site recorded).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from . import cgroup
from .browser_launch import Chromium, launch
from .browser_shop import WebShop
from .browser_sites import Response, ShopSite, StaticSite
from .browser_tree import IdMap, needs_description, read_snapshot, render
from .files import Refused
from .plugins import Unavailable

MINIWOB_ORIGIN = "http://miniwob.test"
ACTION_TIMEOUT_S = 10.0
#: Opening a task's page before the agent acts: a slow machine is no reason to fail the episode.
SETUP_TIMEOUT_S = 60.0
#: How long a MiniWoB++ episode may run on the page's own clock: the env's deadline governs instead.
MINIWOB_MAX_TIME_MS = 10 * 24 * 3600 * 1000

# Wraps the page's endEpisode: when the page's own code ends its episode, the result goes to the
# plugin through a binding, once. A later write to the WOB_* variables changes nothing we read.
_MINIWOB_SETUP = """([seed, maxTime]) => {
  const end = core.endEpisode;
  core.endEpisode = function () {
    const before = WOB_EPISODE_ID;
    const out = end.apply(this, arguments);
    if (WOB_EPISODE_ID !== before) {
      window.__boxgymEpisodeEnd({reward: WOB_REWARD_GLOBAL, raw: WOB_RAW_REWARD_GLOBAL,
                                 reason: WOB_REWARD_REASON == null ? null : String(WOB_REWARD_REASON)});
    }
    return out;
  };
  core.EPISODE_MAX_TIME = maxTime;
  Math.seedrandom(seed);
  core.startEpisodeReal();
  core.hideDisplay();
}"""

_SELECT = """function (wanted) {
  if (!(this instanceof HTMLSelectElement)) return {error: 'it is not a drop-down list (<select>)'};
  const options = Array.from(this.options);
  const norm = (s) => s.replace(/\\s+/g, ' ').trim();
  let i = options.findIndex((o) => o.value === wanted);
  if (i < 0) i = options.findIndex((o) => norm(o.label) === norm(wanted) || norm(o.text) === norm(wanted));
  if (i < 0) return {error: 'it has no option ' + JSON.stringify(wanted) + '; its options are ' +
                            options.map((o) => JSON.stringify(norm(o.label))).join(', ')};
  this.selectedIndex = i;
  this.dispatchEvent(new Event('input', {bubbles: true}));
  this.dispatchEvent(new Event('change', {bubbles: true}));
  return {selected: norm(options[i].label)};
}"""

class Navigations:
    """A tab's main-frame navigations: asked for (by the page or a goto), and ended (committed or failed)."""

    def __init__(self) -> None:
        self.asked = 0
        self.done = 0
        self.changed = asyncio.Event()

    def began(self) -> None:
        self.asked += 1

    def ended(self) -> None:
        self.done += 1
        self.changed.set()

    def count(self) -> tuple[int, int]:
        return self.asked, self.done


class AgentError(Exception):
    """What the agent asked for did not work: the answer says why, with the observation."""


@dataclass
class MiniwobResult:
    reward: float
    raw: float
    reason: str | None


class Plugin:
    EXCLUSIVE = frozenset()  # calls wait for each other on the lock instead: one browser, one action at a time

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.lock = asyncio.Lock()
        self.chromium: Chromium | None = None
        self.browser: Any = None
        self.context: Any = None
        self.pages: list[Any] = []
        self.current = 0
        self.ids: dict[Any, IdMap] = {}
        self.cdp: dict[Any, Any] = {}
        self.navigations: dict[Any, Navigations] = {}
        self.last_id = 0
        self.sites: dict[str, StaticSite | ShopSite | WebShop] = {}
        self.miniwob_page: Any = None
        self.miniwob: MiniwobResult | None = None
        self.popups: list[Any] = []  # tabs the page opened since the last observation
        self.crashed = False
        self.viewport = {"width": 1280, "height": 720}
        self.max_chars = 20_000

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._launch()
        except Exception as exc:  # noqa: BLE001 - sorted below: the agent's pids, else the tool is unavailable
            await self._shutdown()
            if cgroup.usage().pids_exhausted:
                raise Refused("the browser cannot start: the sandbox's process limit is reached", "pids_exhausted") from None
            raise Unavailable(f"the browser does not start: {type(exc).__name__}: {exc}") from None

    async def _launch(self) -> None:
        self.chromium = await launch(self.ctx)
        self.browser = self.chromium.browser
        self.browser.on("disconnected", lambda _: setattr(self, "crashed", True))
        self.context = await self.browser.new_context(viewport=self.viewport, service_workers="block", accept_downloads=False)
        self.context.set_default_timeout(ACTION_TIMEOUT_S * 1000)
        await self.context.route("**/*", self._route)
        await self.context.expose_binding("__boxgymEpisodeEnd", self._episode_end)
        self.context.on("page", self._opened)
        await self.context.new_page()  # the first tab: _opened has added it

    async def stop(self) -> None:
        await self._shutdown()

    async def _shutdown(self) -> None:
        chromium, self.chromium, self.browser, self.context = self.chromium, None, None, None
        self.pages.clear()
        self.cdp.clear()
        if chromium is not None:
            await chromium.close(self._blocking)

    async def _blocking(self, fn: Any, *args: Any) -> Any:
        # The server's own threads where there are any: a new thread may not start when the
        # agent has used up the pids (threads.py); the fake has none, and may.
        workers = self.ctx.workers.get("root")
        return await (workers.run(fn, *args) if workers is not None else asyncio.to_thread(fn, *args))

    # -- events -------------------------------------------------------------------

    def _opened(self, page: Any) -> None:
        self.pages.append(page)
        self.ids[page] = IdMap()
        if len(self.pages) > 1:
            self.popups.append(page)
        navigations = self.navigations[page] = Navigations()
        page.on("framenavigated", lambda frame: frame == page.main_frame and self._committed(page))
        page.on("requestfailed", lambda r: r.is_navigation_request() and r.frame == page.main_frame and navigations.ended())
        page.on("close", lambda _: self._closed(page))

    def _committed(self, page: Any) -> None:
        self.ids[page].clear()
        self.navigations[page].ended()

    def _closed(self, page: Any) -> None:
        if page in self.pages:
            index = self.pages.index(page)
            self.pages.remove(page)
            if self.current >= index and self.current > 0:
                self.current -= 1
        self.cdp.pop(page, None)
        self.ids.pop(page, None)
        self.navigations.pop(page, None)

    async def _route(self, route: Any, request: Any) -> None:
        parts = urlsplit(request.url)
        site = self.sites.get(f"{parts.scheme}://{parts.netloc}")
        if site is None:
            await route.abort("blockedbyclient")
            return
        try:
            answer: Response = site.handle(request.method, request.url, request.post_data_buffer)
        except Exception as exc:  # noqa: BLE001 - a bug of the site must not leave the browser waiting
            answer = Response(500, f"the sandbox's site failed: {type(exc).__name__}: {exc}".encode(), "text/plain")
        headers = {"Content-Type": answer.content_type, "Cache-Control": "no-store"}
        await route.fulfill(status=answer.status, headers=headers, body=answer.body)

    async def _episode_end(self, source: dict, result: dict) -> None:
        frame = source.get("frame")
        if self.miniwob is not None or source.get("page") is not self.miniwob_page or frame is not self.miniwob_page.main_frame:
            return
        if not frame.url.startswith(MINIWOB_ORIGIN + "/"):
            return
        self.miniwob = MiniwobResult(float(result["reward"]), float(result["raw"]), result.get("reason"))

    # -- helpers ------------------------------------------------------------------

    async def _ready(self) -> Any:
        if self.crashed or self.browser is None:
            await self._shutdown()
            self.crashed = False
            await self.start()
            raise AgentError("the browser had exited (it was closed or killed); a new one was started, and the pages are lost")
        if not self.pages:
            await self.context.new_page()
        self.current = min(self.current, len(self.pages) - 1)
        return self.pages[self.current]

    def _new_id(self) -> int:
        self.last_id += 1
        return self.last_id

    async def _session(self, page: Any) -> Any:
        session = self.cdp.get(page)
        if session is None:
            session = self.cdp[page] = await self.context.new_cdp_session(page)
            # Sent by the browser as soon as the page asks to navigate (a link, a form), before the
            # network: the one signal that reliably precedes the end of the action that caused it.
            navigations = self.navigations[page]
            main = (await session.send("Page.getFrameTree"))["frameTree"]["frame"]["id"]
            session.on("Page.frameRequestedNavigation", lambda event: event.get("frameId") == main and navigations.began())
            await session.send("Page.enable")
        return session

    def _allowed(self, url: str) -> str:
        if url == "about:blank":
            return url
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if parts.scheme not in ("http", "https") or origin not in self.sites:
            known = ", ".join(sorted(self.sites)) or "none"
            raise AgentError(f"cannot open {url!r}: this browser has no network; it opens only the sandbox's own sites ({known})")
        return url

    async def _element(self, page: Any, element: Any) -> int:
        if not isinstance(element, int) or isinstance(element, bool):
            raise Refused("'id' must be an integer", "bad_request")
        node = self.ids.get(page, IdMap()).by_id.get(element)
        if node is not None:
            return node
        for index, other in enumerate(self.pages):
            if other is not page and element in self.ids.get(other, IdMap()).by_id:
                raise AgentError(f"element [{element}] is in tab {index}; switch_tab({index}) first")
        raise AgentError(f"there is no element [{element}] on this page (ids shown for an earlier page are gone)")

    async def _point(self, page: Any, element: int) -> tuple[float, float]:
        node = await self._element(page, element)
        session = await self._session(page)
        try:
            await session.send("DOM.scrollIntoViewIfNeeded", {"backendNodeId": node})
            quads = (await session.send("DOM.getContentQuads", {"backendNodeId": node}))["quads"]
        except Exception as exc:  # noqa: BLE001 - a Playwright protocol error: the node went away
            raise AgentError(f"element [{element}] is no longer on the page ({_short(exc)})") from None
        if not quads:
            raise AgentError(f"element [{element}] is not visible (it has no box on the page)")
        quad = quads[0]
        return sum(quad[0::2]) / 4, sum(quad[1::2]) / 4

    async def _call_on(self, page: Any, element: int, function: str, *args: Any) -> Any:
        node = await self._element(page, element)
        session = await self._session(page)
        try:
            target = await session.send("DOM.resolveNode", {"backendNodeId": node})
            result = await session.send(
                "Runtime.callFunctionOn",
                {"objectId": target["object"]["objectId"], "functionDeclaration": function,
                 "arguments": [{"value": a} for a in args], "returnByValue": True},
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a Playwright protocol error: the node went away
            raise AgentError(f"element [{element}] is no longer on the page ({_short(exc)})") from None
        return result.get("result", {}).get("value")

    async def _settled(self, page: Any, before: tuple[int, int]) -> None:
        """After an action: a page it started loading is waited for (its DOM, not every image)."""
        session = await self._session(page)
        await session.send("Runtime.evaluate", {"expression": "0"})  # the renderer has run the action's tasks
        navigations = self.navigations.get(page)
        if navigations is None or navigations.count()[0] == before[0]:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ACTION_TIMEOUT_S):
                while navigations.count()[1] == before[1]:  # committed, or failed
                    navigations.changed.clear()
                    await navigations.changed.wait()
        with contextlib.suppress(Exception):
            await page.wait_for_load_state("domcontentloaded", timeout=ACTION_TIMEOUT_S * 1000)

    async def _observe(self, page: Any, *, screenshot: bool = False) -> dict[str, Any]:
        session = await self._session(page)
        nodes = (await session.send("Accessibility.getFullAXTree"))["nodes"]
        snapshot = await session.send("DOMSnapshot.captureSnapshot", {"computedStyles": []})
        descriptions, collapsed = read_snapshot(snapshot, needs_description(nodes))
        rendered = render(
            nodes, self.ids.setdefault(page, IdMap()), self._new_id,
            descriptions=descriptions, collapsed=collapsed, max_chars=self.max_chars,
        )  # fmt: skip
        titles = await asyncio.gather(*(_title(p) for p in self.pages))
        observation: dict[str, Any] = {
            "url": page.url,
            "title": titles[self.pages.index(page)] if page in self.pages else "",
            "tabs": [{"title": t, "url": p.url} for t, p in zip(titles, self.pages)],
            "tab": self.current,
            "tree": rendered.text,
            "truncated": rendered.truncated,
            "task_done": self.miniwob is not None or any(getattr(s, "done", False) for s in self.sites.values()),
        }
        if self.popups:
            observation["opened_tabs"] = [self.pages.index(p) for p in self.popups if p in self.pages]
            self.popups.clear()
        if screenshot:
            png = await page.screenshot(type="png", timeout=ACTION_TIMEOUT_S * 1000)
            observation["screenshot_b64"] = base64.b64encode(png).decode("ascii")
        return observation

    async def _act(self, action: Any, *, screenshot: bool = False) -> dict[str, Any]:
        """Run ``action(page)`` and answer with the observation after it; the agent's errors are answers."""
        async with self.lock:
            error = None
            try:
                page = await self._ready()
                await self._session(page)  # listening for navigations before the action
                before = self.navigations[page].count()
                async with asyncio.timeout(ACTION_TIMEOUT_S + 5):
                    await action(page)
                    await self._settled(page, before)
                    if self.popups:  # the page opened a tab: a browser shows it, and so do we
                        self.current = self.pages.index(self.popups[-1])
            except AgentError as exc:
                error = str(exc)
            except TimeoutError:
                error = f"the action did not finish within {ACTION_TIMEOUT_S:g}s"
            except Exception as exc:  # noqa: BLE001 - Playwright's errors: what the page did is the agent's business
                if not type(exc).__module__.startswith("playwright"):
                    raise
                error = _short(exc)
            if self.crashed or not self.pages:
                try:
                    await self._ready()
                except AgentError as exc:
                    error = str(exc)
            observation = await self._observe(self.pages[self.current], screenshot=screenshot)
            return {"ok": error is None, **({"error": error} if error else {}), **observation}

    # -- the agent's operations -----------------------------------------------------

    async def op_observe(self, screenshot: bool = False) -> dict:
        return await self._act(_nothing, screenshot=bool(screenshot))

    async def op_goto(self, url: str, screenshot: bool = False) -> dict:
        if not isinstance(url, str):
            raise Refused("'url' must be a string", "bad_request")

        async def go(page: Any) -> None:
            await _navigate(page, self._allowed(url))

        return await self._act(go, screenshot=screenshot)

    async def op_click(self, id: int, screenshot: bool = False) -> dict:  # noqa: A002 - the tool's own word
        async def click(page: Any) -> None:
            x, y = await self._point(page, id)
            await page.mouse.click(x, y)

        return await self._act(click, screenshot=screenshot)

    async def op_hover(self, id: int, screenshot: bool = False) -> dict:  # noqa: A002
        async def hover(page: Any) -> None:
            x, y = await self._point(page, id)
            await page.mouse.move(x, y)

        return await self._act(hover, screenshot=screenshot)

    async def op_type(self, id: int, text: str, submit: bool = False, screenshot: bool = False) -> dict:  # noqa: A002
        if not isinstance(text, str):
            raise Refused("'text' must be a string", "bad_request")

        async def type_(page: Any) -> None:
            node = await self._element(page, id)
            session = await self._session(page)
            try:
                await session.send("DOM.focus", {"backendNodeId": node})
            except Exception as exc:  # noqa: BLE001 - not focusable, or gone
                raise AgentError(f"cannot type into element [{id}]: {_short(exc)}") from None
            await page.keyboard.press("Control+A")  # what is typed replaces what was there
            await page.keyboard.press("Delete")
            await page.keyboard.type(text)
            if submit:
                await page.keyboard.press("Enter")

        return await self._act(type_, screenshot=screenshot)

    async def op_select_option(self, id: int, option: str, screenshot: bool = False) -> dict:  # noqa: A002
        if not isinstance(option, str):
            raise Refused("'option' must be a string", "bad_request")

        async def select(page: Any) -> None:
            result = await self._call_on(page, id, _SELECT, option)
            if not isinstance(result, dict) or "error" in (result or {}):
                why = (result or {}).get("error", "the page did not answer") if isinstance(result, dict) else "the page did not answer"
                raise AgentError(f"cannot select in element [{id}]: {why}")

        return await self._act(select, screenshot=screenshot)

    async def op_press(self, key: str, screenshot: bool = False) -> dict:
        if not isinstance(key, str) or not key:
            raise Refused("'key' must be a key name such as Enter, Tab, ArrowDown or Control+a", "bad_request")

        async def press(page: Any) -> None:
            await page.keyboard.press(key)

        return await self._act(press, screenshot=screenshot)

    async def op_scroll(self, direction: str = "down", id: int | None = None, screenshot: bool = False) -> dict:  # noqa: A002
        steps = {"down": (0, 1), "up": (0, -1), "right": (1, 0), "left": (-1, 0)}
        if direction not in steps:
            raise Refused("'direction' must be one of up, down, left, right", "bad_request")

        async def scroll(page: Any) -> None:
            if id is None:
                x, y = self.viewport["width"] / 2, self.viewport["height"] / 2
            else:
                x, y = await self._point(page, id)
            dx, dy = steps[direction]
            await page.mouse.move(x, y)
            await page.mouse.wheel(dx * self.viewport["width"] * 0.8, dy * self.viewport["height"] * 0.8)
            await page.evaluate("() => new Promise((done) => requestAnimationFrame(() => done()))")

        return await self._act(scroll, screenshot=screenshot)

    async def op_go_back(self, screenshot: bool = False) -> dict:
        async def back(page: Any) -> None:
            if await page.go_back(wait_until="domcontentloaded") is None and page.url in ("", "about:blank"):
                raise AgentError("there is no earlier page in this tab")

        return await self._act(back, screenshot=screenshot)

    async def op_new_tab(self, url: str | None = None, screenshot: bool = False) -> dict:
        if url is not None and not isinstance(url, str):
            raise Refused("'url' must be a string", "bad_request")

        async def new_tab(page: Any) -> None:
            target = self._allowed(url) if url else None
            fresh = await self.context.new_page()
            self.popups = [p for p in self.popups if p is not fresh]
            self.current = self.pages.index(fresh)
            if target:
                await _navigate(fresh, target)

        return await self._act(new_tab, screenshot=screenshot)

    async def op_switch_tab(self, index: int, screenshot: bool = False) -> dict:
        if not isinstance(index, int) or isinstance(index, bool):
            raise Refused("'index' must be an integer", "bad_request")

        async def switch(page: Any) -> None:
            if not 0 <= index < len(self.pages):
                raise AgentError(f"there is no tab {index}; the tabs are 0 to {len(self.pages) - 1}")
            self.current = index
            await self.pages[index].bring_to_front()

        return await self._act(switch, screenshot=screenshot)

    # -- the env's operations -------------------------------------------------------

    async def op_configure(self, viewport: dict | None = None, max_chars: int | None = None) -> dict:
        if viewport is not None:
            width, height = int(viewport["width"]), int(viewport["height"])
            if not (100 <= width <= 4000 and 100 <= height <= 4000):
                raise Refused("the viewport must be 100 to 4000 pixels each way", "bad_request")
            self.viewport = {"width": width, "height": height}
            async with self.lock:
                for page in self.pages:
                    await page.set_viewport_size(self.viewport)
        if max_chars is not None:
            self.max_chars = max(1000, int(max_chars))
        return {"viewport": self.viewport, "max_chars": self.max_chars}

    async def op_open_miniwob(self, task: str, seed: int) -> dict:
        """Open MiniWoB++ task ``task`` in the first tab, its instance drawn from ``seed``."""
        if not isinstance(task, str) or not task.replace("-", "").replace("_", "").isalnum():
            raise Refused(f"bad MiniWoB++ task name {task!r}", "bad_request")
        root = _miniwob_pages()
        if not os.path.isfile(os.path.join(root, "miniwob", f"{task}.html")):
            raise Refused(f"the miniwob package in this image has no task {task!r}", "bad_request")
        self.sites[MINIWOB_ORIGIN] = StaticSite(root)
        async with self.lock, _setup(f"MiniWoB++ task {task}"):
            page = await self._ready()
            self.miniwob, self.miniwob_page = None, page
            await page.goto(f"{MINIWOB_ORIGIN}/miniwob/{task}.html", wait_until="load", timeout=SETUP_TIMEOUT_S * 1000)
            await page.evaluate(_MINIWOB_SETUP, [int(seed), MINIWOB_MAX_TIME_MS])
            await page.wait_for_function("() => WOB_TASK_READY === true", timeout=SETUP_TIMEOUT_S * 1000)
            utterance = await page.evaluate("() => core.getUtterance()")
        return {"utterance": utterance, "url": page.url}

    async def op_miniwob_result(self) -> dict:
        result = self.miniwob
        if result is None:
            return {"done": False}
        return {"done": True, "reward": result.reward, "raw_reward": result.raw, "reason": result.reason}

    async def op_open_site(self, spec: dict, path: str = "/") -> dict:
        """Serve the WebTasks site ``spec`` at its origin and open ``path`` of it in the first tab."""
        origin = spec.get("origin") if isinstance(spec, dict) else None
        if not isinstance(origin, str) or urlsplit(origin).scheme != "http" or origin == MINIWOB_ORIGIN:
            raise Refused("the site spec needs an http origin of its own", "bad_request")
        self.sites[origin] = WebShop(spec) if spec.get("kind") == "webshop" else ShopSite(spec)
        async with self.lock, _setup(f"the site {origin}"):
            page = await self._ready()
            await page.goto(origin + path, wait_until="domcontentloaded", timeout=SETUP_TIMEOUT_S * 1000)
        return {"url": page.url}

    async def op_site_state(self, origin: str) -> dict:
        site = self.sites.get(origin)
        if not isinstance(site, (ShopSite, WebShop)):
            raise Refused(f"no site is served at {origin!r}", "bad_request")
        return site.state()


@contextlib.asynccontextmanager
async def _setup(what: str):
    """The env's setup of a page: what fails there is not the agent's (it has not acted yet)."""
    try:
        yield
    except AgentError as exc:  # the browser had to be restarted
        raise Unavailable(f"opening {what}: {exc}") from None
    except Exception as exc:
        if not type(exc).__module__.startswith("playwright"):
            raise
        if type(exc).__name__ == "TimeoutError":  # a machine too slow: the infrastructure's, retried
            raise TimeoutError(f"opening {what} took more than {SETUP_TIMEOUT_S:g}s: {_short(exc)}") from None
        raise Unavailable(f"opening {what} failed: {_short(exc)}") from None


async def _nothing(page: Any) -> None:
    return None


async def _navigate(page: Any, url: str) -> None:
    try:
        await page.goto(url, wait_until="domcontentloaded")
    except Exception as exc:  # noqa: BLE001 - a page that does not load is the agent's observation
        if type(exc).__module__.startswith("playwright"):
            raise AgentError(f"the page did not load: {_short(exc)}") from None
        raise


async def _title(page: Any) -> str:
    try:
        return await page.title()
    except Exception:  # noqa: BLE001 - a tab that is navigating or crashed has no title to tell
        return ""


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _miniwob_pages() -> str:
    spec = importlib.util.find_spec("miniwob")
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable("the miniwob package (its task pages) is not installed in this image")
    return os.path.join(list(spec.submodule_search_locations)[0], "html")
