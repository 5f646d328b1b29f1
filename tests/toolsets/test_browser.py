"""The browser toolset against the real plugin and a real Chromium (Debian's, on the host).

The fake sandbox runs the tool server's ``ops_browser`` in this process: every tool, what the
agent reads when it gets something wrong, and that closing leaves no browser behind.
"""

from __future__ import annotations

import os

import pytest

from boxgym.envs.suites.webtasks import ORIGIN, site
from boxgym.sandboxes import FakeSandbox
from boxgym.toolsets import BrowserToolset, ToolCall, compose
from boxgym.toolsets.browser import page_elements

pytestmark = [pytest.mark.browser]


def call(name, **arguments):
    return ToolCall(f"c_{name}", name, arguments)


def find(text, role, name):
    return next(e for e in page_elements(text) if e.role == role and e.name == name)


@pytest.fixture
async def shop():
    sandbox = FakeSandbox()
    await sandbox.call("browser.open_site", {"spec": site(3, 2), "path": "/"}, timeout=60)
    try:
        yield sandbox
    finally:
        await sandbox.aclose()


async def test_every_action_answers_with_the_page_and_ids_stay_stable(shop):
    tools = BrowserToolset()
    home = await tools.run(call("screenshot"), shop)
    assert home.ok and home.content.startswith(f"URL: {ORIGIN}/\nTitle: Welcome - ")
    assert len(home.images) == 1 and home.images[0].data.startswith(b"\x89PNG")
    products = find(home.content, "link", "Products")
    again = await tools.run(call("hover", id=products.id), shop)
    assert find(again.content, "link", "Products").id == products.id  # the same element, the same id
    listing = await tools.run(call("click", id=products.id), shop)
    assert listing.ok and "/products" in listing.detail["url"] and "Page 1 of" in listing.content
    assert not listing.images  # screenshots only on request by default
    nxt = find(listing.content, "link", "Page 2")
    second = await tools.run(call("click", id=f"[{nxt.id}]"), shop)  # models write ids as "[12]" too
    assert "Page 2 of" in second.content
    back = await tools.run(call("go_back"), shop)
    assert "Page 1 of" in back.content
    scrolled = await tools.run(call("scroll", direction="down"), shop)
    assert scrolled.ok


async def test_forms_type_select_and_submit_reach_the_site_record(shop):
    tools = BrowserToolset()
    page = (await tools.run(call("goto", url=f"{ORIGIN}/contact"), shop)).content
    page = (await tools.run(call("type", id=find(page, "textbox", "Your name").id, text="Ada"), shop)).content
    page = (await tools.run(call("type", id=find(page, "textbox", "Your name").id, text="Ada Park"), shop)).content
    assert find(page, "textbox", "Your name").value == "Ada Park"  # typing replaces
    bad = await tools.run(call("select_option", id=find(page, "combobox", "Topic").id, option="Nope"), shop)
    assert not bad.ok and "has no option" in bad.content and '"Returns"' in bad.content
    page = (await tools.run(call("select_option", id=find(page, "combobox", "Topic").id, option="Returns"), shop)).content
    page = (await tools.run(call("press", key="Tab"), shop)).content
    sent = await tools.run(call("type", id=find(page, "textbox", "Email").id, text="ada@x.test", submit=True), shop)
    assert "Message sent" in sent.content
    state = await shop.call("browser.site_state", {"origin": ORIGIN})
    assert state["messages"] == [{"name": "Ada Park", "email": "ada@x.test", "topic": "Returns", "message": "", "subscribe": False}]


async def test_what_the_agent_gets_wrong_is_an_observation_with_the_page(shop):
    tools = BrowserToolset()
    missing = await tools.run(call("click", id=99999), shop)
    assert not missing.ok and missing.content.startswith("error: there is no element [99999]")
    assert "URL: " in missing.content  # the page is still shown
    for url in ("javascript:window.x=1", "file:///etc/passwd", "http://127.0.0.1:8000/", "data:text/html,hi"):
        refused = await tools.run(call("goto", url=url), shop)
        assert not refused.ok and "no network" in refused.content, url
    malformed = await tools.run(call("click", id="twelve"), shop)
    assert not malformed.ok and "must be an integer" in malformed.content
    unknown = await tools.run(call("reload"), shop)
    assert not unknown.ok and "unknown tool" in unknown.content
    wrong_key = await tools.run(call("press", key="NoSuchKey"), shop)
    assert not wrong_key.ok and wrong_key.content.startswith("error:")
    no_tab = await tools.run(call("switch_tab", index=3), shop)
    assert not no_tab.ok and "there is no tab 3" in no_tab.content


async def test_tabs_open_switch_and_keep_their_own_ids(shop):
    tools = BrowserToolset(screenshots="always")
    first = await tools.run(call("switch_tab", index=0), shop)
    assert len(first.images) == 1  # "always": every observation has its screenshot
    home_link = find(first.content, "link", "Staff")
    opened = await tools.run(call("new_tab", url=f"{ORIGIN}/staff"), shop)
    assert "Tabs: [0]" in opened.content and "(current)" in opened.content and "/staff" in opened.detail["url"]
    elsewhere = await tools.run(call("click", id=home_link.id), shop)
    assert not elsewhere.ok and "is in tab 0; switch_tab(0) first" in elsewhere.content
    back = await tools.run(call("switch_tab", index=0), shop)
    assert back.ok and back.detail["url"] == f"{ORIGIN}/"


async def test_answer_ends_the_episode_and_composes_with_other_toolsets(shop):
    from boxgym.toolsets import ShellToolset

    tools = compose(ShellToolset(), BrowserToolset())
    result = await tools.run(call("answer", text="42"), shop)
    assert result.submitted and result.submission == "42"
    names = [s["function"]["name"] for s in tools.schemas()]
    assert "bash" in names and "click" in names and "answer" in names


async def test_a_long_page_is_cut_with_a_marker():
    sandbox = FakeSandbox()
    try:
        spec = site(5, 3) | {"page_size": 500}
        await sandbox.call("browser.open_site", {"spec": spec, "path": "/products"}, timeout=60)
        await sandbox.call("browser.configure", {"max_chars": 1500})  # what start_episode does with max_chars
        result = await BrowserToolset(max_chars=1500).run(call("scroll", direction="down"), sandbox)
        assert result.detail["truncated"] and "[... boxgym: page truncated," in result.content
        assert len(result.content) < 3000
    finally:
        await sandbox.aclose()


def _pids_with(marker: str) -> set[int]:
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if marker.encode() in fh.read():
                        pids.add(int(entry))
            except OSError:
                pass
    return pids


async def test_closing_the_sandbox_stops_the_browser_and_leaves_no_process():
    sandbox = FakeSandbox()
    await sandbox.call("browser.open_site", {"spec": site(1, 0), "path": "/"}, timeout=60)
    plugin = sandbox._plugins._loaded["browser"].instance  # the test looks inside: which processes are its own
    chromium = plugin.chromium
    ours = _pids_with(chromium.profile)
    assert chromium.pid in ours and len(ours) > 2  # the browser, its zygotes, renderers...
    await sandbox.aclose()
    assert not _pids_with(chromium.profile) and not os.path.exists(chromium.profile)
    assert not os.path.exists(chromium.workdir) and plugin.chromium is None
