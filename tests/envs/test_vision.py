"""boxgym/Vision-v0 without Docker: generation is deterministic per seed, every kind's reference
answer scores 1 through its visual judge, wrong answers score low, the image reaches the policy
with the prompt, and the pixel-only solver reads levels 0-1 on the host."""

from __future__ import annotations

import asyncio
import base64
import io
import json

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

import boxgym.envs  # noqa: F401 - registers the ids
from boxgym.envs.suites import vision, vision_solver
from boxgym.envs.tasks import Task
from boxgym.errors import TaskError
from boxgym.judges.base import FinishedEpisode
from boxgym.judges.answer import ExpectedAnswer
from boxgym.sandboxes import FakeProvider
from boxgym.toolsets import ToolCall

pytest.importorskip("scipy")


def _one_per_kind_and_level() -> list:
    seen: dict[tuple[str, int], Task] = {}
    for level in range(vision.LEVELS):
        for seed in range(60):
            task = vision.generate(seed, level)
            seen.setdefault((task.metadata["kind"], level), task)
    return [pytest.param(task, id=f"{kind}-d{level}") for (kind, level), task in sorted(seen.items())]


TASKS = _one_per_kind_and_level()


def _score(task: Task, answer: str | None) -> float:
    episode = FinishedEpisode(task, None, submitted=answer is not None, submission=answer)  # type: ignore[arg-type]
    return asyncio.run(vision.judge().score(episode)).reward


def _pixels(task: Task) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(task.files[vision.IMAGE])).convert("RGB"), dtype=np.float64)


def test_every_kind_appears_at_every_level():
    assert len(TASKS) == len(vision.KINDS) * vision.LEVELS


@pytest.mark.parametrize("level", range(vision.LEVELS))
def test_the_same_seed_draws_the_same_task_and_another_seed_another(level):
    a, b = vision.generate(7, level), vision.generate(7, level)
    assert a == b and a.files[vision.IMAGE] == b.files[vision.IMAGE]
    assert vision.task_set().get(a.id) == a
    assert vision.generate(8, level).files[vision.IMAGE] != a.files[vision.IMAGE]


@pytest.mark.parametrize("task", TASKS)
def test_the_reference_answer_scores_1(task):
    image = Image.open(io.BytesIO(task.files[vision.IMAGE]))
    assert image.size == (512, 384) and task.images == (vision.IMAGE,)
    assert _score(task, task.reference[-1].arguments["answer"]) == 1.0


def _wrong(task: Task) -> str:
    answer = task.reference[-1].arguments["answer"]
    kind = task.metadata["kind"]
    if kind in ("box", "point", "polygon"):
        coords = json.loads(answer)
        shift = [100 if i % 2 == 0 else 80 for i in range(len(coords[0]))]  # far to the right and down
        return json.dumps([[(v + d) % 500 for v, d in zip(item, shift)] for item in coords])
    if kind == "ocr":
        return answer[::-1] + "QQQ"
    if kind == "count":
        return str(int(answer) + 5)
    return str(float(answer) + 3 * task.oracle.abs_tol)  # a chart value, well outside the tolerance


@pytest.mark.parametrize("task", TASKS)
def test_a_wrong_answer_scores_low_and_no_answer_or_a_malformed_one_0(task):
    assert _score(task, _wrong(task)) < 0.3
    assert _score(task, None) == 0.0
    assert _score(task, "I cannot see the image") == 0.0 or task.metadata["kind"] == "ocr"


def test_a_chart_answer_counts_within_two_percent_of_the_axis():
    task = next(p.values[0] for p in TASKS if p.values[0].metadata["kind"] == "chart")
    assert isinstance(task.oracle, ExpectedAnswer)
    value, tolerance = float(task.oracle.answer), task.oracle.abs_tol
    assert _score(task, str(value + tolerance * 0.9)) == 1.0
    assert _score(task, str(value + tolerance * 1.5)) == 0.0


def test_an_image_must_be_one_of_the_tasks_files():
    with pytest.raises(TaskError, match="image"):
        Task("t", "look", ExpectedAnswer("1"), files={"a.txt": "text"}, images=("a.txt",))


def test_the_first_observation_shows_the_image_the_sandbox_holds():
    env = gym.make("boxgym/Vision-v0", provider=FakeProvider())
    try:
        obs, info = env.reset(seed=3, options={"difficulty": 1})
        task = env.unwrapped.tasks.get(info["task_id"])
        text, image = obs[1]["content"]
        assert obs[1]["role"] == "user" and text == {"type": "text", "text": task.prompt}
        url = image["image_url"]["url"]
        assert base64.b64decode(url.split(",", 1)[1]) == task.files[vision.IMAGE]
        submit = {"role": "assistant", "content": "", "tool_calls": [ToolCall("s", "submit", task.reference[0].arguments).to_openai()]}
        _, reward, terminated, _, info = env.step(submit)
        assert (reward, terminated) == (1.0, True), info["verdict"]
    finally:
        env.close()


def _mean_solver_reward(level: int, seeds: range) -> tuple[float, dict[str, float]]:
    by_kind: dict[str, list[float]] = {}
    for seed in seeds:
        task = vision.generate(seed, level)
        try:
            answer: str | None = vision_solver.solve(_pixels(task), task.metadata)
        except (ValueError, IndexError):  # a chart it cannot find its axes in: no answer, as in the kernel
            answer = None
        by_kind.setdefault(task.metadata["kind"], []).append(_score(task, answer))
    rewards = [r for rs in by_kind.values() for r in rs]
    return float(np.mean(rewards)), {kind: float(np.mean(rs)) for kind, rs in by_kind.items()}


@pytest.mark.parametrize("level", [0, 1])
def test_the_pixel_solver_reads_levels_0_and_1(level):
    mean, by_kind = _mean_solver_reward(level, range(100, 124))
    assert mean >= 0.9 and min(by_kind.values()) >= 0.8, by_kind


def test_the_pixel_solver_does_worse_on_rotated_level_3():
    easy, _ = _mean_solver_reward(0, range(200, 218))
    hard, _ = _mean_solver_reward(3, range(200, 218))
    assert hard < easy - 0.15


def test_the_solver_cell_is_this_modules_code_and_its_answer_is_read_back():
    cell = vision_solver.solver_cell({"kind": "ocr"})
    assert "def read_text" in cell and cell.rstrip().endswith("{'kind': 'ocr', 'colour': None, 'shape': None, 'label': None, 'style': None}))")
    assert "from __future__ import annotations\n" not in cell
    assert vision_solver.read_answer("noise\nANSWER: AB 12\n") == "AB 12"
    assert vision_solver.read_answer("Traceback ...") is None
