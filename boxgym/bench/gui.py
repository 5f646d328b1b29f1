"""The GUI action's latency against pyautogui in a plain process, in the same run (``bench sandbox --gui``).

``gui_action``: one ``click`` through :class:`~boxgym.toolsets.gui.GuiToolset` (the host's call,
the tool server, the agent's pyautogui worker) and the new screenshot back as a PNG, sequentially,
on the desktop image with a small Tk app open (with the split: the click in the worker, the
screenshot in the server; the rest is the calls between them). ``gui_baseline``: the same ``pyautogui.click`` and
a ``PIL.ImageGrab.grab`` of the same display, in a plain Python process in the same container,
timed inside that process (its start-up not counted). Both with ``pyautogui.PAUSE = 0``: the pause
after each call is a policy of the env (0.1 s by default), not a cost of either path. The two
alternate in rounds, so that a noisy neighbour weighs on both. Target: action p50 <= 1.5 x
baseline p50 + 5 ms.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

__all__ = ["measure_gui"]

_APP = {
    "title": "Bench",
    "window": [1280, 800],
    "widgets": [{"type": "button", "id": "go", "text": "Go", "x": 100, "y": 100, "w": 160, "h": 40}],
}
_BASELINE = r"""
import json, os, sys, time
import pyautogui
from PIL import ImageGrab
pyautogui.FAILSAFE = False
pyautogui.PAUSE = 0
display = os.environ["DISPLAY"]
times = []
for _ in range(int(sys.argv[1])):
    t = time.perf_counter()
    pyautogui.click(180, 120)
    ImageGrab.grab(xdisplay=display)
    times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


async def measure_gui(engine: Any, run: Any, image: str, actions: int, rounds: int, say) -> dict[str, Any]:
    from boxgym.sandboxes import SandboxSpec
    from boxgym.sandboxes.docker import DockerSandbox
    from boxgym.toolsets.calls import ToolCall
    from boxgym.toolsets.gui import GuiToolset

    toolset = GuiToolset(pause=0.0)
    click = ToolCall("bench", "click", {"x": 180, "y": 120})
    async with await DockerSandbox.create(SandboxSpec(image=image), engine=engine, run=run) as sb:
        t = time.perf_counter()
        await sb.call("gui.open_app", {"spec": _APP, "screen": [1280, 800]}, timeout=60)
        started = time.perf_counter() - t
        display = (await sb.call("gui.info"))["display"]
        for _ in range(20):  # the worker started, the caches warm
            await toolset.run(click, sb)
        ours: list[float] = []
        theirs: list[float] = []
        code: list[float] = []  # of ours: the click in the worker, and the screenshot in the server
        shots: list[float] = []
        per_round = max(actions // rounds, 1)
        for index in range(rounds):
            say(f"gui: round {index + 1}/{rounds}, {per_round} clicks + screenshots each way")
            for _ in range(per_round):
                t = time.perf_counter()
                result = await toolset.run(click, sb)
                ours.append(time.perf_counter() - t)
                assert result.ok and result.images, result.content
                code.append(result.detail["action_s"])
                shots.append(result.detail["screenshot_s"])
            done = await sb.exec(["python3", "-c", _BASELINE, str(per_round)], env={"DISPLAY": display}, timeout=600)
            if done.exit_code != 0:
                raise RuntimeError(f"the baseline process failed: {done.stderr[-500:]}")
            theirs.extend(json.loads(done.stdout))
        png = len(result.images[0].data)
    action, baseline = _ms(ours, 0.5), _ms(theirs, 0.5)
    return {
        "gui_action_p50_ms": action,
        "gui_action_p99_ms": _ms(ours, 0.99),
        "gui_baseline_p50_ms": baseline,
        "gui_baseline_p99_ms": _ms(theirs, 0.99),
        "gui_target_ms": round(1.5 * baseline + 5, 2),
        "gui_within_target": action <= 1.5 * baseline + 5,
        "gui_action_mean_ms": round(statistics.fmean(ours) * 1000, 2),
        "gui_action_click_p50_ms": _ms(code, 0.5),
        "gui_action_screenshot_p50_ms": _ms(shots, 0.5),
        "gui_png_bytes": png,
        "gui_display_start_ms": round(started * 1000, 1),
        "gui_actions": len(ours),
    }
