"""BoxEnv's cost judge, judges that prepare the sandbox, and the runtime figures, on the fake sandbox."""

from __future__ import annotations

import pytest

from boxgym.envs import BoxEnv, StaticTaskSet, Task
from boxgym.errors import JudgeError
from boxgym.judges import AnswerJudge, ExpectedAnswer, FinishedEpisode, PreparesSandbox, Verdict
from boxgym.sandboxes import FakeProvider
from boxgym.toolsets import ShellToolset
from boxgym.trajectories import EpisodeEnd, Outcome, StepRecord, TrajectoryWriter, read_records

QUESTION = Task("q", "What is 6 * 7?", ExpectedAnswer("42", "numeric"), files={"hint.txt": "multiply"})


def call(name, **arguments):
    import json

    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


class CostOfWords:
    """A cost judge: 1 per mention of "rm" in the steps, and it records the order judges ran in."""

    def __init__(self, order: list[str] | None = None, fail: bool = False) -> None:
        self.order = order if order is not None else []
        self.fail = fail
        self.prepared: list[tuple[str, bytes]] = []

    async def prepare(self, sandbox, task) -> None:
        self.prepared.append((task.id, await sandbox.read_file("hint.txt")))

    async def score(self, episode: FinishedEpisode) -> Verdict:
        self.order.append("cost")
        if self.fail:
            raise JudgeError("the cost model is down")
        hits = sum(str(step.action).count("rm ") for step in episode.steps)
        return Verdict(float(hits), hits == 0, parts={"rm": float(hits)})


class Ordered:
    def __init__(self, order: list[str]) -> None:
        self.order = order

    async def score(self, episode: FinishedEpisode) -> Verdict:
        self.order.append("judge")
        return await AnswerJudge().score(episode)


def make(cost, *, writer=None, judge=None) -> BoxEnv:
    return BoxEnv(
        provider=FakeProvider(),
        tasks=StaticTaskSet([QUESTION]),
        judge=judge or AnswerJudge(),
        toolset=ShellToolset(),
        system_prompt="You are tested.",
        cost=cost,
        writer=writer,
    )


async def test_the_cost_is_scored_before_the_judge_and_reported_beside_the_reward(tmp_path):
    order: list[str] = []
    writer = TrajectoryWriter(tmp_path)
    env = make(CostOfWords(order), writer=writer, judge=Ordered(order))
    await env.areset(options={"task_id": "q"})
    _, reward, _, _, info = await env.astep(call("bash", command="rm -f hint.txt"))
    assert (reward, info["cost"], info["cost_parts"], info["cost_verdict"]) == (0.0, None, {}, None)
    _, reward, terminated, _, info = await env.astep(call("submit", answer="42"))
    assert terminated and reward == 1.0
    assert order == ["cost", "judge"]
    assert info["cost"] == 1.0 and info["cost_parts"] == {"rm": 1.0}
    assert info["cost_verdict"]["passed"] is False and set(info["timings"]) >= {"cost_s", "judge_s"}
    await env.aclose()
    writer.close()
    records = list(read_records(tmp_path))
    last_step = [r for r in records if isinstance(r, StepRecord)][-1]
    assert last_step.info["cost_verdict"]["reward"] == 1.0
    [end] = [r for r in records if isinstance(r, EpisodeEnd)]
    assert (end.reward, end.cost, end.cost_parts) == (1.0, 1.0, {"rm": 1.0})
    assert end.usage["tool_s"] > 0


async def test_without_a_cost_judge_the_cost_is_none():
    env = make(None)
    await env.areset(options={"task_id": "q"})
    *_, info = await env.astep(call("submit", answer="42"))
    assert info["cost"] is None and info["cost_parts"] == {} and "cost_s" not in info["timings"]
    await env.aclose()


async def test_a_failing_cost_judge_is_an_infrastructure_failure_and_the_judge_does_not_run(tmp_path):
    order: list[str] = []
    writer = TrajectoryWriter(tmp_path)
    env = make(CostOfWords(order, fail=True), writer=writer, judge=Ordered(order))
    await env.areset(options={"task_id": "q"})
    _, reward, terminated, _, info = await env.astep(call("submit", answer="42"))
    assert terminated and info["infra_failure"] and "the cost model is down" in info["error"]
    assert order == ["cost"] and info["cost"] is None and reward == 0.0
    await env.aclose()
    writer.close()
    [end] = [r for r in read_records(tmp_path) if isinstance(r, EpisodeEnd)]
    assert end.outcome is Outcome.INFRA_FAILURE and end.reward is None and end.cost is None


async def test_a_judge_that_prepares_sees_the_sandbox_after_the_tasks_files_are_placed():
    cost = CostOfWords()
    assert isinstance(cost, PreparesSandbox)
    env = make(cost)
    await env.areset(options={"task_id": "q"})
    assert cost.prepared == [("q", b"multiply")]
    await env.aclose()


async def test_a_failed_prepare_fails_the_reset_as_infrastructure():
    class Refuses(CostOfWords):
        async def prepare(self, sandbox, task) -> None:
            raise JudgeError("no room for bait")

    env = make(Refuses())
    _, info = await env.areset(options={"task_id": "q"})
    assert info["infra_failure"] and "no room for bait" in info["error"]
    _, _, terminated, _, info = await env.astep(call("submit", answer="42"))
    assert terminated and info["infra_failure"]
    await env.aclose()


async def test_usage_after_every_step_tool_time_grows_and_the_fake_measures_no_sandbox():
    env = make(None)
    await env.areset(options={"task_id": "q"})
    *_, first = await env.astep(call("bash", command="sleep 0.05"))
    *_, second = await env.astep(call("bash", command="sleep 0.05"))
    assert first["usage"]["tool_s"] >= 0.05 and second["usage"]["tool_s"] >= first["usage"]["tool_s"] + 0.05
    assert second["usage"]["sandbox_cpu_s"] is None and second["usage"]["sandbox_peak_memory_mb"] is None
    await env.aclose()


@pytest.mark.parametrize("judge_kind", ["cost", "judge"])
async def test_a_preparing_judge_is_prepared_in_either_place(judge_kind):
    preparer = CostOfWords()
    env = make(preparer) if judge_kind == "cost" else make(None, judge=preparer)
    await env.areset(options={"task_id": "q"})
    assert len(preparer.prepared) == 1
    await env.aclose()


async def test_one_object_given_as_judge_and_cost_is_prepared_once():
    both = CostOfWords()
    env = make(both, judge=both)
    await env.areset(options={"task_id": "q"})
    assert len(both.prepared) == 1
    await env.aclose()
