"""Simulated environments from spec files: a world the world model plays, and its tasks.

A spec file (TOML, or JSON of the same shape) describes one environment and its tasks::

    id = "travel"                     # task ids are "travel/<task id>"
    name = "Travel booking API"
    description = "..."               # what the world model plays
    rules = ["...", "..."]            # what it must respect
    [state]                           # the initial world state: any JSON object
    [state_schema]                    # optional: a JSON Schema every state must fit
    [[tools]]                         # a simulated tool: the world model answers it
    name = "search_flights"
    description = "..."
    parameters = {...}                # JSON Schema of the arguments
    output = {...}                    # JSON Schema the world model's output must fit
    [[tools]]
    name = "bash"
    real = true                       # run in the sandbox by the real toolset, with its own schema
    [[tasks]]
    id = "cheapest-direct"
    prompt = "..."                    # the agent's task (with a simulated user: the user's opening line)
    state = {...}                     # optional: replaces these top-level keys of the initial state
    files = {"report.md" = "..."}     # optional: placed in the sandbox, for the real tools
    user = {goal = "...", persona = "..."}   # optional: a simulated user who holds a hidden goal
    rubric = "..."                    # optional: what a judge model grades (rubric and/or checks)
    [[tasks.checks]]                  # rules over the final world state (boxgym.simulated.checks)
    path = "/bookings"
    includes = {flight = "TP541"}
    [[tasks.reference]]               # a solution, one call per step, with what a faithful
    name = "search_flights"           # world model (``world``: its answer, a table or JSON
    arguments = {...}                 # text) and user (``user``: the reply) say to it, so the
    world = {output = {...}}          # scripted engine can play them (reference_replies)

Every part is checked when the file is read (:func:`load_world`), so a malformed spec is a
:class:`~boxgym.errors.TaskError` naming the file, the task and the field, never a failure in
the middle of an episode. ``docs/simulated.md`` describes each field.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import TaskError
from ..toolsets.base import function_schema
from ..toolsets.calls import ToolCall
from .checks import StateCheck, check_schema, output_errors, schema_errors

if TYPE_CHECKING:
    from ..envs.tasks import StaticTaskSet, Task

__all__ = [
    "EXAMPLES",
    "MESSAGE_USER",
    "SimulatedUser",
    "ToolSpec",
    "WorldSpec",
    "WorldTask",
    "example_specs",
    "load_world",
    "reference_replies",
    "world_tasks",
]

#: The spec files shipped in ``boxgym/simulated/specs``.
EXAMPLES = ("calendar", "fileserver", "travel")
#: The system prompt of ``boxgym/Simulated-v0``: the environment itself is told by the tools.
SYSTEM_PROMPT = (
    "You are an AI agent that gets things done with the tools you are given. Use them to carry out the task. "
    "When the task is done, call submit (with the answer, if the task asks for one). If you are helping a "
    "user, ask them for what you need to know with message_user, and tell them what you did."
)
#: The tool through which the agent talks to a task's simulated user.
MESSAGE_USER = "message_user"
SUBMIT = "submit"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NO_ARGUMENTS = {"type": "object", "properties": {}, "additionalProperties": False}


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool of a world: answered by the world model, or ``real`` (run in the sandbox)."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] | None = None  # JSON Schema of the arguments (None for a real tool)
    output: Mapping[str, Any] | None = None  # JSON Schema of the output (None for a real tool)
    real: bool = False

    def schema(self) -> dict[str, Any]:
        """The OpenAI function schema the agent is offered (a simulated tool's)."""
        params = dict(self.parameters or _NO_ARGUMENTS)
        schema = function_schema(self.name, self.description, {}, [])
        schema["function"]["parameters"] = params
        return schema


@dataclass(frozen=True, slots=True)
class WorldSpec:
    """One simulated environment: what the world model is told, and the tools it answers."""

    id: str
    name: str
    description: str
    tools: tuple[ToolSpec, ...]
    state: Mapping[str, Any]
    rules: tuple[str, ...] = ()
    state_schema: Mapping[str, Any] | None = None
    submit: bool = True  # offer submit(answer?) besides the spec's tools

    def tool(self, name: str) -> ToolSpec | None:
        return next((tool for tool in self.tools if tool.name == name), None)


@dataclass(frozen=True, slots=True)
class SimulatedUser:
    """The person a task's agent serves: a goal the agent is not told, and who they are."""

    goal: str
    persona: str = ""


@dataclass(frozen=True, slots=True)
class WorldTask:
    """The oracle of a simulated task (``Task.oracle``): its world, initial state, hidden user,
    and how it is judged. ``answers`` is what a faithful world model and user say to each call of
    the task's reference (``None`` for a real tool or submit), for the scripted engine."""

    world: WorldSpec
    state: Mapping[str, Any]
    user: SimulatedUser | None = None
    checks: tuple[StateCheck, ...] = ()
    rubric: str | None = None
    answers: tuple[str | None, ...] = ()


def load_world(path: str | os.PathLike[str]) -> tuple[WorldSpec, tuple[Task, ...]]:
    """The world and the tasks of one spec file (``.toml`` or ``.json``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise TaskError(f"{path}: {exc}") from None
    return parse_world(document, str(path))


def example_specs() -> list[Path]:
    """The paths of the shipped example specs (:data:`EXAMPLES`)."""
    root = resources.files(__package__).joinpath("specs")
    return [Path(str(root.joinpath(f"{name}.toml"))) for name in EXAMPLES]


def world_tasks(*paths: str | os.PathLike[str]) -> StaticTaskSet:
    """One task set of every task of the given spec files (the shipped examples if none)."""
    from ..envs.tasks import StaticTaskSet

    tasks: list[Task] = []
    for path in paths or example_specs():
        tasks += load_world(path)[1]
    return StaticTaskSet(tasks)


def parse_world(document: Mapping[str, Any], source: str = "<spec>") -> tuple[WorldSpec, tuple[Task, ...]]:
    """The world and tasks of a parsed spec document (see the module docstring)."""
    where = f"{source}"
    _known(document, {"id", "name", "description", "rules", "state", "state_schema", "submit", "tools", "tasks"}, where)
    world_id = _text(document, "id", where)
    if not _NAME.match(world_id):
        raise TaskError(f"{where}: id must be letters, digits, _ or -, not {world_id!r}")
    state = document.get("state", {})
    if not isinstance(state, Mapping):
        raise TaskError(f"{where}: state must be a table (a JSON object)")
    state_schema = document.get("state_schema")
    if state_schema is not None:
        check_schema(state_schema, f"{where}: state_schema")
    rules = document.get("rules", [])
    if not (isinstance(rules, list) and all(isinstance(r, str) for r in rules)):
        raise TaskError(f"{where}: rules must be a list of strings")
    submit = document.get("submit", True)
    if not isinstance(submit, bool):
        raise TaskError(f"{where}: submit must be true or false")
    tools = tuple(_tool(entry, f"{where}: tool {i}") for i, entry in enumerate(document.get("tools") or []))
    if not tools:
        raise TaskError(f"{where}: needs at least one [[tools]]")
    names = [tool.name for tool in tools]
    if len(set(names)) != len(names) or MESSAGE_USER in names or (submit and SUBMIT in names):
        raise TaskError(f"{where}: tool names must be unique, and {MESSAGE_USER} and submit are the env's own")
    world = WorldSpec(
        world_id,
        str(document.get("name") or world_id),
        _text(document, "description", where),
        tools,
        dict(state),
        tuple(rules),
        state_schema,
        submit,
    )
    _fits(world.state, world, f"{where}: state")
    entries = document.get("tasks") or []
    if not isinstance(entries, list) or not entries:
        raise TaskError(f"{where}: needs at least one [[tasks]]")
    tasks = tuple(_task(entry, world, f"{where}: task {i}") for i, entry in enumerate(entries))
    if len({task.id for task in tasks}) != len(tasks):
        raise TaskError(f"{where}: task ids must be unique")
    return world, tasks


def _known(entry: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(entry) - known)
    if unknown:
        raise TaskError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise TaskError(f"{where}: needs {key} = \"...\"")
    return value.strip()


def _fits(state: Any, world: WorldSpec, where: str) -> None:
    if world.state_schema is not None:
        problems = schema_errors(state, world.state_schema)
        if problems:
            raise TaskError(f"{where} does not fit state_schema: {'; '.join(problems)}")


def _tool(entry: Any, where: str) -> ToolSpec:
    if not isinstance(entry, Mapping):
        raise TaskError(f"{where}: a tool is a table")
    _known(entry, {"name", "description", "parameters", "output", "real"}, where)
    name = _text(entry, "name", where)
    if not _NAME.match(name):
        raise TaskError(f"{where}: the tool name {name!r} must be 1-64 letters, digits, _ or -")
    where = f"{where} ({name})"
    if entry.get("real", False) is True:
        if "parameters" in entry or "output" in entry:
            raise TaskError(f"{where}: a real tool takes its schema from the real toolset: no parameters or output")
        return ToolSpec(name, real=True)
    if "output" not in entry:
        raise TaskError(f"{where}: a simulated tool needs an output schema (or real = true)")
    parameters = entry.get("parameters", _NO_ARGUMENTS)
    check_schema(parameters, f"{where}: parameters")
    if parameters.get("type") != "object":
        raise TaskError(f"{where}: parameters must be an object schema (type = \"object\")")
    check_schema(entry["output"], f"{where}: output")
    return ToolSpec(name, _text(entry, "description", where), parameters, entry["output"])


def _task(entry: Any, world: WorldSpec, where: str) -> Task:
    from ..envs.tasks import Task

    if not isinstance(entry, Mapping):
        raise TaskError(f"{where}: a task is a table")
    _known(
        entry,
        {"id", "prompt", "state", "files", "user", "rubric", "checks", "reference", "difficulty", "metadata"},
        where,
    )
    task_id = f"{world.id}/{_text(entry, 'id', where)}"
    where = f"{where} ({task_id})"
    overrides = entry.get("state", {})
    if not isinstance(overrides, Mapping):
        raise TaskError(f"{where}: state must be a table")
    state = {**world.state, **overrides}
    _fits(state, world, f"{where}: the initial state")
    user = _user(entry.get("user"), where)
    checks = tuple(
        StateCheck.from_spec(check, f"{where}: check {i}") if isinstance(check, Mapping) else _not_table(where)
        for i, check in enumerate(entry.get("checks") or [])
    )
    rubric = entry.get("rubric")
    if rubric is not None and (not isinstance(rubric, str) or not rubric.strip()):
        raise TaskError(f"{where}: rubric must be a non-empty string")
    if not checks and rubric is None:
        raise TaskError(f"{where}: needs checks over the final state, a rubric, or both")
    reference, answers = _reference(entry.get("reference") or [], world, user, where)
    difficulty = entry.get("difficulty", 0)
    if type(difficulty) is not int or difficulty < 0:
        raise TaskError(f"{where}: difficulty must be an integer >= 0")
    files = entry.get("files", {})
    if not (isinstance(files, Mapping) and all(isinstance(v, str) for v in files.values())):
        raise TaskError(f"{where}: files maps paths to text")
    oracle = WorldTask(world, state, user, checks, rubric.strip() if rubric else None, answers)
    metadata = {"world": world.id, **dict(entry.get("metadata", {}))}
    prompt = _text(entry, "prompt", where)
    return Task(task_id, prompt, oracle, dict(files), reference, difficulty, metadata)  # type: ignore[arg-type]


def _not_table(where: str) -> StateCheck:
    raise TaskError(f"{where}: a check is a table")


def _user(entry: Any, where: str) -> SimulatedUser | None:
    if entry is None:
        return None
    if not isinstance(entry, Mapping):
        raise TaskError(f"{where}: user is a table with a goal")
    _known(entry, {"goal", "persona"}, f"{where}: user")
    return SimulatedUser(_text(entry, "goal", f"{where}: user"), str(entry.get("persona", "")).strip())


def _reference(
    entries: Sequence[Any], world: WorldSpec, user: SimulatedUser | None, where: str
) -> tuple[tuple[ToolCall, ...], tuple[str | None, ...]]:
    calls: list[ToolCall] = []
    answers: list[str | None] = []
    for i, entry in enumerate(entries):
        at = f"{where}: reference {i}"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise TaskError(f"{at}: a reference call is a table with a name")
        _known(entry, {"name", "arguments", "world", "user"}, at)
        name, arguments = entry["name"], entry.get("arguments", {})
        if not isinstance(arguments, Mapping):
            raise TaskError(f"{at}: arguments must be a table")
        tool = world.tool(name)
        if name == MESSAGE_USER and user is not None:
            reply = entry.get("user")
            if not isinstance(reply, str):
                raise TaskError(f"{at}: a {MESSAGE_USER} call needs user = \"<the user's reply>\"")
            answers.append(reply)
        elif tool is not None and not tool.real:
            answer = entry.get("world")
            if isinstance(answer, str):  # the answer's JSON text (TOML has no null for a merge patch's deletions)
                try:
                    answer = json.loads(answer)
                except ValueError as exc:
                    raise TaskError(f"{at}: world is not JSON: {exc}") from None
            if not isinstance(answer, Mapping) or "output" not in answer:
                raise TaskError(f"{at}: a call of the simulated tool {name} needs world = {{output = ...}}")
            problems = schema_errors(dict(arguments), tool.parameters or _NO_ARGUMENTS)
            problems += output_errors(answer["output"], tool)
            if problems:
                raise TaskError(f"{at}: the call or its world answer does not fit {name}: {'; '.join(problems)}")
            answers.append(json.dumps(answer, ensure_ascii=False))
        elif (tool is not None and tool.real) or (name == SUBMIT and world.submit):
            answers.append(None)
        else:
            raise TaskError(f"{at}: {name!r} is not a tool of {world.id}")
        calls.append(ToolCall(f"ref_{i}", name, dict(arguments)))
    return tuple(calls), tuple(answers)


def reference_replies(task: Task) -> dict[str, list[str]]:
    """What a faithful world model (``"world"``) and user (``"user"``) say, in order, to the calls
    of ``task``'s reference: the scripts that let the scripted engine play them."""
    oracle = task.oracle
    if not isinstance(oracle, WorldTask):
        raise TaskError(f"task {task.id} is not a simulated task")
    replies: dict[str, list[str]] = {"world": [], "user": []}
    for call, answer in zip(task.reference, oracle.answers):
        if answer is not None:
            replies["user" if call.name == MESSAGE_USER else "world"].append(answer)
    return replies
