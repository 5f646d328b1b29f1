"""The rollout manager: many concurrent episodes per process, streamed out for a trainer.

    from boxgym.rollout import RolloutManager, RolloutConfig, Task, ChatPolicy

    async with RolloutManager(make_env, ChatPolicy(base_url="http://127.0.0.1:8000/v1")) as manager:
        async for group in manager.run_groups([Task("t1", "boxgym/Shell-v0")], group_size=8):
            ...

See :mod:`boxgym.rollout.manager` (scheduling, partial rollout),
:mod:`boxgym.rollout.subagents` (PARL) and :mod:`boxgym.rollout.training`
(the output format for trainers).
"""

from .config import Budgets, Deadlines, IterationBudget, Limits, Retries, RolloutConfig, SubagentConfig
from .driver import EnvFactory, Judge, is_infra_failure
from .limiter import Limiter
from .manager import RolloutManager
from .metrics import RolloutMetrics
from .null import InstantPolicy, NullEnv
from .policy import CallablePolicy, ChatPolicy, ChatPolicyConfig, EpisodeView, Policy, as_completion
from .subagents import ConversationEnv, ParlShaping, critical_steps, parl_rewards
from .training import TRAINING_FORMAT_VERSION, TokenSequence, TrainingEpisode, to_training, training_to_json
from .types import AsyncEnv, Completion, EpisodeResult, Group, Outcome, Reason, Task, Verdict

__all__ = [
    "TRAINING_FORMAT_VERSION",
    "AsyncEnv",
    "Budgets",
    "CallablePolicy",
    "ChatPolicy",
    "ChatPolicyConfig",
    "Completion",
    "ConversationEnv",
    "Deadlines",
    "EnvFactory",
    "EpisodeResult",
    "EpisodeView",
    "Group",
    "InstantPolicy",
    "IterationBudget",
    "Judge",
    "Limiter",
    "Limits",
    "NullEnv",
    "Outcome",
    "ParlShaping",
    "Policy",
    "Reason",
    "Retries",
    "RolloutConfig",
    "RolloutManager",
    "RolloutMetrics",
    "SubagentConfig",
    "Task",
    "TokenSequence",
    "TrainingEpisode",
    "Verdict",
    "as_completion",
    "critical_steps",
    "is_infra_failure",
    "parl_rewards",
    "to_training",
    "training_to_json",
]
