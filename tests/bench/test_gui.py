"""``bench sandbox --gui``: the GUI action and its baseline are measured side by side (a few actions)."""

from __future__ import annotations

import pytest

from boxgym.bench.gui import measure_gui
from boxgym.sandboxes.docker import resolve_image_ref
from boxgym.sandboxes.engine import DockerEngine
from boxgym.sandboxes.ownership import current_run

pytestmark = [pytest.mark.docker, pytest.mark.display]


async def test_the_gui_figures_come_with_their_same_run_baseline():
    said = []
    async with DockerEngine() as engine:
        result = await measure_gui(engine, current_run(), await resolve_image_ref("desktop"), 8, 2, said.append)
    assert result["gui_actions"] == 8 and len(said) == 2
    assert 0 < result["gui_action_p50_ms"] <= result["gui_action_p99_ms"]
    assert 0 < result["gui_baseline_p50_ms"] <= result["gui_baseline_p99_ms"]
    assert result["gui_target_ms"] == round(1.5 * result["gui_baseline_p50_ms"] + 5, 2)
    assert result["gui_png_bytes"] > 1000
