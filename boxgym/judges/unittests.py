"""Hidden unit tests that the agent cannot game.

The tests (plain :mod:`unittest` source; the slim image has no pytest) are
never in the sandbox during the episode: they live in the task on the host.
After the episode, :class:`UnitTestJudge`

1. kills every process of the agent (no daemon outlives the episode),
2. starts :mod:`boxgym.judges.unittest_runner` as root with the pristine test
   source on stdin (never on disk, where the agent could edit it),
3. which runs the tests in its own process and imports the agent's module in
   a child process at the agent's uid, talking to it over a private pipe in
   tagged JSON, so only plain builtin values cross (no lying ``__eq__``, no
   patched ``unittest``, no ``sys.exit``/``os._exit`` that ends the tests);
4. and reads the verdict from the runner's exit status *and* the nonce-stamped
   result line on the runner's own stdout, which must agree.

What the agent's process prints is discarded. A ``conftest.py`` is inert:
there is no pytest. Skipped tests count as not passed, as do a test with a
failing ``subTest`` and the tests a failing ``setUpClass`` kept from running.
Failure details show the frames of the tests and of the solution only.
Tests that break with no part of the solution in it (an import the image
lacks) are a :class:`~boxgym.errors.TaskError`: the task is broken, which is
neither the agent's fault nor the infrastructure's.

Scope: the tests call module-level functions and read module-level values
whose arguments and results are None/bool/int/float/str/bytes and lists,
tuples, dicts, sets of those. A task that needs the agent's classes must
expose functions that use them. ``from solution import *`` binds the
solution's public functions and plain values (its ``__all__`` if it has
one), never over a builtin or a name the tests bound before the import.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import JudgeError, TaskError
from .base import Check, FinishedEpisode, Verdict
from .trusted import kill_agent_processes, run_trusted, script_source

__all__ = ["HiddenTests", "UnitTestJudge"]


@dataclass(frozen=True, slots=True)
class HiddenTests:
    """The oracle of a coding task: unittest source that imports ``module``."""

    source: str
    module: str = "solution"
    call_timeout: float = 10.0  # per call into the agent's code (includes its import)
    timeout: float = 120.0  # the whole run


@dataclass(frozen=True, slots=True)
class UnitTestJudge:
    """Runs the task's :class:`HiddenTests`. ``partial=True`` rewards the fraction passed."""

    partial: bool = False
    python: str = "python3"

    async def score(self, episode: FinishedEpisode) -> Verdict:
        tests = episode.task.oracle
        if not isinstance(tests, HiddenTests):
            raise JudgeError(f"task {episode.task.id} has no hidden tests")
        sandbox = episode.sandbox
        await kill_agent_processes(sandbox)
        payload = {"tests": tests.source, "module": tests.module, "call_timeout": tests.call_timeout}
        try:
            run = await run_trusted(
                sandbox, script_source("unittest_runner.py"), payload, timeout=tests.timeout, python=self.python
            )
        finally:
            await kill_agent_processes(sandbox)  # whatever the solution forked while being tested
        if run.timed_out:
            return Verdict.fail(f"the tests did not finish within {tests.timeout:g}s")
        verdict = run.result
        if verdict.get("tests_error"):
            # Not the agent's and not the infrastructure's: a retry would fail the same way.
            raise TaskError(f"the hidden tests of task {episode.task.id} fail on their own:\n{verdict['tests_error']}")
        if run.exit_code == 2 or verdict.get("harness_error"):
            raise JudgeError(f"the test harness failed on task {episode.task.id}: {verdict.get('harness_error')}")
        checks = tuple(
            Check(str(t["id"]), t["outcome"] == "pass", f"{t['outcome']}: {t['detail']}".strip(": "))
            for t in verdict.get("tests", [])
        )
        total, passed = int(verdict.get("total", 0)), int(verdict.get("passed", 0))
        all_passed = total > 0 and passed == total
        if all_passed != (run.exit_code == 0):
            raise JudgeError(f"the test runner's exit status {run.exit_code} contradicts its result {passed}/{total}")
        if verdict.get("load_error"):
            return Verdict.fail(f"the solution could not be loaded:\n{verdict['load_error']}")
        reward = 1.0 if all_passed else (passed / total if self.partial and total else 0.0)
        return Verdict(reward, all_passed, checks, (f"{passed}/{total} tests passed",))
