""":class:`~boxgym.sandboxes.toolserver.kernel.Kernel` on the host: how the server talks to one kernel."""

from __future__ import annotations

import os
import time

import pytest

from boxgym.sandboxes.toolserver.cell_output import CellOutput
from boxgym.sandboxes.toolserver.kernel import Kernel, Launch

pytest.importorskip("ipykernel")


async def test_a_cell_sent_while_a_burst_of_replies_arrives_still_gets_its_reply(tmp_path):
    # A starting kernel answers every ping queued while it booted, in one burst; the first cell
    # is sent as that burst arrives. A send that took the socket's readable edge from the waiting
    # reader left those replies, and the cell's, unread: the cell ran into its timeout.
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    kernel = await Kernel.start(Launch(str(tmp_path), env, None, None), within=60)
    try:
        for _ in range(50):
            kernel._ping()
        time.sleep(0.5)  # the replies arrive while the reader cannot run: they wait in the socket
        output = CellOutput(10_000)
        cell = await kernel.execute("2 + 2", output)
        assert await kernel.wait(cell, 20) == "done"
        assert cell.reply["status"] == "ok" and output.outputs == [{"kind": "result", "text": "4"}]
    finally:
        await kernel.shutdown(2.0)
