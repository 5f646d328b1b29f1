"""The browser toolset: a real Chromium in the sandbox, read as its accessibility tree.

Tools (BrowserGym's and WebArena's action space, by element id):

================  ==================================================================
``goto``          open a URL (the sandbox's own sites only: there is no network)
``click``         click an element by its id
``type``          replace an input's text (``submit``: press Enter after it)
``select_option`` choose an option of a drop-down list, by its value or label
``hover``         move the mouse over an element
``press``         press a key or a combination (Enter, Tab, ArrowDown, Control+a)
``scroll``        scroll the page, or the element under an id, up/down/left/right
``go_back``       the previous page of this tab
``new_tab``       open a tab (optionally at a URL); ``switch_tab`` to another by index
``screenshot``    the page as a PNG image (every observation has one with ``screenshots="always"``)
``answer``        end the episode with an answer
================  ==================================================================

Every action answers with the page as it is afterwards: its URL, title and tabs, and the
pruned accessibility tree in which every element has a stable ``[id]``
(:mod:`boxgym.sandboxes.toolserver.browser_tree` says how it is pruned and cut). What does not
work (an id that is not on the page, a page that does not load, an action that times out) is
an observation that starts with ``error:`` and still shows the page. The browser, the pages it
may open and the way they are served are the tool server's (``ops_browser``, docs/browser.md).

An env that opens a page before the agent's first step gives a ``setup`` (MiniWoB++ opens its
task, WebTasks its site): :meth:`BrowserToolset.start_episode` runs it and shows the first page in
the first user message. A page whose own task ended (MiniWoB++'s done flag) ends the episode.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import (
    SandboxBroken,
    SandboxClosed,
    SandboxError,
    SandboxWrecked,
    ToolCallError,
    ToolServerError,
    ToolUnavailable,
)
from ..sandboxes.base import Sandbox
from ..trajectories.images import Image
from ..trajectories.records import EndReason
from .base import Opening, ToolResult, cap_text, checked_arguments, function_schema, schema_params
from .calls import ToolCall

if TYPE_CHECKING:
    from ..envs.tasks import Task

__all__ = ["BROWSER_TOOLS", "BrowserToolset", "Element", "Setup", "format_page", "page_elements"]

#: Opens what a task needs (``sandbox.call("browser.open_...")``); returns the text that goes
#: before the page in the first user message (MiniWoB++'s utterance), or "".
Setup = Callable[[Sandbox, "Task"], Awaitable[str]]

_ID = {"type": "integer", "description": "the element's id, the number in [brackets] in the page"}
_STR = {"type": "string"}

BROWSER_TOOLS: tuple[dict[str, Any], ...] = (
    function_schema("goto", "Open a URL in the current tab.", {"url": _STR}, ["url"]),
    function_schema("click", "Click an element.", {"id": _ID}, ["id"]),
    function_schema(
        "type",
        "Type text into an input, replacing what it held. With submit=true, press Enter afterwards.",
        {"id": _ID, "text": _STR, "submit": {"type": "boolean"}},
        ["id", "text"],
    ),
    function_schema(
        "select_option",
        "Choose an option of a drop-down list (a combobox), by the option's value or its label.",
        {"id": _ID, "option": _STR},
        ["id", "option"],
    ),
    function_schema("hover", "Move the mouse over an element.", {"id": _ID}, ["id"]),
    function_schema(
        "press",
        "Press a key or a combination on the focused element: Enter, Tab, Escape, Backspace, ArrowDown, Control+a, ...",
        {"key": _STR},
        ["key"],
    ),
    function_schema(
        "scroll",
        "Scroll the page (or the element with the given id) by most of a screen.",
        {"direction": {"type": "string", "enum": ["up", "down", "left", "right"]}, "id": _ID},
        ["direction"],
    ),
    function_schema("go_back", "Go back to the previous page of the current tab.", {}, []),
    function_schema("new_tab", "Open a new tab, optionally at a URL, and make it the current tab.", {"url": _STR}, []),
    function_schema("switch_tab", "Make another tab the current one, by its index (0 is the first).", {"index": {"type": "integer"}}, ["index"]),
    function_schema("screenshot", "Take a screenshot of the current tab (a PNG image).", {}, []),
    function_schema("answer", "Finish the task, with your answer if the task asks a question.", {"text": _STR}, []),
)

_PARAMS = schema_params(BROWSER_TOOLS)
_DIRECTIONS = ("up", "down", "left", "right")


def _validate(call: ToolCall) -> dict[str, Any]:
    args = checked_arguments(call, _PARAMS)
    if call.name == "scroll" and args["direction"] not in _DIRECTIONS:
        raise ToolCallError(f"scroll: direction must be one of {', '.join(_DIRECTIONS)}")
    return args


def format_page(page: Mapping[str, Any]) -> str:
    """An observation of the ``browser.*`` operations as the agent reads it."""
    lines = [f"URL: {page.get('url', '')}", f"Title: {page.get('title', '')}"]
    tabs = page.get("tabs") or []
    if len(tabs) > 1:
        shown = [f"[{i}] {t.get('title') or t.get('url')}" + (" (current)" if i == page.get("tab") else "") for i, t in enumerate(tabs)]
        lines.append("Tabs: " + " | ".join(shown))
    opened = page.get("opened_tabs")
    if opened:
        lines.append(f"(the page opened tab {opened[-1]}; it is now the current tab)")
    lines.append("")
    lines.append(page.get("tree") or "(the page is empty)")
    if page.get("task_done"):
        lines.append("\n(The page says its task is over.)")
    return "\n".join(lines)


def _screenshot(page: Mapping[str, Any]) -> tuple[Image, ...]:
    data = page.get("screenshot_b64")
    return (Image(base64.b64decode(data)),) if isinstance(data, str) else ()


@dataclass(frozen=True, slots=True)
class BrowserToolset:
    """The browser tools over a sandbox whose image has the browser (``desktop``)."""

    screenshots: Literal["on_request", "always"] = "on_request"
    setup: Setup | None = None
    viewport: tuple[int, int] = (1280, 720)
    max_chars: int = 20_000  # of the page's tree per observation
    call_timeout: float = 60.0  # one action and its observation, host side

    def __post_init__(self) -> None:
        if self.screenshots not in ("on_request", "always"):
            raise ValueError("screenshots must be 'on_request' or 'always'")

    def schemas(self) -> list[dict[str, Any]]:
        return copy.deepcopy(list(BROWSER_TOOLS))

    async def start_episode(self, sandbox: Sandbox, task: Task) -> Opening | None:
        """Open the task's page (``setup``) and show it; without a setup the browser starts on first use."""
        if self.setup is None:
            return None
        width, height = self.viewport
        await sandbox.call("browser.configure", {"viewport": {"width": width, "height": height}, "max_chars": self.max_chars})
        intro = await self.setup(sandbox, task)
        page = await sandbox.call("browser.observe", {"screenshot": self.screenshots == "always"}, timeout=self.call_timeout)
        text = format_page(page)
        return Opening(f"{intro}\n\n{text}" if intro else text, _screenshot(page))

    async def run(self, call: ToolCall, sandbox: Sandbox, *, timeout: float | None = None) -> ToolResult:
        start = time.monotonic()
        images: tuple[Image, ...] = ()
        detail: dict[str, Any] = {}
        submitted, submission, ends_as = False, None, None
        try:
            args = _validate(call)
            if call.name == "answer":
                content, ok, submitted, submission = "answered", True, True, args.get("text", "")
            else:
                op = "observe" if call.name == "screenshot" else call.name
                args["screenshot"] = call.name == "screenshot" or self.screenshots == "always"
                limit = self.call_timeout if timeout is None else max(min(self.call_timeout, timeout), 1.0)
                page = await sandbox.call(f"browser.{op}", args, timeout=limit)
                ok = bool(page.get("ok", True))
                content = format_page(page)
                if not ok:
                    content = f"error: {page.get('error', 'the action failed')}\n\n{content}"
                images = _screenshot(page)
                detail = {"url": page.get("url"), "truncated": bool(page.get("truncated"))}
                if page.get("task_done"):
                    submitted, ends_as = True, EndReason.ENV_TERMINATED
        except ToolCallError as exc:
            content, ok = f"error: {exc}", False
        except (SandboxBroken, SandboxClosed, SandboxWrecked, ToolUnavailable, ToolServerError):
            raise  # the infrastructure's failure, the agent's wreck, or a bug of the plugin
        except SandboxError as exc:
            # Refused as asked (a bad argument), or no answer in time (a page that hangs the browser).
            content, ok = f"error: {exc}", False
            detail = {"error": type(exc).__name__, "reason": getattr(exc, "reason", None)}
        return ToolResult(
            call_id=call.id,
            name=call.name,
            content=cap_text(content, self.max_chars + 2000),
            ok=ok,
            submitted=submitted,
            ends_as=ends_as,
            submission=submission,
            duration_s=time.monotonic() - start,
            detail=detail,
            images=images,
        )


@dataclass(frozen=True, slots=True)
class Element:
    """One line of a page's tree (:func:`page_elements`), for scripted policies and tests."""

    id: int | None
    role: str
    name: str
    depth: int
    value: str = ""
    states: frozenset[str] = frozenset()  # "focused", "checked", "checked=false", "expanded=false", ...
    detail: str = ""  # what describes an unnamed graphic: "<circle> at (80,120)"
    url: str = ""  # a link's target


_LINE = re.compile(r'^(?P<indent> *)(?:\[(?P<id>\d+)\] )?(?P<role>\S+)(?: (?P<name>"(?:[^"\\]|\\.)*"))?(?P<rest>.*)$')
_QUOTED = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*")')
_DETAIL = re.compile(r"<[^>]+>(?: at \(-?\d+,-?\d+\))?")


def page_elements(text: str) -> list[Element]:
    """The tree lines of an observation as :class:`Element` records (the header is skipped)."""
    out = []
    lines = text.splitlines()
    # The tree follows the header (URL:, Title:, maybe Tabs:) and its blank line.
    title = next((i for i, line in enumerate(lines) if line.startswith("Title: ")), None)
    start = 0 if title is None else next((i + 1 for i in range(title, len(lines)) if lines[i] == ""), len(lines))
    for line in lines[start:]:
        match = _LINE.match(line)
        if match is None or line.startswith(("(", "[...")):
            continue
        rest = match["rest"]
        quoted = {key: json.loads(value) for key, value in _QUOTED.findall(rest)}
        detail = _DETAIL.search(rest)
        rest = _DETAIL.sub("", _QUOTED.sub("", rest))
        out.append(
            Element(
                int(match["id"]) if match["id"] else None,
                match["role"],
                json.loads(match["name"]) if match["name"] else "",
                len(match["indent"]) // 2,
                quoted.get("value", ""),
                frozenset(rest.split()),
                detail[0] if detail else "",
                quoted.get("url", ""),
            )
        )
    return out
