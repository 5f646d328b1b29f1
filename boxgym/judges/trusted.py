"""Running judge code inside a sandbox so that the agent cannot influence the verdict.

Two rules every sandbox-side judge follows:

1. **No agent process survives into judging.** :func:`kill_agent_processes`
   has the tool server kill every process of the agent's uid and check that
   none is left (a double-forked daemon must not rewrite files or answers
   while the judge reads them). The server does it with ``kill(-1)`` from the
   agent's uid, which the kernel applies to every process of that uid in one
   sweep, from a thread it started in advance: a fork bomb can neither outrun
   it nor keep it from starting. What cannot be killed raises
   :class:`~boxgym.errors.SandboxWrecked`: the agent's doing, scored 0.
2. **The verdict travels over a channel the agent never had.**
   :func:`run_trusted` starts a stdlib-only script as root with
   ``python3 -I -S`` (no ``PYTHON*`` variables, no site, no work directory on
   ``sys.path``, so nothing the agent planted is imported) from ``/``. Its
   input (tests, expected values, a fresh random nonce) goes in on stdin, so
   nothing secret is ever written to disk or put on a command line; its
   verdict comes back as the last line of *its own* stdout, which no agent
   process can write to, echoing the nonce.

A sandbox that is not :attr:`~boxgym.sandboxes.Sandbox.isolated` (the in-process fake, whose
"agent" and "root" are the host user) skips step 1: killing
uid 10001 on the host would kill the agent processes of every real sandbox.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..errors import JudgeError, SandboxWrecked
from ..sandboxes.base import Sandbox
from ..sandboxes.config import AGENT_UID

__all__ = ["TrustedRun", "kill_agent_processes", "run_trusted", "script_source"]


def script_source(name: str) -> str:
    """The source of a runner script shipped in this package (``boxgym/judges/<name>``)."""
    return resources.files(__package__).joinpath(name).read_text()


async def kill_agent_processes(sandbox: Sandbox) -> None:
    """Kill every process of the agent's uid; :class:`SandboxWrecked` if any survives."""
    if sandbox.isolated:
        await sandbox.kill_agent_processes()


@dataclass(frozen=True, slots=True)
class TrustedRun:
    exit_code: int | None
    timed_out: bool
    result: dict[str, Any]  # the runner's verdict object; empty when it timed out
    stderr: str


async def run_trusted(
    sandbox: Sandbox,
    script: str,
    payload: dict[str, Any],
    *,
    timeout: float,
    python: str = "python3",
    agent_uid: int | None = AGENT_UID,
) -> TrustedRun:
    """Run ``script`` as root with ``payload`` (plus a nonce and the agent's uid) on stdin.

    ``agent_uid`` is passed to the script so that it can drop to the agent's
    uid for anything that runs the agent's code; it is ``None`` on sandboxes
    that are not isolated. A timeout is returned, not raised: when the agent's
    code made the judge too slow, that is the agent's score, not a failure.
    """
    nonce = secrets.token_hex(16)
    uid = agent_uid if sandbox.isolated else None
    oom_before = (await sandbox.health()).oom_kills if sandbox.isolated else None
    stdin = json.dumps({**payload, "nonce": nonce, "agent_uid": uid, "workdir": sandbox.workdir})
    result = await sandbox.exec(
        [python, "-I", "-S", "-c", script],
        stdin=stdin,
        user="root",
        cwd="/",
        timeout=timeout,
        max_output=8 * 1024 * 1024,
    )
    if result.timed_out:
        return TrustedRun(None, True, {}, result.stderr)
    if result.exit_code == -9 and oom_before is not None:
        # The memory limit's OOM killer took the judge's runner: after the agent's processes are
        # gone, only what the agent left (files in its tmpfs) fills the memory.
        oom_after = (await sandbox.health()).oom_kills
        if oom_after is not None and oom_after > oom_before:
            raise SandboxWrecked(
                "the judge's runner was killed by the out-of-memory killer: the sandbox's memory is "
                "filled by what the agent left in it"
            )
    lines = result.stdout.strip().splitlines()
    try:
        verdict = json.loads(lines[-1]) if lines and not result.stdout_truncated else None
    except json.JSONDecodeError:
        verdict = None
    if not isinstance(verdict, dict) or verdict.get("nonce") != nonce:
        said = result.stderr[-2000:] or result.stdout[-500:]
        raise JudgeError(f"the judge's runner gave no verdict (exit {result.exit_code}): {said}")
    return TrustedRun(result.exit_code, False, verdict, result.stderr)
