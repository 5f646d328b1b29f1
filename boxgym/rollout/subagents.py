"""Sub-agent rollouts (PARL, Kimi K2.5 report, appendix E.8).

Two tools are added to a root episode's tool list when the manager has a
:class:`~boxgym.rollout.config.SubagentConfig`:

* ``create_subagent(name, system_prompt)`` registers a sub-agent;
* ``assign_task(agent, prompt)`` starts a child episode of that sub-agent
  (its own policy calls, its own env, its own turn budget); every
  ``assign_task`` of one assistant message runs concurrently, and the parent
  gets each child's final message as that call's tool result.

The manager answers these calls itself; any other tool call of the same
message goes to the parent's env. Children inherit the parent's deadline and
are cancelled with it. Their results hang off the parent's result
(``children``), which is the tree the trajectory records as well
(``parent_episode_id``), and from which :func:`critical_steps`,
:func:`parl_rewards` and :class:`ParlShaping` are computed. An agent judge's
children (:mod:`~boxgym.rollout.agent_judge`, task env id
:data:`JUDGE_ENV_ID`) hang off the same tree but are not sub-agents: they run
after the episode acted, so the accounting leaves them out.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..trajectories import Outcome
from .config import SubagentConfig
from .state import Episode
from .types import EpisodeResult, TaskRef

if TYPE_CHECKING:
    from .driver import Driver, EnvFactory

__all__ = [
    "ASSIGN_TASK",
    "CREATE_SUBAGENT",
    "JUDGE_ENV_ID",
    "SUBAGENT_TOOL_SCHEMAS",
    "ConversationEnv",
    "ParlShaping",
    "SubagentTools",
    "critical_steps",
    "parl_rewards",
    "subagent_children",
]

#: The task env id of an agent judge's child episodes; a sub-agent's is "subagent".
JUDGE_ENV_ID = "agent_judge"

CREATE_SUBAGENT = "create_subagent"
ASSIGN_TASK = "assign_task"

SUBAGENT_TOOL_SCHEMAS: tuple[dict[str, Any], ...] = (
    {
        "type": "function",
        "function": {
            "name": CREATE_SUBAGENT,
            "description": "Create a sub-agent with a name and a system prompt; give it work with assign_task.",
            "parameters": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "A unique name for the sub-agent."},
                    "system_prompt": {"type": "string", "description": "The sub-agent's role and instructions."},
                },
                "required": ["name", "system_prompt"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": ASSIGN_TASK,
            "description": "Give a task to a sub-agent created earlier. Tasks assigned in one message run in "
            "parallel; each returns the sub-agent's final answer.",
            "parameters": {
                "type": "object",
                "properties": {
                    "agent": {"type": "string", "description": "The sub-agent's name."},
                    "prompt": {"type": "string", "description": "The task."},
                },
                "required": ["agent", "prompt"],
            },
        },
    },
)

_NAMES = frozenset((CREATE_SUBAGENT, ASSIGN_TASK))


class ConversationEnv:
    """A sub-agent's default env: system prompt + task, no tools; the first answer without
    tool calls ends the episode (reward 0: sub-agents are judged through their parent)."""

    def __init__(self) -> None:
        self.closed = False

    @staticmethod
    def factory(task: TaskRef, sandbox: Any) -> ConversationEnv:
        return ConversationEnv()

    async def areset(
        self, *, seed: int | None = None, options: Mapping[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        options = options or {}
        return [
            {"role": "system", "content": options.get("system_prompt", "")},
            {"role": "user", "content": options.get("prompt", "")},
        ], {"tools": []}

    async def astep(self, action: Any) -> tuple[list[dict[str, Any]], float, bool, bool, dict[str, Any]]:
        calls = action.get("tool_calls") if isinstance(action, Mapping) else None
        if calls:
            return [
                {"role": "tool", "tool_call_id": c.get("id", ""), "content": "error: no tools are available"}
                for c in calls
            ], 0.0, False, False, {}
        return [], 0.0, True, False, {}

    async def aclose(self) -> None:
        self.closed = True


def _name(call: Mapping[str, Any]) -> str:
    return (call.get("function") or {}).get("name", "")


def _args(call: Mapping[str, Any]) -> dict[str, Any] | None:
    raw = (call.get("function") or {}).get("arguments") or "{}"
    try:
        args = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (ValueError, TypeError):
        return None
    return args if isinstance(args, dict) else None


def _tool(call: Mapping[str, Any], content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call.get("id", ""), "content": content}


class SubagentTools:
    """Answers ``create_subagent`` / ``assign_task`` calls for one manager."""

    def __init__(self, config: SubagentConfig, env_factory: EnvFactory) -> None:
        self.config = config
        self.env_factory = env_factory
        self.schemas = [dict(s) for s in SUBAGENT_TOOL_SCHEMAS]
        self._custom_env = env_factory is not ConversationEnv.factory

    @staticmethod
    def wants(message: Mapping[str, Any]) -> bool:
        return any(_name(c) in _NAMES for c in message.get("tool_calls") or ())

    async def handle(
        self, driver: Driver, ep: Episode, message: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], float, bool, bool, dict[str, Any]]:
        calls = message.get("tool_calls") or []
        answers: dict[int, dict[str, Any]] = {}
        children: list[tuple[int, Episode]] = []
        for i, call in enumerate(calls):
            name = _name(call)
            if name not in _NAMES:
                continue
            args = _args(call)
            if args is None:
                answers[i] = _tool(call, f"error: {name} arguments are not a JSON object")
            elif name == CREATE_SUBAGENT:
                answers[i] = self._create(ep, call, args)
            else:
                agent, prompt = args.get("agent"), args.get("prompt")
                if not isinstance(agent, str) or agent not in (ep.subagents or {}):
                    answers[i] = _tool(call, f"error: no sub-agent named {agent!r}; create it first")
                elif not isinstance(prompt, str):
                    answers[i] = _tool(call, "error: assign_task needs a string prompt")
                else:
                    children.append((i, self._child(driver, ep, agent, prompt)))
        if children:
            gate = asyncio.Semaphore(self.config.max_parallel)

            async def run(child: Episode) -> EpisodeResult:
                async with gate:
                    return await driver.sub_rollout(child)

            finished = await asyncio.gather(*(run(child) for _, child in children))
            for (i, _), result in zip(children, finished, strict=True):
                ep.tasks_assigned += 1
                final = result.final_message
                if result.outcome is Outcome.TERMINATED and final is not None:
                    ep.tasks_finished += 1
                    answers[i] = _tool(calls[i], str(final.get("content") or ""))
                else:
                    answers[i] = _tool(calls[i], f"error: sub-agent {result.subagent_name} did not finish ({result.reason})")
        observation = [answers[i] for i in sorted(answers)]
        info: dict[str, Any] = {"subagent_episodes": [c.episode_id for _, c in children]} if children else {}
        others = [c for c in calls if _name(c) not in _NAMES]
        if not others:
            return observation, 0.0, False, False, info
        assert ep.env is not None
        env_obs, reward, terminated, truncated, env_info = await ep.env.astep({**message, "tool_calls": others})
        return observation + list(env_obs), reward, terminated, truncated, {**env_info, **info}

    def _create(self, ep: Episode, call: Mapping[str, Any], args: Mapping[str, Any]) -> dict[str, Any]:
        name, prompt = args.get("name"), args.get("system_prompt")
        if not isinstance(name, str) or not name or not isinstance(prompt, str):
            return _tool(call, "error: create_subagent needs a name and a system_prompt (strings)")
        if ep.subagents is None:
            ep.subagents = {}
        if name in ep.subagents:
            return _tool(call, f"error: a sub-agent named {name!r} exists already")
        if len(ep.subagents) >= self.config.max_subagents:
            return _tool(call, f"error: at most {self.config.max_subagents} sub-agents")
        ep.subagents[name] = prompt
        return _tool(call, f"created sub-agent {name!r}")

    def _child(self, driver: Driver, ep: Episode, agent: str, prompt: str) -> Episode:
        task = TaskRef(
            task_id=f"{ep.task.task_id}/{agent}",
            env_id="subagent",
            options={"system_prompt": (ep.subagents or {})[agent], "prompt": prompt},
            meta={"parent_task": ep.task.task_id},
        )
        return driver.child(
            ep,
            task,
            name=agent,
            env_factory=self.env_factory,
            max_turns=self.config.max_steps,
            frozen=self.config.frozen,
            share_sandbox=self.config.share_sandbox,
            # The default conversation env needs no sandbox: do not hold one for it.
            own_sandbox=self._custom_env,
            subagent_tools=True,  # children of children, as far as max_depth allows
        )


# -- accounting ------------------------------------------------------------------------------------


def subagent_children(result: EpisodeResult) -> tuple[EpisodeResult, ...]:
    """The episode's children that are sub-agents: all but agent judges' episodes."""
    return tuple(child for child in result.children if child.task.env_id != JUDGE_ENV_ID)


def critical_steps(result: EpisodeResult) -> int:
    """Σ over the episode's steps of (1 + the longest sub-agent started at that step), recursively.

    A step that starts sub-agents costs as long as the slowest of them, since
    they run in parallel; this is the latency-oriented length PARL optimizes.
    Judge episodes run after the episode acted and are not counted.
    """
    longest: dict[int, int] = {}
    for child in subagent_children(result):
        step = child.spawned_at_step if child.spawned_at_step is not None else -1
        longest[step] = max(longest.get(step, 0), critical_steps(child))
    return result.steps + sum(longest.values())


def parl_rewards(result: EpisodeResult, *, target_subagents: int = 1) -> tuple[float, float]:
    """``(r_parallel, r_finish)``: sub-agents instantiated (relative to a target, capped at 1)
    and the share of assigned sub-tasks that finished."""
    r_parallel = min(1.0, result.subagents_created / target_subagents) if target_subagents > 0 else 0.0
    r_finish = result.tasks_finished / result.tasks_assigned if result.tasks_assigned else 0.0
    return r_parallel, r_finish


@dataclass(frozen=True, slots=True)
class ParlShaping:
    """r = r_perf + λ1(t)·r_parallel + λ2(t)·r_finish, with λ annealed linearly to 0 over
    ``anneal_steps`` training steps (the auxiliary terms only bootstrap parallelism)."""

    lambda_parallel: float = 0.1
    lambda_finish: float = 0.1
    anneal_steps: int = 1000
    target_subagents: int = 1

    def weights(self, training_step: int) -> tuple[float, float]:
        scale = max(0.0, 1.0 - training_step / self.anneal_steps) if self.anneal_steps > 0 else 0.0
        return self.lambda_parallel * scale, self.lambda_finish * scale

    def reward(self, result: EpisodeResult, training_step: int) -> float | None:
        """The shaped reward; ``None`` when the episode has no verdict (never scored as 0)."""
        if result.reward is None:
            return None
        w_parallel, w_finish = self.weights(training_step)
        r_parallel, r_finish = parl_rewards(result, target_subagents=self.target_subagents)
        return result.reward + w_parallel * r_parallel + w_finish * r_finish
