"""The supervisor of a gateway of several workers: it starts them, restarts one that dies,
carries what concerns them all, and stops them all on SIGTERM or Ctrl-C.

It serves no request. It holds the port (bound, not listening, so that ``--port 0`` names one
port for every worker and a port in use is reported before any worker starts), the private
directory of the hand-over sockets, the weight version (a worker started later gets the current
one), and one pipe per worker. A request to all (``("all", id, command, arg)`` from the worker
whose client asked) goes to every worker as ``("do", ...)``; the asking worker gets every answer
once all have answered, so ``PUT /weight_version`` returns only when every worker tags new
records with the new version.

A worker that exits before it is ready (its part of the store is in use by another gateway, the
port is taken) stops the gateway: that is a setting to fix, not a crash to retry. One that dies
later is started again with the same index; its store part is indexed again when it opens, so
its episodes' prefix checks, retries and reads go on where they were. Calls for its episodes
wait for it (up to ``HANDOFF_WAIT``) in the worker that received them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from ...errors import GatewayError
from ..config import GatewayConfig
from ..parts import check_layout
from .worker import listen_socket, run_worker

__all__ = ["serve_workers"]

log = logging.getLogger("boxgym.gateway")

#: a worker that dies this soon after it was ready, this many times in a row, is not restarted
_CRASH_WINDOW, _CRASH_LIMIT = 2.0, 5


@dataclass(slots=True)
class _Slot:
    """Worker ``index``: its current process and pipe."""

    index: int
    process: BaseProcess | None = None
    pipe: Connection | None = None
    ready_at: float | None = None
    pid: int | None = None
    restarts: int = 0
    quick_deaths: int = 0


@dataclass(slots=True)
class _Gathering:
    """A request to all workers, waiting for their answers."""

    asker: int
    ident: Any
    waiting: set[int]
    answers: dict[int, Any] = field(default_factory=dict)


def serve_workers(config: GatewayConfig) -> int:
    """Run ``config.server.workers`` gateway processes on one port until SIGTERM or SIGINT; the
    exit code (0 after a clean stop, 1 if the workers could not start)."""
    if not sys.platform.startswith("linux"):
        # SO_REUSEPORT spreads connections over the listeners only on Linux
        raise GatewayError("a gateway of several workers needs Linux: serve it with --workers 1")
    if config.store.path is not None:
        check_layout(config.store.path, config.server.workers)
    return asyncio.run(_Supervisor(config).run())


class _Supervisor:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.workers = config.server.workers
        self.weight_version = config.weight_version
        self.slots = [_Slot(i) for i in range(self.workers)]
        self.gatherings: dict[int, _Gathering] = {}
        self._ids = 0
        self.stopping = False
        self.failure: str | None = None
        self.finished = asyncio.Event()
        self.directory = ""
        self.port = config.port
        self._ctx = multiprocessing.get_context("spawn")

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        held = listen_socket(self.config.host, self.config.port, self.config.server.backlog, listen=False)
        self.port = held.getsockname()[1]
        self.directory = tempfile.mkdtemp(prefix="boxgym-gateway-")  # mode 0700
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        try:
            for slot in self.slots:
                self._start(slot)
            await self.finished.wait()
        finally:
            for slot in self.slots:
                self._release(slot)
            held.close()
            shutil.rmtree(self.directory, ignore_errors=True)
        if self.failure is not None:
            log.error("%s", self.failure)
            return 1
        return 0

    # -- processes -------------------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        mine, theirs = self._ctx.Pipe()
        config = replace(self.config, port=self.port, weight_version=self.weight_version)
        process = self._ctx.Process(
            target=run_worker,
            args=(config, slot.index, self.workers, self.directory, theirs),
            name=f"boxgym-gateway-{slot.index}",
        )
        process.start()
        theirs.close()
        slot.process, slot.pipe, slot.ready_at, slot.pid = process, mine, None, process.pid
        loop = asyncio.get_running_loop()
        loop.add_reader(process.sentinel, self._exited, slot)
        loop.add_reader(mine.fileno(), self._received, slot)

    def _release(self, slot: _Slot) -> None:
        loop = asyncio.get_running_loop()
        if slot.process is not None:
            loop.remove_reader(slot.process.sentinel)
            if slot.process.is_alive():
                slot.process.kill()
            slot.process.join(5)
            slot.process.close()
            slot.process = None
        if slot.pipe is not None:
            loop.remove_reader(slot.pipe.fileno())
            slot.pipe.close()
            slot.pipe = None

    def _exited(self, slot: _Slot) -> None:
        process = slot.process
        assert process is not None
        self._received(slot)  # its last words (why it could not start) may still be in the pipe
        process.join()
        code = process.exitcode
        was_ready = slot.ready_at
        self._release(slot)
        for index, gathering in list(self.gatherings.items()):
            gathering.waiting.discard(slot.index)
            if gathering.asker == slot.index:
                del self.gatherings[index]
            else:
                self._answer(index)
        if self.stopping:
            if all(s.process is None for s in self.slots):
                self.finished.set()
            return
        if was_ready is None:
            self._fail(self.failure or f"gateway worker {slot.index} exited with {code} before it was ready")
            return
        slot.quick_deaths = slot.quick_deaths + 1 if time.monotonic() - was_ready < _CRASH_WINDOW else 0
        if slot.quick_deaths >= _CRASH_LIMIT:
            self._fail(f"gateway worker {slot.index} died {_CRASH_LIMIT} times within {_CRASH_WINDOW} s of starting")
            return
        slot.restarts += 1
        log.warning("gateway worker %d (pid %s) exited with %s: starting it again", slot.index, slot.pid, code)
        self._start(slot)

    def _fail(self, why: str) -> None:
        self.failure = why
        self.stop()

    def stop(self) -> None:
        """SIGTERM every worker: each drains (``shutdown_grace``) and exits; then the supervisor does."""
        if self.stopping:
            return
        self.stopping = True
        live = [s for s in self.slots if s.process is not None]
        for slot in live:
            with contextlib.suppress(ProcessLookupError, ValueError):
                slot.process.terminate()  # type: ignore[union-attr]
        if not live:
            self.finished.set()
            return
        asyncio.get_running_loop().call_later(self.config.server.shutdown_grace + 15, self._kill_all)

    def _kill_all(self) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.is_alive():
                log.warning("gateway worker %d did not stop within its grace: killed", slot.index)
                slot.process.kill()

    # -- messages --------------------------------------------------------------

    def _received(self, slot: _Slot) -> None:
        pipe = slot.pipe
        try:
            while pipe is not None and pipe.poll():
                self._handle(slot, pipe.recv())
        except (EOFError, OSError):  # the worker is going: its exit is seen on its sentinel
            if slot.pipe is not None:
                asyncio.get_running_loop().remove_reader(slot.pipe.fileno())

    def _handle(self, slot: _Slot, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            slot.ready_at, slot.pid = time.monotonic(), message[2]
            if slot.restarts:
                log.warning("gateway worker %d is back (pid %s)", slot.index, slot.pid)
            elif all(s.ready_at is not None for s in self.slots):
                log.info(
                    "boxgym gateway: %d workers on http://%s:%d", self.workers, self.config.host, self.port
                )
        elif kind == "failed":
            self.failure = f"gateway worker {slot.index} could not start: {message[2]}"
        elif kind == "all":
            _, ident, command, arg = message
            if command == "weight_version":
                self.weight_version = arg  # a worker started from now on begins with it
            self._ids += 1
            gathering = self.gatherings[self._ids] = _Gathering(slot.index, ident, set())
            for other in self.slots:
                if other.pipe is not None and self._send(other, ("do", self._ids, command, arg)):
                    gathering.waiting.add(other.index)
            self._answer(self._ids)
        elif kind == "done":
            _, index, answer = message
            gathering = self.gatherings.get(index)
            if gathering is not None:
                gathering.answers[slot.index] = answer
                gathering.waiting.discard(slot.index)
                self._answer(index)

    def _answer(self, index: int) -> None:
        gathering = self.gatherings[index]
        if gathering.waiting:
            return
        del self.gatherings[index]
        answers = [gathering.answers[i] for i in sorted(gathering.answers)]
        self._send(self.slots[gathering.asker], ("reply", gathering.ident, answers))

    def _send(self, slot: _Slot, message: tuple[Any, ...]) -> bool:
        if slot.pipe is None:
            return False
        try:
            slot.pipe.send(message)
        except OSError:
            return False
        return True
