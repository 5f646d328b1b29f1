"""The gui plugin's children: lines read from their pipes, and the worker that runs the agent's code.

Everything a child writes is bounded here (a line's length, how many lines are kept), and the
worker's answers are checked for their shape (:func:`an_answer`): the worker runs the agent's code,
so what it says is the agent's, not the plugin's.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import subprocess
import time
from typing import Any

from . import procs

__all__ = ["Pipe", "Worker", "an_answer"]


class Pipe:
    """Lines from a child's pipe, read by the event loop (no thread). Bounded whatever the child
    writes: a line longer than ``limit`` is an overflow, and only the last ``keep`` lines are kept."""

    def __init__(self, fd: int, limit: int, keep: int = 64) -> None:
        self.fd, self.limit = fd, limit
        self.buffer = bytearray()
        self.lines: collections.deque[bytes] = collections.deque(maxlen=keep)
        self.eof = False
        self.overflow = False
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        self.buffer += data
        *lines, rest = self.buffer.split(b"\n")
        self.lines.extend(bytes(line) for line in lines)
        self.buffer = rest
        if len(self.buffer) > self.limit:
            self.overflow = True
            del self.buffer[: len(self.buffer) - self.limit]
        self._changed.set()

    async def line(self, deadline: float) -> bytes | None:
        """The next line, or None at end of file or past ``deadline`` (``time.monotonic()``)."""
        while not self.lines:
            if self.eof or self.overflow:
                return None
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(deadline - time.monotonic(), 0))
            except TimeoutError:
                return None
        return self.lines.popleft()

    def tail(self) -> str:
        return b"\n".join([*self.lines, bytes(self.buffer)]).decode("utf-8", "replace")[-2000:]

    def close(self) -> None:
        if self.fd >= 0:
            self._loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1
        self.eof = True
        self._changed.set()


class Worker:
    """The agent's code runner: one process, one request at a time."""

    def __init__(self, proc: subprocess.Popen, stdin: int, answers: Pipe, errors: Pipe) -> None:
        self.proc, self.stdin, self.answers, self.errors = proc, stdin, answers, errors

    async def ask(self, request: dict, timeout: float) -> tuple[Any, str | None]:
        """The worker's answer, or ``(None, why)`` when it gave none in time or died."""
        data = (json.dumps(request) + "\n").encode()
        self.answers.lines.clear()  # only an answer written after this request answers it
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        try:
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(self.stdin, view) :]
                except BlockingIOError:  # a full pipe: the worker is busy or stuck; wait for room
                    ready = loop.create_future()
                    loop.add_writer(self.stdin, ready.set_result, None)
                    try:
                        await asyncio.wait_for(ready, max(deadline - time.monotonic(), 0))
                    finally:
                        loop.remove_writer(self.stdin)
        except (BrokenPipeError, TimeoutError):
            pass  # the answer below says what happened
        line = await self.answers.line(deadline)
        if self.answers.overflow:
            return None, f"its process wrote a line longer than {self.answers.limit} bytes"
        if line is not None:
            try:
                return json.loads(line), None
            except ValueError:
                return None, "its process answered something that is not JSON"
        if self.proc.poll() is None and not self.answers.eof:
            return None, "timeout"
        await asyncio.sleep(0.05)  # let the exit status arrive
        status = self.proc.poll()
        why = f"killed by signal {-status}" if status is not None and status < 0 else f"exit status {status}"
        return None, f"its process ended ({why})"

    def kill(self) -> None:
        procs.kill_tree(self.proc.pid)
        self.proc.wait()
        for pipe in (self.answers, self.errors):
            pipe.close()
        if self.stdin >= 0:
            os.close(self.stdin)
            self.stdin = -1


def an_answer(answer: Any) -> bool:
    """The shape of the worker's answers: anything else means it is not the worker we started."""
    return (
        isinstance(answer, dict)
        and isinstance(answer.get("ok"), bool)
        and isinstance(answer.get("error"), (str, type(None)))
        and isinstance(answer.get("output", ""), str)
        and isinstance(answer.get("line"), (int, type(None)))
        and not isinstance(answer.get("line"), bool)
    )
