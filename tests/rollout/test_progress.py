"""The progress line: drawn in place on a terminal, absent otherwise."""

from __future__ import annotations

import asyncio
import io

from boxgym.rollout import InstantPolicy, NullEnv, RolloutManager, TaskRef
from boxgym.rollout.progress import ProgressLine


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_progress_line_redraws_in_place_and_ends_with_a_newline() -> None:
    async with RolloutManager(NullEnv.factory(3), InstantPolicy(), progress=False) as manager:
        stream = Tty()
        line = ProgressLine.start(manager.metrics, enabled=None, stream=stream, interval=0.001)
        await manager.collect([TaskRef(f"t{i}") for i in range(20)])
        await asyncio.sleep(0.01)
        line.stop()
    text = stream.getvalue()
    assert text.startswith("\r") and text.endswith("\n")
    assert "episodes 20 done, 0 running, 0 failed" in text.splitlines()[-1].split("\r")[-1]
    assert "steps 60" in text


async def test_no_progress_line_off_a_terminal() -> None:
    stream = io.StringIO()
    async with RolloutManager(NullEnv.factory(1), InstantPolicy()) as manager:
        line = ProgressLine.start(manager.metrics, enabled=None, stream=stream, interval=0.001)
        await manager.collect([TaskRef("t")])
        line.stop()
    assert stream.getvalue() == ""
