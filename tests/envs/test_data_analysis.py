"""boxgym/DataAnalysis-v0 on the fake sandbox (a real kernel on the host): every question family's
reference cell prints the constructed answer and scores 1; doing nothing, a wrong number and a
right number without the plot the task asks for score 0."""

from __future__ import annotations

import gymnasium as gym
import pytest

import boxgym.envs  # noqa: F401 - registers the ids
from boxgym.envs import reference_messages
from boxgym.envs.suites import data_analysis
from boxgym.judges.answer import parse_number
from boxgym.sandboxes import FakeProvider
from boxgym.toolsets import ToolCall

pytest.importorskip("ipykernel")
pytest.importorskip("pandas")


def _one_task_per_family():
    seen = {}
    for level in range(data_analysis.LEVELS):
        for seed in range(60):
            task = data_analysis.generate(seed, level)
            seen.setdefault(task.metadata["family"], task)
    return [pytest.param(task, id=family) for family, task in sorted(seen.items())]


FAMILIES = _one_task_per_family()


@pytest.fixture(scope="module")
def env():
    env = gym.make("boxgym/DataAnalysis-v0", provider=FakeProvider())
    yield env
    env.close()


def _play(env, task, messages):
    env.reset(options={"task_id": task.id})
    observations = []
    for message in messages:
        obs, reward, terminated, truncated, info = env.step(message)
        assert not info["infra_failure"], info["error"]
        observations.append(obs)
    return reward, terminated, info, observations


def _message(name, **arguments):
    return {"role": "assistant", "content": "", "tool_calls": [ToolCall("w", name, arguments).to_openai()]}


def test_there_are_three_families_per_level_at_four_levels():
    assert len(FAMILIES) == 12
    levels = sorted(param.values[0].difficulty for param in FAMILIES)
    assert levels == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]


@pytest.mark.parametrize("task", FAMILIES)
def test_the_reference_cell_prints_the_constructed_answer_and_scores_1(env, task):
    reward, terminated, info, observations = _play(env, task, reference_messages(task))
    assert (reward, terminated) == (1.0, True), info["verdict"]
    cell = observations[0][0]["content"]
    printed = parse_number(cell.split("[stdout]\n", 1)[1].split("\n")[0])
    expected = task.oracle
    assert printed is not None and abs(printed - float(expected.answer)) <= expected.abs_tol, (cell, expected)


@pytest.mark.parametrize("task", [FAMILIES[0], FAMILIES[-1]], ids=["a-count", "a-plot"])
def test_doing_nothing_and_a_wrong_number_score_0(env, task):
    nothing, *_ = _play(env, task, [_message("submit")])
    assert nothing == 0.0
    wrong = str(float(task.oracle.answer) + 1)
    reward, _, info, _ = _play(env, task, [_message("submit", answer=wrong)])
    assert reward == 0.0 and not info["verdict"]["passed"]


def _plot_task():
    return next(param.values[0] for param in FAMILIES if param.values[0].metadata.get("plot"))


def test_the_right_number_without_the_plot_scores_0(env):
    task = _plot_task()
    reward, _, info, _ = _play(env, task, [_message("submit", answer=task.oracle.answer)])
    assert reward == 0.0
    assert [c["name"] for c in info["verdict"]["checks"] if not c["passed"]] == ["plot plot.png"]


def test_a_plot_that_is_no_chart_does_not_count(env):
    task = _plot_task()
    tiny = "from PIL import Image\nImage.new('RGB', (10, 10)).save('plot.png')"
    reward, _, info, _ = _play(env, task, [_message("python", code=tiny), _message("submit", answer=task.oracle.answer)])
    assert reward == 0.0 and "too small to be a chart" in str(info["verdict"]["checks"])


def test_tasks_are_determined_by_their_id_and_their_answers_are_numbers():
    tasks = data_analysis.task_set()
    for level in range(data_analysis.LEVELS):
        first, again = tasks.get(f"analysis/d{level}/s7"), data_analysis.generate(7, level)
        assert first == again and first.difficulty == level
        assert parse_number(first.oracle.answer) is not None and first.oracle.mode == "numeric"
        assert set(first.files) == {
            0: {"orders.csv"},
            1: {"orders.json"},
            2: {"orders.csv", "products.json", "shop.db"},
            3: {"sensors.csv"},
        }[level]
        assert "The working directory holds" in first.prompt and "submit" in first.prompt
