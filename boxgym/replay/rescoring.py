"""``rescore``: the current judges on the recorded episodes, old reward against new.

For each recorded root episode that reached a verdict, the env's current judge scores it again
from what it needs (:mod:`boxgym.replay.judging`): offline from the record, in a clean checker
sandbox, or after re-executing the recorded actions in a fresh sandbox (through the rollout
manager, :mod:`boxgym.replay.drive`). Each episode gives one :class:`Rescored` line of the output
JSONL, written as it is scored; the recorded run is only read.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import EngineError, JudgeError, ReplayError, SandboxError, TaskError
from ..trajectories import Outcome
from .drive import ReplayConfig, drive_once, unreplayable
from .judging import Needs, NeedsSandbox, SealedSandbox, finished_episode, needs_of
from .policy import Branch
from .rundir import RecordedEpisode, RunDir

__all__ = ["Rescored", "RescoreSummary", "rescore"]

How = Literal["record", "checker", "re-executed", "skipped", "failed"]
_SCORED = (Outcome.TERMINATED, Outcome.TRUNCATED)


@dataclass(frozen=True, slots=True)
class Rescored:
    """One episode's old and new reward, and how the new one was reached."""

    episode_id: str
    env_id: str
    task_id: str
    old_reward: float | None
    new_reward: float | None
    how: How
    why: str | None = None  # why it was skipped, or how scoring failed
    verdict: dict[str, Any] | None = None
    replay_episode_id: str | None = None  # the re-executed episode, in the re-execution's run

    @property
    def changed(self) -> bool:
        old, new = self.old_reward, self.new_reward
        return old is not None and new is not None and abs(old - new) > 1e-9

    def to_json(self) -> dict[str, Any]:
        return {
            "episode_id": self.episode_id,
            "env_id": self.env_id,
            "task_id": self.task_id,
            "old_reward": self.old_reward,
            "new_reward": self.new_reward,
            "changed": self.changed,
            "how": self.how,
            "why": self.why,
            "verdict": self.verdict,
            "replay_episode_id": self.replay_episode_id,
        }


@dataclass(slots=True)
class RescoreSummary:
    out: Path
    rows: list[Rescored] = field(default_factory=list)
    seconds: float = 0.0
    reexecuted_run: Path | None = None

    def count(self, how: How) -> int:
        return sum(1 for r in self.rows if r.how == how)

    @property
    def rescored(self) -> int:
        return sum(1 for r in self.rows if r.new_reward is not None)

    @property
    def changed(self) -> list[Rescored]:
        return [r for r in self.rows if r.changed]

    def to_json(self) -> dict[str, Any]:
        pairs = [(r.old_reward, r.new_reward) for r in self.rows if r.old_reward is not None and r.new_reward is not None]
        return {
            "out": str(self.out),
            "episodes": len(self.rows),
            "rescored": self.rescored,
            "changed": len(self.changed),
            "up": sum(1 for r in self.changed if r.new_reward > r.old_reward),  # type: ignore[operator]
            "down": sum(1 for r in self.changed if r.new_reward < r.old_reward),  # type: ignore[operator]
            "by_how": {how: self.count(how) for how in ("record", "checker", "re-executed", "skipped", "failed")},
            "old_mean": sum(o for o, _ in pairs) / len(pairs) if pairs else None,
            "new_mean": sum(n for _, n in pairs) / len(pairs) if pairs else None,
            "seconds": self.seconds,
            "episodes_per_s": self.rescored / self.seconds if self.seconds > 0 else None,
            "reexecuted_run": None if self.reexecuted_run is None else str(self.reexecuted_run),
        }


class _Judges:
    """One env per env id, for its judge, its task set and its sandbox provider."""

    def __init__(self, config: ReplayConfig) -> None:
        from ..envs import EnvFactory

        self._factory = EnvFactory(**dict(config.env_kwargs))
        self._envs: dict[str, Any] = {}

    def env(self, env_id: str) -> Any:
        from ..envs.core import BoxEnv
        from ..rollout.types import TaskRef

        if env_id not in self._envs:
            env = self._factory(TaskRef(None, env_id), None)
            if not isinstance(env, BoxEnv):
                raise ReplayError(f"env {env_id!r} is not a BoxEnv: it has no judge and task set to rescore with")
            self._envs[env_id] = env
        return self._envs[env_id]

    async def aclose(self) -> None:
        envs, self._envs = self._envs, {}
        for env in envs.values():
            await env.aclose()
        await self._factory.aclose()


class _Checkers:
    """Clean sandboxes for judges that run trusted code but read no agent file (``CHECKER``).

    No agent ever runs in them, and a checker leaves nothing behind, so a few serve every such
    episode in turn instead of one container per episode. One that breaks is replaced.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._free: dict[int, asyncio.Queue[Any]] = {}  # by provider
        self._all: list[Any] = []

    async def run(self, provider: Any, score: Any) -> Any:
        queue = self._free.get(id(provider))
        if queue is None:
            queue = self._free[id(provider)] = asyncio.Queue()
            for _ in range(self._size):
                queue.put_nowait(None)  # a slot; its sandbox is acquired on first use
        sandbox = await queue.get()
        try:
            for attempt in (1, 2):
                if sandbox is None:
                    sandbox = await provider.acquire()
                    self._all.append(sandbox)
                try:
                    return await score(sandbox)
                except (JudgeError, SandboxError, EngineError):
                    broken = not (await _alive(sandbox))
                    if not broken or attempt == 2:
                        raise
                    await sandbox.aclose()
                    sandbox = None
        finally:
            queue.put_nowait(sandbox)

    async def aclose(self) -> None:
        sandboxes, self._all = self._all, []
        for sandbox in sandboxes:
            await sandbox.aclose()


async def _alive(sandbox: Any) -> bool:
    try:
        return bool((await sandbox.health()).ok)
    except Exception:  # noqa: BLE001 - any failure to answer means the sandbox is gone
        return False


def _skip(episode: RecordedEpisode) -> str | None:
    if episode.start is None:
        return "its start record is missing"
    if episode.parent_episode_id is not None:
        return f"a sub-agent of {episode.parent_episode_id}: scored through its root"
    if episode.end is None:
        return "it has no end record (the run is still going, or stopped mid-episode)"
    if episode.end.outcome not in _SCORED or episode.end.reward is None:
        return f"no verdict was recorded (outcome {episode.end.outcome.value}): nothing to compare with"
    return None


def _row(episode: RecordedEpisode, how: How, new: float | None = None, **kwargs: Any) -> Rescored:
    return Rescored(episode.episode_id, episode.env_id, episode.task_id, episode.reward, new, how, **kwargs)


class _Output:
    """Rows go to the JSONL file as they come, and to the terminal."""

    def __init__(self, path: Path, summary: RescoreSummary, echo: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("w")
        self._summary = summary
        self._echo = echo
        self._started = time.monotonic()

    def add(self, row: Rescored) -> None:
        self._summary.rows.append(row)
        self._fh.write(json.dumps(row.to_json()) + "\n")
        self._fh.flush()
        if self._echo and sys.stderr.isatty():
            n = len(self._summary.rows)
            rate = n / max(time.monotonic() - self._started, 1e-9)
            sys.stderr.write(f"\rrescore: {n} episodes, {len(self._summary.changed)} changed | {rate:,.1f}/s ")
            sys.stderr.flush()

    def close(self) -> None:
        self._fh.close()
        if self._echo and sys.stderr.isatty():
            sys.stderr.write("\n")


async def rescore(
    run: RunDir,
    *,
    out: Path,
    only: Iterable[str] | None = None,
    config: ReplayConfig = ReplayConfig(),
    reexecute_dir: Path | None = None,
    checker_sandboxes: int = 4,
) -> RescoreSummary:
    """Rescore ``run``'s episodes (or those in ``only``) into ``out`` (JSONL, one :class:`Rescored`
    per episode). Episodes whose judge needs the final state are re-executed into
    ``reexecute_dir`` (default: beside ``out``)."""
    started = time.monotonic()
    reexecute_dir = reexecute_dir or out.with_name(out.stem + "-reexecuted")
    if (reexecute_dir / "trajectories.jsonl").exists():
        raise ReplayError(f"{reexecute_dir} already holds a run: rescore into a new --out")
    summary = RescoreSummary(out)
    output = _Output(out, summary, echo=config.progress is not False)
    judges, checkers = _Judges(config), _Checkers(checker_sandboxes)
    slots = asyncio.Semaphore(max(1, config.concurrency))
    later: list[RecordedEpisode] = []
    pending: set[asyncio.Task[None]] = set()

    async def one(episode: RecordedEpisode) -> None:
        try:
            row = await _offline(episode, judges, checkers)
            if row is None:
                later.append(episode)
            else:
                output.add(row)
        finally:
            slots.release()

    try:
        for episode in run.episodes(only):
            why = _skip(episode)
            if why is not None:
                output.add(_row(episode, "skipped", why=why))
                continue
            await slots.acquire()
            task = asyncio.create_task(one(episode))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        if later:
            summary.reexecuted_run = reexecute_dir
            for row in await _reexecute(run, later, summary.reexecuted_run, config):
                output.add(row)
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        output.close()
        await checkers.aclose()
        await judges.aclose()
    summary.seconds = time.monotonic() - started
    return summary


async def _offline(episode: RecordedEpisode, judges: _Judges, checkers: _Checkers) -> Rescored | None:
    """Score without re-execution if the judge allows it; None if the episode must be re-executed."""
    try:
        env = judges.env(episode.env_id)
        task = await asyncio.to_thread(env.tasks.get, episode.task_id)
    except (ReplayError, TaskError) as exc:
        return _row(episode, "skipped", why=f"cannot rebuild its task: {exc}")
    except Exception as exc:  # noqa: BLE001 - an env that cannot be built is this episode's answer
        return _row(episode, "skipped", why=f"cannot build env {episode.env_id!r}: {type(exc).__name__}: {exc}")
    needs = needs_of(env.judge, task)
    if needs is Needs.FINAL_STATE:
        return None
    try:
        if needs is Needs.RECORD:
            verdict = await env.judge.score(finished_episode(task, SealedSandbox(), episode.steps))
            how: How = "record"
        else:
            verdict = await checkers.run(
                env.provider, lambda sandbox: env.judge.score(finished_episode(task, sandbox, episode.steps))
            )
            how = "checker"
    except NeedsSandbox:
        return None
    except Exception as exc:  # noqa: BLE001 - a judge that cannot reach a verdict: this row says so
        return _row(episode, "failed", why=f"the judge reached no verdict: {type(exc).__name__}: {exc}")
    return _row(episode, how, verdict.reward, verdict=verdict.to_json())


async def _reexecute(
    run: RunDir, episodes: list[RecordedEpisode], run_dir: Path, config: ReplayConfig
) -> list[Rescored]:
    rows: list[Rescored] = []
    ready: list[RecordedEpisode] = []
    for episode in episodes:
        why = unreplayable(episode)
        if why is None:
            ready.append(episode)
        else:
            why = f"its judge reads the final state, and it cannot be re-executed: {why}"
            rows.append(_row(episode, "skipped", why=why))
    source = str(run.path.resolve())
    branches = [Branch(source, e.episode_id, len(e.steps), "rescore") for e in ready]
    results = await drive_once(ready, branches, run_dir=run_dir, config=config, name="rescore")
    verdicts = _verdicts(run_dir, [r.episode_id for r in results if r is not None])
    for episode, result in zip(ready, results):
        if result is None:
            rows.append(_row(episode, "failed", why="the re-execution was stopped"))
        elif result.ok:
            verdict = verdicts.get(result.episode_id)
            rows.append(_row(episode, "re-executed", result.reward, verdict=verdict, replay_episode_id=result.episode_id))
        else:
            why = f"the re-execution ended {result.reason.value}" + (f": {result.error}" if result.error else "")
            rows.append(_row(episode, "failed", why=why, replay_episode_id=result.episode_id))
    return rows


def _verdicts(run_dir: Path, episode_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The verdict each re-executed episode's last step recorded (the env's judge's evidence)."""
    found: dict[str, dict[str, Any]] = {}
    if not episode_ids:
        return found
    for episode in RunDir(run_dir).episodes(only=episode_ids):
        verdict = episode.steps[-1].info.get("verdict") if episode.steps else None
        if isinstance(verdict, dict):
            found[episode.episode_id] = verdict
    return found
