"""``boxgym tasks check FILE``: every task's reference must score 1 and its empty solution 0, on Docker.

The check itself is :func:`boxgym.envs.check.check_tasks`; this module loads the
file, owns the sandbox pool, draws the progress bar and reports. Exit status:
0 every task passed, 1 some task failed, 2 the file or the options are wrong,
3 no task failed but some could not be checked (the infrastructure failed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from boxgym.envs import StaticTaskSet
    from boxgym.envs.check import SolutionRun, TaskCheck

HELP = "check a JSONL task file: each reference solution must score 1 and each empty solution 0"

EPILOG = """\
Each task is played twice through the env, in real Docker sandboxes: its reference
solution, which must score 1, and the empty solution (no action but submit), which
must score 0. Exit status: 0 every task passed, 1 some task failed, 2 the file or
the options are wrong, 3 no task failed but some could not be checked because the
infrastructure failed (run again)."""

MAX_CHECKS_SHOWN = 5  # failing tests shown per run
MAX_DETAIL_LINES = 12  # lines of each one's detail


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="tasks_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help=HELP, description=HELP, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    check.add_argument("file", metavar="FILE", help="a JSONL task file (docs/tasks.md describes the format)")
    check.add_argument("--env", default="boxgym/Code-v0", metavar="ID",
                       help="the env to play the tasks in (default boxgym/Code-v0; also boxgym/Shell-v0, boxgym/SQL-v0)")  # fmt: skip
    check.add_argument("--concurrency", type=int, default=4, metavar="N", help="episodes at once (default 4)")
    check.add_argument("--image", default=None, help="sandbox image (default: the env's own, slim for the built-in ids)")
    check.add_argument("--json", action="store_true", help="print one JSON object with every task's runs instead")


def run(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import boxgym.envs  # noqa: F401 - registers the ids
    from boxgym.envs import StaticTaskSet
    from boxgym.errors import BoxgymError, TaskError

    if args.concurrency < 1:
        print("boxgym tasks check: --concurrency must be at least 1", file=sys.stderr)
        return 2
    try:
        spec = gym.spec(args.env)
    except gym.error.Error as exc:
        print(f"boxgym tasks check: {exc}; see `boxgym envs list`", file=sys.stderr)
        return 2
    try:
        tasks = StaticTaskSet.from_jsonl(args.file)
    except (OSError, TaskError) as exc:
        print(f"boxgym tasks check: {exc}", file=sys.stderr)
        return 2
    if not _serves_tasks(args.env, tasks):
        return 2
    image = args.image or spec.kwargs.get("image", "slim")
    if not args.json:
        print(f"boxgym tasks check {args.file}: {len(tasks)} tasks in {args.env} (image {image}), "
              f"{args.concurrency} episodes at a time")  # fmt: skip
    started = time.monotonic()
    try:
        checks = asyncio.run(_check(tasks, args.env, image, args.concurrency))
    except BoxgymError as exc:  # no sandbox could start: no engine, the image not built
        print(f"boxgym tasks check: infrastructure failure: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    seconds = time.monotonic() - started
    if args.json:
        print(json.dumps(_summary_json(checks, args.file, args.env, seconds)))
    else:
        _report(checks, seconds, sys.stdout)
    return _exit_status(checks)


def _serves_tasks(env_id: str, tasks: StaticTaskSet) -> bool:
    """Whether ``env_id`` makes a boxgym env over these tasks (making one starts no sandbox)."""
    import gymnasium as gym

    from boxgym.envs import BoxEnv

    try:
        env = gym.make(env_id, tasks=tasks, disable_env_checker=True)
    except Exception as exc:  # noqa: BLE001 - whatever the entry point raises, the id cannot serve
        print(f"boxgym tasks check: {env_id} cannot serve a task file: {type(exc).__name__}: {exc}", file=sys.stderr)
        return False
    env.close()
    if not isinstance(env.unwrapped, BoxEnv):
        print(f"boxgym tasks check: {env_id} is not a boxgym environment; see `boxgym envs list`", file=sys.stderr)
        return False
    return True


async def _check(tasks: StaticTaskSet, env_id: str, image: str, concurrency: int) -> list[TaskCheck]:
    from boxgym.envs.check import check_tasks
    from boxgym.sandboxes import SandboxPool, SandboxSpec

    bar = ProgressBar(len(tasks), sys.stderr)
    async with SandboxPool(SandboxSpec(image=image), size=min(concurrency, 2 * len(tasks))) as pool:
        # One sandbox first: a missing image or a dead engine is one message, not one per run.
        await (await pool.acquire()).aclose()
        bar.start()
        try:
            return await check_tasks(tasks, provider=pool, env_id=env_id, concurrency=concurrency, on_checked=bar.checked)
        finally:
            bar.stop()


class ProgressBar:
    """A bar of the tasks checked so far, redrawn in place on a terminal (and nowhere else)."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO, *, enabled: bool | None = None, interval: float = 0.5) -> None:
        self.total, self.done, self.failed, self.not_checked = total, 0, 0, 0
        self._stream = stream
        self._enabled = bool(getattr(stream, "isatty", lambda: False)()) if enabled is None else enabled
        self._interval = interval
        self._started = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None

    def render(self) -> str:
        filled = self.WIDTH * self.done // self.total if self.total else self.WIDTH
        return (
            f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total} tasks"
            f" | {self.failed} failed | {self.not_checked} not checked | {time.monotonic() - self._started:.0f}s"
        )

    def start(self) -> None:
        if self._enabled:
            self._tick()

    def checked(self, check: TaskCheck) -> None:
        self.done += 1
        self.failed += check.status == "failed"
        self.not_checked += check.status == "not_checked"
        if self._enabled:
            self._draw()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._enabled:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()
            self._enabled = False

    def _tick(self) -> None:
        self._draw()
        self._timer = asyncio.get_running_loop().call_later(self._interval, self._tick)

    def _draw(self) -> None:
        self._stream.write("\r" + self.render())
        self._stream.flush()


def _report(checks: list[TaskCheck], seconds: float, out: TextIO) -> None:
    from boxgym.errors import Fault

    for check in checks:
        if check.status == "failed":
            out.write(f"FAILED       {check.task_id}: {'; '.join(check.problems)}\n")
            shown = set()
            for run in check.runs:
                if run.wrong:
                    out.write(_verdict_lines(run))
                elif run.fault is Fault.BUG and run.error is not None and run.error not in shown:
                    shown.add(run.error)
                    out.write("".join(f"    {line}\n" for line in run.error.strip().splitlines()))
        for run in check.runs:
            if run.fault is Fault.INFRA:
                out.write(f"NOT CHECKED  {check.task_id}: infrastructure failure in the {run.solution} run: {run.error}\n")
    counts = {status: sum(c.status == status for c in checks) for status in ("passed", "failed", "not_checked")}
    out.write(f"{counts['passed']} passed, {counts['failed']} failed, {counts['not_checked']} not checked "
              f"(infrastructure), of {len(checks)} tasks in {seconds:.1f}s\n")  # fmt: skip


def _verdict_lines(run: SolutionRun) -> str:
    """The verdict of a run that went wrong: its messages, then the checks that say why."""
    assert run.verdict is not None
    lines = [f"    {run.solution}: {message}" for message in run.verdict.messages]
    # A failed reference is explained by its failing checks; a passing empty solution by its passing ones.
    telling = [c for c in run.verdict.checks if c.passed == (run.solution == "empty")]
    for check in telling[:MAX_CHECKS_SHOWN]:
        detail = check.detail.splitlines() if run.solution == "reference" else []
        lines.append(f"    {run.solution}: {'passed' if check.passed else 'failed'}: {check.name}")
        if len(detail) > MAX_DETAIL_LINES:
            detail = [*detail[: MAX_DETAIL_LINES // 2], "...", *detail[-MAX_DETAIL_LINES // 2 :]]
        lines += [f"        {line}" for line in detail]
    if len(telling) > MAX_CHECKS_SHOWN:
        lines.append(f"    {run.solution}: ... and {len(telling) - MAX_CHECKS_SHOWN} more")
    return "".join(line.replace("\n", "\n        ") + "\n" for line in lines)


def _summary_json(checks: list[TaskCheck], path: str, env_id: str, seconds: float) -> dict[str, Any]:
    return {
        "file": path,
        "env_id": env_id,
        "tasks": len(checks),
        **{status: sum(c.status == status for c in checks) for status in ("passed", "failed", "not_checked")},
        "seconds": round(seconds, 3),
        "checks": [check.to_json() for check in checks],
    }


def _exit_status(checks: list[TaskCheck]) -> int:
    statuses = {check.status for check in checks}
    return 1 if "failed" in statuses else 3 if "not_checked" in statuses else 0
