"""Small frozen configuration objects for the rollout manager, one per concern.

    config = RolloutConfig(concurrency=Concurrency(episodes=4096, policy_calls=512),
                           deadlines=StageDeadlines(episode=1800.0),
                           budget=EpisodeBudget(max_tokens=32_768))
    quick = replace(config, deadlines=replace(config.deadlines, policy_call=60.0))

``None`` always means "no bound".
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["EpisodeBudget", "StageDeadlines", "IterationBudget", "Concurrency", "Retries", "RolloutConfig", "SubagentConfig"]


@dataclass(frozen=True, slots=True)
class Concurrency:
    """How many of each thing may be in flight at once.

    Each stage has its own bound, so a slow stage (sandboxes starting, an engine
    queueing, a judge) fills only its own slots and the others keep moving.
    """

    episodes: int = 1024  # admitted episodes (admission control); children of sub-agent tools are not counted
    sandbox_acquire: int | None = 64  # concurrent sandbox acquisitions (protects the container engine)
    policy_calls: int | None = 1024  # concurrent policy calls (protects the engine / gateway)
    judging: int | None = 64  # concurrent judge calls
    results_buffer: int = 1024  # finished results not yet taken by the consumer; full = backpressure

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.results_buffer < 1:
            raise ValueError("episodes and results_buffer must be >= 1")
        for name in ("sandbox_acquire", "policy_calls", "judging"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None")


@dataclass(frozen=True, slots=True)
class StageDeadlines:
    """How long each part of an episode may take, in seconds.

    Enforced by one watchdog per manager (not a timer per call: at 100k
    episodes a timer per step costs as much as the step), so a deadline fires
    within ``tick`` seconds of passing.
    """

    episode: float | None = 3600.0  # whole episode from admission, judging excluded
    sandbox_acquire: float | None = 300.0
    policy_call: float | None = 600.0  # one policy call, retries excluded
    env_step: float | None = 600.0  # one env.areset / env.astep
    judge: float | None = 600.0
    close: float = 30.0  # env.aclose + sandbox.aclose; past it the resource is abandoned and reported
    tick: float | None = None  # watchdog period; None = a tenth of the smallest deadline, in [0.005, 1]

    def watchdog_tick(self) -> float:
        if self.tick is not None:
            return self.tick
        bounds = [d for d in (self.episode, self.sandbox_acquire, self.policy_call, self.env_step, self.judge) if d]
        return min(1.0, max(0.005, min(bounds, default=10.0) / 10))


@dataclass(frozen=True, slots=True)
class EpisodeBudget:
    """What the trainer lets one episode spend, over any env: a cap on turns and tokens.

    The env's own rules (a BoxEnv's :class:`boxgym.envs.EpisodeLimits`: 30 turns, a time limit)
    end its episodes whatever this says; set ``max_turns`` here to cap every env of a run at
    once, or to bound an env that has no turn limit of its own. Either way the episode ends
    truncated with reason ``max_turns``. Sub-agent children have their own (SubagentConfig).
    """

    max_turns: int | None = None  # policy calls per episode; None: the env's own limit decides
    max_tokens: int | None = None  # completion tokens per episode
    # CPU-seconds of the episode's sandbox, as its env reports them after each step (a BoxEnv's
    # info["usage"]); past it the episode ends truncated with reason max_sandbox_cpu.
    max_sandbox_cpu_s: float | None = None


@dataclass(frozen=True, slots=True)
class Retries:
    """What is retried when infrastructure fails (never when the agent fails)."""

    policy_call_attempts: int = 3  # per call, on an engine / gateway failure
    policy_backoff: float = 0.5  # seconds, doubled per attempt
    episode_attempts: int = 2  # whole episode on a fresh env and sandbox, on an infrastructure failure


@dataclass(frozen=True, slots=True)
class IterationBudget:
    """Partial rollout: when one ``run`` iteration stops admitting and pauses what is still running.

    Paused episodes keep their full state (messages, completions, env and
    sandbox alive) and the next ``run`` resumes them first.
    """

    max_tokens: int | None = None  # completion tokens sampled in this iteration
    max_seconds: float | None = None  # wall time of this iteration
    max_episodes: int | None = None  # finished episodes in this iteration


@dataclass(frozen=True, slots=True)
class SubagentConfig:
    """The PARL tools (``create_subagent``, ``assign_task``), off unless given.

    ``frozen`` children's tokens are excluded from training output (PARL
    trains the orchestrator with frozen sub-agents).
    """

    max_subagents: int = 8  # per parent episode (create_subagent calls past it are refused)
    max_steps: int = 20  # turn budget of each child episode
    max_parallel: int = 8  # assign_task calls run concurrently from one parent step
    max_depth: int = 1  # children of children: 1 = only the root spawns
    frozen: bool = True
    share_sandbox: bool = False  # children get the parent's sandbox instead of their own


@dataclass(frozen=True, slots=True)
class RolloutConfig:
    concurrency: Concurrency = field(default_factory=Concurrency)
    deadlines: StageDeadlines = field(default_factory=StageDeadlines)
    budget: EpisodeBudget = field(default_factory=EpisodeBudget)
    retries: Retries = field(default_factory=Retries)
    subagents: SubagentConfig | None = None
    record_steps: bool = True  # write a StepRecord per step when the manager has a run directory
    # Keep Python's garbage collector off while a burst of episodes is admitted: the manager's own
    # synchronous loop, so no other coroutine runs meanwhile (other threads do, and their garbage is
    # collected after the burst instead of during it). A collector the process turned off stays off.
    gc_pause_admission: bool = True
    keep_messages: bool = True  # results carry the full message list (off: only the last message)
