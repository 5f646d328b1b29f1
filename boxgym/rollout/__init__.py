"""The rollout manager: many concurrent episodes per process, streamed out for a trainer.

    from boxgym.envs import EnvFactory
    from boxgym.gateway import Gateway, GatewayConfig, UpstreamConfig
    from boxgym.rollout import ChatPolicy, RolloutManager, TaskRef, to_training
    from boxgym.rollout.grpo import grpo_batch

    async with Gateway(GatewayConfig(upstream=UpstreamConfig("http://127.0.0.1:8000"))) as gateway, \
            ChatPolicy() as policy, \
            RolloutManager(EnvFactory(), policy, gateway=gateway, run_dir="runs/r1") as manager:
        async for group in manager.run_groups([TaskRef("code/d0/s1", "boxgym/Code-v0")], group_size=8):
            batch = grpo_batch([to_training(result) for result in group.results])

* :mod:`~boxgym.rollout.manager`: admission, the results stream, groups,
  cancellation, partial rollout (pause / resume across ``run`` calls);
* :mod:`~boxgym.rollout.driver`: one episode's coroutine (stages, deadlines,
  failures, retries) and :mod:`~boxgym.rollout.config` for every bound;
* :mod:`~boxgym.rollout.policy`: the OpenAI chat policy and the plain callable;
* :mod:`~boxgym.rollout.agent`: a black-box agent loop (your own OpenAI client) as a policy;
* :mod:`~boxgym.rollout.subagents`: PARL tools, critical steps, r_parallel / r_finish;
* :mod:`~boxgym.rollout.agent_judge`: a judge agent run as a child rollout of the episode it judges;
* :mod:`~boxgym.rollout.training`: the versioned output format for trainers,
  and :mod:`~boxgym.rollout.grpo` an example NumPy adapter;
* :mod:`~boxgym.rollout.usage`: an episode's runtime figures, and a cost made of them;
* :mod:`~boxgym.rollout.toggle`: Toggle, K2.5's budget rule over a group's rewards;
* :mod:`~boxgym.rollout.null`: a null env and an instant policy (benchmark, tests);
* :mod:`~boxgym.rollout.ray`: one manager per Ray actor, driven as one (the ``ray`` extra;
  not imported from here).
"""

from ..judges.base import Verdict
from .agent import AgentPolicy, AgentSession
from .agent_judge import AgentJudge, JudgeEnv, JudgePrompt
from .config import EpisodeBudget, StageDeadlines, IterationBudget, Concurrency, Retries, RolloutConfig, SubagentConfig
from .driver import MakeEnv, RolloutJudge
from .limiter import Limiter
from .manager import RolloutManager
from .metrics import RolloutMetrics
from .null import InstantPolicy, NullEnv
from .policy import CallablePolicy, ChatPolicy, ChatPolicyConfig, EpisodeAware, EpisodeView, Policy, as_completion
from .subagents import ConversationEnv, ParlShaping, critical_steps, parl_rewards
from .training import TRAINING_FORMAT_VERSION, TokenSequence, TrainingEpisode, to_training, training_to_json
from .toggle import Toggle, ToggleBudgets, ToggleConfig
from .types import AsyncEnv, Completion, EndReason, EpisodeResult, Group, Outcome, TaskRef, ToggleMark
from .usage import EpisodeUsage, UsageCost

__all__ = [
    "TRAINING_FORMAT_VERSION",
    "AgentJudge",
    "AgentPolicy",
    "AgentSession",
    "AsyncEnv",
    "EpisodeBudget",
    "CallablePolicy",
    "ChatPolicy",
    "ChatPolicyConfig",
    "Completion",
    "ConversationEnv",
    "StageDeadlines",
    "EndReason",
    "EpisodeAware",
    "EpisodeResult",
    "EpisodeUsage",
    "EpisodeView",
    "Group",
    "InstantPolicy",
    "IterationBudget",
    "JudgeEnv",
    "JudgePrompt",
    "Limiter",
    "Concurrency",
    "NullEnv",
    "Outcome",
    "ParlShaping",
    "Policy",
    "RolloutJudge",
    "MakeEnv",
    "Retries",
    "RolloutConfig",
    "RolloutManager",
    "RolloutMetrics",
    "SubagentConfig",
    "TaskRef",
    "Toggle",
    "ToggleBudgets",
    "ToggleConfig",
    "ToggleMark",
    "TokenSequence",
    "TrainingEpisode",
    "UsageCost",
    "Verdict",
    "as_completion",
    "critical_steps",
    "parl_rewards",
    "to_training",
    "training_to_json",
]
