"""Reward and cost through the manager, the runtime figures of every episode, a CPU budget,
and what the trainer gets: the training view and grpo_batch carry both signals."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from boxgym.rollout import (
    EndReason,
    EpisodeBudget,
    EpisodeUsage,
    Outcome,
    Retries,
    RolloutConfig,
    RolloutManager,
    TaskRef,
    UsageCost,
    to_training,
    training_to_json,
)
from boxgym.rollout.grpo import grpo_batch
from boxgym.trajectories import EpisodeEnd, read_records

from .testing_env import CostlyEnv, TokenPolicy, costly

FAST = RolloutConfig(retries=Retries(policy_backoff=0.0))


async def test_the_envs_cost_and_figures_reach_the_result_the_records_and_the_training_view(tmp_path):
    async with RolloutManager(costly({"a": 2.0}), TokenPolicy(), config=FAST, run_dir=tmp_path) as manager:
        [result] = await manager.collect([TaskRef("a")])
    assert (result.reward, result.cost, dict(result.cost_parts)) == (1.0, 2.0, {"network": 2.0})
    usage = result.usage
    # TokenPolicy's prompts are the history so far: 3, then 6, then 9 tokens; 2 sampled per call.
    assert usage == EpisodeUsage(
        prompt_tokens=3 + 6 + 9, completion_tokens=6, model_s=result.timings["policy"], tool_s=0.75,
        sandbox_cpu_s=1.5, sandbox_peak_memory_mb=43.0,
    )  # fmt: skip
    [end] = [r for r in read_records(tmp_path) if isinstance(r, EpisodeEnd)]
    assert (end.reward, end.cost, end.cost_parts) == (1.0, 2.0, {"network": 2.0})
    assert end.usage == usage.to_json()
    data = training_to_json(to_training(result))
    assert data["format_version"] == 2
    assert (data["reward"], data["cost"], data["cost_parts"]) == (1.0, 2.0, {"network": 2.0})
    assert data["usage"] == usage.to_json() and data["toggle"] is None


async def test_an_env_without_a_cost_gives_none_and_its_figures_none_where_unmeasured():
    class Plain(CostlyEnv):
        async def astep(self, action: Any):
            observation, reward, done, truncated, _ = await super().astep(action)
            return observation, reward, done, truncated, {}

    async with RolloutManager(lambda t, s: Plain(None), TokenPolicy(), config=FAST) as manager:
        [result] = await manager.collect([TaskRef("a")])
    assert result.cost is None and result.cost_parts == {}
    usage = result.usage
    assert (usage.tool_s, usage.sandbox_cpu_s, usage.sandbox_peak_memory_mb) == (None, None, None)
    assert usage.completion_tokens == 6 and usage.model_s >= 0


async def test_the_managers_usage_cost_replaces_the_envs():
    cost = UsageCost({"sandbox_cpu_s": 2.0, "completion_tokens": 0.5})
    async with RolloutManager(costly({"a": 9.0}), TokenPolicy(), config=FAST, cost=cost) as manager:
        [result] = await manager.collect([TaskRef("a")])
    assert result.cost == pytest.approx(2.0 * 1.5 + 0.5 * 6)
    assert result.cost_parts == {"network": 9.0, "sandbox_cpu_s": 3.0, "completion_tokens": 3.0}
    assert result.reward == 1.0  # the env's reward stands: there is no manager judge


async def test_a_usage_cost_says_which_figure_was_not_measured():
    cost = UsageCost({"sandbox_cpu_s": 1.0})

    class Unmeasured(CostlyEnv):
        async def astep(self, action: Any):
            observation, reward, done, truncated, _ = await super().astep(action)
            return observation, reward, done, truncated, {"usage": {"tool_s": 0.1, "sandbox_cpu_s": None}}

    async with RolloutManager(lambda t, s: Unmeasured(None), TokenPolicy(), config=FAST, cost=cost) as manager:
        [result] = await manager.collect([TaskRef("a")])
    assert result.cost == 0.0
    with pytest.raises(ValueError, match="no_such"):
        UsageCost({"no_such": 1.0})


async def test_the_sandbox_cpu_budget_truncates_the_episode():
    config = RolloutConfig(retries=Retries(policy_backoff=0.0), budget=EpisodeBudget(max_sandbox_cpu_s=1.0))
    async with RolloutManager(costly({}, cpu_per_step=0.6, steps=5), TokenPolicy(), config=config) as manager:
        [result] = await manager.collect([TaskRef("a")])
    assert result.outcome is Outcome.TRUNCATED and result.reason is EndReason.MAX_SANDBOX_CPU
    assert result.steps == 2 and result.usage.sandbox_cpu_s == pytest.approx(1.2)
    assert result.reward == 0.0  # scored (truncated), with what the episode earned by then


async def test_groups_carry_the_managers_iteration():
    async with RolloutManager(costly({}), TokenPolicy(), config=FAST) as manager:
        assert manager.iteration == 0
        first = [g async for g in manager.run_groups([TaskRef("a")], group_size=2)]
        assert manager.iteration == 1
        second = [g async for g in manager.run_groups([TaskRef("b")], group_size=2)]
        third = [r async for r in manager.run([TaskRef("c")])]
    assert [g.iteration for g in first + second] == [0, 1]
    assert len(third) == 1 and manager.iteration == 3


async def test_grpo_batch_exports_costs_and_their_group_relative_advantages():
    costs = {"a": 0.0, "b": 1.0, "c": None, "d": 3.0}
    async with RolloutManager(costly(costs), TokenPolicy(), config=FAST) as manager:
        results = await manager.collect([TaskRef(t) for t in "abcd"])
    results.sort(key=lambda r: r.task.task_id)
    batch = grpo_batch([to_training(r) for r in results])
    assert batch["costs"].tolist()[:2] == [0.0, 1.0] and math.isnan(batch["costs"][2]) and batch["costs"][3] == 3.0
    # Over the episodes that have a cost (a, b, d): (c - mean) / std; none for c.
    known = np.array([0.0, 1.0, 3.0])
    expected = (known - known.mean()) / (known.std() + 1e-6)
    mask = batch["loss_mask"]
    per_row = [float(batch["cost_advantages"][row][mask[row] > 0][0]) for row in range(4)]
    assert per_row == pytest.approx([expected[0], expected[1], 0.0, expected[2]], abs=1e-5)
    assert np.all(batch["cost_advantages"][mask == 0] == 0)
    assert np.all(batch["advantages"] == 0)  # the same reward everywhere: the reward says nothing here
