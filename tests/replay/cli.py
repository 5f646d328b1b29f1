"""Running boxgym's command line and the scripted engine as processes, for the end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def boxgym(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "boxgym", *args], capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def serving(*args: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``boxgym ARGS`` as a server listening on ``port``, stopped (by its pid) afterwards."""
    process = subprocess.Popen([sys.executable, "-m", "boxgym", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def demo(run: Path) -> Path:
    """Three demo episodes (Code, Shell, SQL at level 0): Docker, the gateway, the scripted engine."""
    done = boxgym("demo", "--seeds", "1", "--levels", "1", "--concurrency", "3", "--run-dir", str(run))
    assert done.returncode == 0, done.stdout + done.stderr
    return run


def resume_wrong(run: Path, episode_id: str, out: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Resume ``episode_id`` at step 1 with a scripted model that submits a wrong query."""
    wrong: dict[str, Any] = {"tool_calls": [{"name": "submit", "arguments": {"answer": "SELECT 0"}}]}
    (tmp / "script.json").write_text(json.dumps({"resume-0": [{"text": "unused"}, wrong]}))
    port = free_port()
    with serving("gateway", "mock-engine", "--port", str(port), "--script", str(tmp / "script.json"), port=port):
        return boxgym("replay", "resume", str(run), "--episode", episode_id, "--at", "1",
                      "--base-url", f"http://127.0.0.1:{port}", "--out", str(out), "--json")  # fmt: skip
