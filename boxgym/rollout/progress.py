"""A one-line progress display, redrawn in place on a terminal; nothing otherwise.

No dependency: a carriage return and the line. Redrawn by a loop callback a
few times a second, so it costs nothing per step.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

from .metrics import RolloutMetrics

__all__ = ["ProgressLine"]


class ProgressLine:
    def __init__(self, metrics: RolloutMetrics, stream: TextIO, interval: float) -> None:
        self._metrics = metrics
        self._stream = stream
        self._interval = interval
        self._started = time.monotonic()
        self._handle: asyncio.TimerHandle | None = None
        self._width = 0

    @classmethod
    def start(
        cls, metrics: RolloutMetrics, *, enabled: bool | None, stream: TextIO | None = None, interval: float = 0.25
    ) -> ProgressLine:
        """``enabled=None``: on only when the stream is a terminal."""
        stream = stream or sys.stderr
        line = cls(metrics, stream, interval)
        if enabled is None:
            enabled = bool(getattr(stream, "isatty", lambda: False)())
        if enabled:
            line._schedule()
        return line

    def _schedule(self) -> None:
        self._handle = asyncio.get_running_loop().call_later(self._interval, self._tick)

    def _tick(self) -> None:
        self.draw()
        self._schedule()

    def render(self) -> str:
        m = self._metrics
        elapsed = time.monotonic() - self._started
        reward = "-" if m.mean_reward is None else f"{m.mean_reward:.3f}"
        return (
            f"episodes {m.done} done, {m.running} running, {m.failed} failed"
            f" | steps {m.steps} ({m.steps / elapsed if elapsed > 0 else 0:,.0f}/s)"
            f" | tokens {m.tokens:,} | reward {reward} | {elapsed:,.0f}s"
        )

    def draw(self) -> None:
        text = self.render()
        pad = max(0, self._width - len(text))
        self._width = len(text)
        self._stream.write("\r" + text + " " * pad)
        self._stream.flush()

    def stop(self) -> None:
        if self._handle is None:
            return
        self._handle.cancel()
        self._handle = None
        self.draw()
        self._stream.write("\n")
        self._stream.flush()
