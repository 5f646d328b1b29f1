"""``ipython.*``: one IPython kernel per sandbox, as the agent, driven through jupyter-client.

Operations (the host's :class:`boxgym.toolsets.IPythonToolset` uses them):

``ipython.execute(code, timeout=30, max_output=None)``
    Run one cell; the kernel's state (variables, imports) persists from cell to cell. The
    answer holds the cell's output (:mod:`.cell_output`) and how it ended, ``status``:

    ``ok``       the cell ran to its end.
    ``error``    it raised; ``error`` has the exception and its traceback.
    ``timeout``  it ran past ``timeout`` seconds and was interrupted (``KeyboardInterrupt``):
                 the kernel and its state are kept. When the interrupt did not stop it within
                 :data:`INTERRUPT_GRACE_S` the kernel was restarted instead (``restarted`` and
                 ``state_lost`` are true).
    ``died``     the kernel died during the cell (the OOM killer, ``os._exit``, a signal) and
                 was restarted; ``state_lost``. Also when what the kernel started holds over
                 half of the sandbox's process limit (a fork bomb): the kernel's whole tree is
                 killed to free the pids, and a new kernel started.

    ``notices`` say in words what happened to the kernel (also when it had died between
    cells, or could not be restarted), ``notes`` what is missing from the output.

``ipython.ready()``
    Start the kernel if it is not running; a warm pool calls it ahead of the agent
    (``SandboxSpec(warm=("ipython.ready",))``). Answers like ``status``.

``ipython.status()``
    ``pid``, ``alive``, ``restarts``, ``execution_count``: for tests and operators.

Who is at fault: everything a cell does is an answer. The kernel is started on first use
(the plugin's ``start``); when a kernel cannot start because of the agent (its processes
killed it while it started, or filled the sandbox's memory or pids), the answer says so
(``status`` ``died``, ``ok`` false) and the next call tries again; when it cannot start on its
own (a broken image), the operation raises :class:`~.plugins.Unavailable`: an infrastructure
failure. Closing the sandbox ends the kernel and every process it started.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from typing import Any

from . import cgroup
from .cell_output import CellOutput
from .files import Refused
from .kernel import Kernel, KernelStartFailed, Launch
from .plugins import Unavailable

#: How long a kernel may take to start and answer (imports on a loaded machine).
START_WITHIN_S = 60.0
#: After the interrupt of a cell past its timeout, how long it has to stop before the restart.
INTERRUPT_GRACE_S = 3.0
#: How long a closing sandbox's kernel has to shut down by itself before it is killed.
SHUTDOWN_WITHIN_S = 2.0
_LOST = "every variable, import and definition of earlier cells is gone: run what the next cells need again"
_BOMB = (
    "The processes the kernel started held over half of the sandbox's process limit (a fork bomb?): the "
    "kernel and every process it started were killed to free them."
)


class Plugin:
    EXCLUSIVE = frozenset({"execute"})

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.kernel: Kernel | None = None
        self.restarts = 0
        self.execution_count = 0
        self._lock = asyncio.Lock()  # one kernel start or replacement at a time
        self._recovery: asyncio.Task | None = None  # settles a cell the host gave up on

    async def start(self) -> None:
        await self._current()  # the kernel starts on first use; an agent-caused failure is retried per call

    async def stop(self) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
        kernel, self.kernel = self.kernel, None
        if kernel is not None:
            await kernel.shutdown(SHUTDOWN_WITHIN_S)
            await self._as_agent(shutil.rmtree, kernel.scratch, True)

    # -- operations -----------------------------------------------------------------------

    async def op_ready(self) -> dict[str, Any]:
        kernel, notices = await self._current()
        return {"ok": kernel is not None, "notices": notices, **self._state()}

    async def op_status(self) -> dict[str, Any]:
        return self._state()

    async def op_execute(self, code: str, timeout: float = 30.0, max_output: int | None = None) -> dict[str, Any]:
        if not isinstance(code, str):
            raise Refused("'code' must be a string", reason="bad_request")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout < 1e6:
            raise Refused("'timeout' must be a positive number of seconds", reason="bad_request")
        limit = self.ctx.max_output if max_output is None else max_output
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise Refused("'max_output' must be a positive integer", reason="bad_request")
        started = time.monotonic()
        output = CellOutput(limit)
        kernel, notices = await self._current()
        if kernel is not None and kernel.holds_the_pids():
            notices.append(f"{_BOMB} {await self._replace(kernel)}")
            kernel = self.kernel
        if kernel is None:
            return _answer(output, "died", notices, started, state_lost=True)
        cell = await kernel.execute(code, output)
        try:
            outcome = await kernel.wait(cell, float(timeout))
            interrupted = outcome == "timeout"
            if interrupted:
                kernel.interrupt()
                outcome = await kernel.wait(cell, INTERRUPT_GRACE_S)
        except asyncio.CancelledError:
            # The host gave up on the call: the cell must not run on unattended.
            self._recovery = asyncio.ensure_future(self._settle(kernel, cell))
            raise
        finally:
            kernel.cell = None
        if outcome != "died" and kernel.holds_the_pids():
            notices.append(f"{_BOMB} {await self._replace(kernel)}")
            return _answer(output, "timeout" if interrupted else "died", notices, started, state_lost=True)
        if outcome == "done":
            reply = cell.reply or {}
            if output.execution_count is None and isinstance(reply.get("execution_count"), int):
                output.execution_count = reply["execution_count"]
            self.execution_count = output.execution_count or self.execution_count
            if interrupted:
                notices.append(
                    f"The cell ran past its {timeout:g}s timeout and was interrupted (KeyboardInterrupt); the kernel "
                    "and its variables are kept."
                )
                return _answer(output, "timeout", notices, started, interrupted=True)
            if reply.get("status") == "ok":
                return _answer(output, "ok", notices, started)
            if output.error is None:
                output.feed("error", reply)
            return _answer(output, "error", notices, started)
        if outcome == "died":
            why = f"The kernel died during the cell: {kernel.death()}."
        else:
            why = (
                f"The cell ran past its {timeout:g}s timeout and did not stop within {INTERRUPT_GRACE_S:g}s of "
                "the interrupt (it ignores KeyboardInterrupt, or is stuck in native code)."
            )
        notices.append(why + " " + await self._replace(kernel))
        return _answer(output, "died" if outcome == "died" else "timeout", notices, started, state_lost=True)

    # -- the kernel ---------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        kernel = self.kernel
        return {
            "pid": kernel.proc.pid if kernel is not None else None,
            "alive": kernel is not None and kernel.alive,
            "restarts": self.restarts,
            "execution_count": self.execution_count,
        }

    async def _current(self) -> tuple[Kernel | None, list[str]]:
        """The running kernel, started (or restarted, saying why) if need be; None when the
        agent keeps it from starting (the notice says how)."""
        notices: list[str] = []
        async with self._lock:
            if self._recovery is not None:
                await asyncio.gather(self._recovery, return_exceptions=True)
                self._recovery = None
            kernel = self.kernel
            if kernel is not None and not kernel.alive:
                self.kernel = None
                await self._dispose(kernel)
                notices.append(f"The kernel had died since the last cell: {kernel.death()}. It was restarted: {_LOST}.")
                self.restarts += 1
            if self.kernel is None:
                try:
                    self.kernel = await self._launch()
                except KernelStartFailed as exc:
                    notices.append(f"The kernel could not be started: {exc}. The next python call tries again.")
        return self.kernel, notices

    async def _replace(self, kernel: Kernel) -> str:
        """Kill ``kernel`` (and what it started) and start another; says what became of it."""
        async with self._lock:
            await kernel.kill()
            await self._dispose(kernel)
            self.kernel = None
            self.restarts += 1
            await _pids_freed()
            try:
                self.kernel = await self._launch()
            except KernelStartFailed as exc:
                return f"A new kernel could not be started ({exc}); the next python call tries again."
        return f"The kernel was restarted: {_LOST}."

    async def _settle(self, kernel: Kernel, cell: Any) -> None:
        kernel.cell = cell
        kernel.interrupt()
        try:
            if await kernel.wait(cell, INTERRUPT_GRACE_S) != "done":
                await kernel.kill()  # the next call finds it dead, restarts it and says so
        finally:
            kernel.cell = None

    async def _launch(self) -> Kernel:
        uid, gid = self.ctx.identity("agent")
        try:
            scratch = await self._as_agent(tempfile.mkdtemp, "", ".boxgym-ipython-", "/tmp")
        except OSError as exc:
            raise KernelStartFailed(f"no directory for the kernel in /tmp: {exc}", by_agent=True) from None
        env = {
            **self.ctx.base_env,
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            # IPython's profile and Jupyter's runtime files go to a directory made for this kernel
            # alone, so no startup file planted in the agent's home runs in it.
            "IPYTHONDIR": os.path.join(scratch, "ipython"),
            "JUPYTER_RUNTIME_DIR": os.path.join(scratch, "runtime"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }
        try:
            kernel = await Kernel.start(Launch(self.ctx.workdir, env, uid, gid), within=START_WITHIN_S)
        except KernelStartFailed as exc:
            await self._as_agent(shutil.rmtree, scratch, True)
            if exc.by_agent or self._agent_may_interfere():
                raise
            raise Unavailable(f"the IPython kernel cannot start: {exc}") from None
        kernel.scratch = scratch
        root = self.ctx.workers.get("root")
        if root is not None:
            kernel.blocking = root.run
        return kernel

    async def _dispose(self, kernel: Kernel) -> None:
        await kernel.close()
        await self._as_agent(shutil.rmtree, kernel.scratch, True)

    async def _as_agent(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on a file thread with the agent's identity (in the fake: here, as the host user)."""
        workers = self.ctx.workers.get("agent")
        return await workers.run(fn, *args) if workers is not None else fn(*args)

    def _agent_may_interfere(self) -> bool:
        # Only a kernel that has run the agent's cells can have been sabotaged by them; the first
        # start failing on its own is the image's fault.
        return self.restarts > 0 and self.execution_count > 0


async def _pids_freed(within: float = 2.0) -> None:
    """Wait (a little) for killed processes' pids to be released, so the new kernel can start."""
    deadline = time.monotonic() + within
    while cgroup.usage().pids_exhausted and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def _answer(
    output: CellOutput,
    status: str,
    notices: list[str],
    started: float,
    *,
    interrupted: bool = False,
    state_lost: bool = False,
) -> dict[str, Any]:
    return {
        "ok": status == "ok",
        "status": status,
        **output.answer(),
        "interrupted": interrupted,
        "restarted": state_lost,
        "state_lost": state_lost,
        "notices": notices,
        "duration_s": time.monotonic() - started,
    }
