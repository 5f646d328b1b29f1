"""Toggle: both phases on groups built by hand, budgets estimated once and stored with the run,
the phase following the manager's iterations, and the training view recording phase and budget."""

from __future__ import annotations

import json

import pytest

from boxgym.rollout import (
    Completion,
    EpisodeResult,
    Group,
    Outcome,
    Retries,
    RolloutConfig,
    RolloutManager,
    TaskRef,
    Toggle,
    ToggleBudgets,
    ToggleConfig,
    to_training,
    training_to_json,
)
from boxgym.rollout.grpo import grpo_batch
from boxgym.rollout.toggle import BUDGETS_FILENAME, toggle_rewards

from .testing_env import TokenPolicy, costly

TASK = TaskRef("sum/1", "boxgym/Code-v0")
K = 4


def episode(reward: float | None, length: int, index: int = 0, task: TaskRef = TASK) -> EpisodeResult:
    """An episode whose response is ``length`` sampled tokens."""
    completion = Completion({"role": "assistant", "content": "x"}, (1, 2), tuple(range(length)), (-0.1,) * length)
    return EpisodeResult(
        episode_id=f"e{index}", task=task, group_id="g", sample_index=index,
        outcome=Outcome.TERMINATED if reward is not None else Outcome.INFRA_FAILURE,
        reason="submitted" if reward is not None else "infra", reward=reward, reward_parts={},
        steps=1, completion_tokens=length, messages=(), completions=(completion,), timings={"policy": 0.1},
    )  # fmt: skip


def group(rewards_and_lengths: list[tuple[float | None, int]], iteration: int) -> Group:
    return Group("g", TASK, tuple(episode(r, n, i) for i, (r, n) in enumerate(rewards_and_lengths)), iteration)


@pytest.fixture
def budgets(tmp_path) -> ToggleBudgets:
    # Warm-up: correct answers of 100, 200, 300 and 400 tokens (and a wrong one of 5): the 50th
    # percentile of the correct lengths is 250.
    warmup = [episode(1.0, n, i) for i, n in enumerate((100, 200, 300, 400))] + [episode(0.0, 5, 9)]
    return ToggleBudgets.estimate(warmup, percentile=50, run_dir=tmp_path)


CONFIG = ToggleConfig(lam=0.6, period=2, percentile=50, group_size=K)


def test_phase_0_zeroes_correct_answers_over_the_budget_when_the_group_is_good(budgets):
    # Mean reward 0.75 >= lam: a solved task, so length counts.
    toggled = Toggle(CONFIG, budgets)(group([(1.0, 120), (1.0, 250), (1.0, 600), (0.0, 50)], iteration=0))
    assert [r.reward for r in toggled.results] == [1.0, 1.0, 0.0, 0.0]
    marks = [r.toggle for r in toggled.results]
    assert {(m.phase, m.budget, m.group_mean) for m in marks} == {(0, 250.0, 0.75)}  # type: ignore[union-attr]
    assert [m.raw_reward for m in marks] == [1.0, 1.0, 1.0, 0.0]  # type: ignore[union-attr]
    assert [m.length for m in marks] == [120, 250, 600, 50]  # type: ignore[union-attr]


def test_phase_0_keeps_every_reward_when_the_group_is_below_lambda(budgets):
    # Mean 0.5 < lam: the policy is still learning the task, so long answers keep their reward.
    toggled = Toggle(CONFIG, budgets)(group([(1.0, 900), (1.0, 800), (0.0, 10), (0.0, 20)], iteration=1))
    assert [r.reward for r in toggled.results] == [1.0, 1.0, 0.0, 0.0]
    assert {r.toggle.phase for r in toggled.results} == {0}  # type: ignore[union-attr]


def test_phase_1_keeps_every_reward(budgets):
    toggled = Toggle(CONFIG, budgets)(group([(1.0, 120), (1.0, 250), (1.0, 600), (0.0, 50)], iteration=2))
    assert [r.reward for r in toggled.results] == [1.0, 1.0, 1.0, 0.0]
    assert {(r.toggle.phase, r.toggle.budget) for r in toggled.results} == {(1, 250.0)}  # type: ignore[union-attr]


def test_the_phase_alternates_every_m_iterations_from_the_start():
    assert [CONFIG.phase(i) for i in range(9)] == [0, 0, 1, 1, 0, 0, 1, 1, 0]
    after_warmup = ToggleConfig(lam=0.6, period=3, percentile=50, group_size=K, start_iteration=1)
    assert [after_warmup.phase(i) for i in range(8)] == [0, 0, 0, 0, 1, 1, 1, 0]


def test_an_infrastructure_failure_stays_unscored_and_out_of_the_mean(budgets):
    # The mean is over the three verdicts (1.0): above lambda, so the long answer is cut.
    toggled = Toggle(CONFIG, budgets)(group([(1.0, 100), (1.0, 900), (None, 10), (1.0, 10)], iteration=0))
    assert [r.reward for r in toggled.results] == [1.0, 0.0, None, 1.0]
    assert toggled.results[2].toggle is None and toggled.results[0].toggle.group_mean == 1.0  # type: ignore[union-attr]


def test_a_task_without_a_budget_is_never_cut(budgets):
    other = TaskRef("never-solved", "boxgym/Code-v0")
    unknown = Group("g2", other, tuple(episode(1.0, 5000, i, other) for i in range(K)), 0)
    toggled = Toggle(CONFIG, budgets)(unknown)
    assert [r.reward for r in toggled.results] == [1.0] * K
    assert {r.toggle.budget for r in toggled.results} == {None}  # type: ignore[union-attr]


def test_a_group_of_the_wrong_size_is_refused(budgets):
    with pytest.raises(ValueError, match="K is 4"):
        Toggle(CONFIG, budgets)(group([(1.0, 1)] * 3, iteration=0))


def test_the_rule_itself():
    kept, mean = toggle_rewards([1.0, 0.5, None], [10, 30, 99], phase=0, budget=20, lam=0.5)
    assert kept == [1.0, 0.0, None] and mean == 0.75
    assert toggle_rewards([1.0, 0.5], [10, 30], phase=1, budget=20, lam=0.5)[0] == [1.0, 0.5]
    assert toggle_rewards([0.2, 0.4], [10, 30], phase=0, budget=20, lam=0.5)[0] == [0.2, 0.4]
    assert toggle_rewards([1.0], [None], phase=0, budget=20, lam=0.5)[0] == [1.0]  # unmeasured: not cut


def test_budgets_are_stored_with_the_run_and_never_re_estimated(budgets, tmp_path):
    stored = json.loads((tmp_path / BUDGETS_FILENAME).read_text())
    assert stored["budgets"] == {"boxgym/Code-v0": {"sum/1": 250.0}}
    assert stored["correct"] == {"boxgym/Code-v0": {"sum/1": 4}}
    assert (stored["percentile"], stored["measure"], stored["correct_at"]) == (50, "completion_tokens", 1.0)
    with pytest.raises(FileExistsError, match="estimated once per run"):
        ToggleBudgets.estimate([episode(1.0, 1)], percentile=50, run_dir=tmp_path)
    assert json.loads((tmp_path / BUDGETS_FILENAME).read_text()) == stored  # untouched
    loaded = ToggleBudgets.load(tmp_path)
    assert loaded.budget(TASK) == 250.0 and loaded.budget(TaskRef(None, "boxgym/Code-v0")) is None


def test_a_config_that_disagrees_with_the_stored_budgets_is_refused(budgets):
    with pytest.raises(ValueError, match="percentile 50"):
        Toggle(ToggleConfig(lam=0.6, period=2, percentile=90, group_size=K), budgets)


def test_the_training_view_records_phase_and_budget_beside_the_reward(budgets):
    toggled = Toggle(CONFIG, budgets)(group([(1.0, 120), (1.0, 250), (1.0, 600), (0.0, 50)], iteration=0))
    views = [to_training(r) for r in toggled.results]
    data = training_to_json(views[2])
    assert data["reward"] == 0.0
    assert data["toggle"] == {"phase": 0, "budget": 250.0, "length": 600, "raw_reward": 1.0, "group_mean": 0.75}
    batch = grpo_batch(views)
    assert batch["rewards"].tolist() == [1.0, 1.0, 0.0, 0.0]  # the trainer's advantages use r-tilde


async def test_toggle_over_the_managers_iterations(tmp_path):
    """A warm-up run, then training runs: the phase follows the manager's iteration."""
    config = RolloutConfig(retries=Retries(policy_backoff=0.0))
    async with RolloutManager(costly({}), TokenPolicy(), config=config, run_dir=tmp_path) as manager:
        warmup = await manager.collect([TaskRef("t", "e")], group_size=2)
        budgets = ToggleBudgets.estimate(warmup, percentile=50, run_dir=tmp_path)
        toggle = Toggle(ToggleConfig(lam=0.5, period=1, percentile=50, group_size=2, start_iteration=1), budgets)
        phases = []
        for _ in range(3):
            async for g in manager.run_groups([TaskRef("t", "e")], group_size=2):
                phases.append({r.toggle.phase for r in toggle(g).results})  # type: ignore[union-attr]
    assert budgets.budget(TaskRef("t", "e")) == 6.0  # three calls of 2 sampled tokens
    assert phases == [{0}, {1}, {0}]
