"""ScienceWorld in a sandbox: the program that the ``blackbox`` tool-server plugin runs.

This file is not imported by boxgym: :mod:`boxgym.blackbox.scienceworld` sends its source to
the sandbox, where the sandbox's own Python runs it (as the simulator's user, beside a JVM of
its own). It needs only the ``scienceworld`` package (its jar and py4j) and a Java runtime.

It drives ScienceWorld through the package's own Python API, ``ScienceWorldEnv``, unchanged
but for how the JVM is reached: the package starts py4j's gateway with no authentication and
a Python callback server, both on loopback TCP, which every process in the sandbox shares
with the agent. Here the gateway requires a token (read from the JVM's own stdout, never on a
command line) and no callback server is started, so the agent cannot drive the simulator
behind the env's back. The JVM also refuses attach and keeps no perf-data file.

Protocol (JSON lines, :mod:`boxgym.sandboxes.toolserver.ops_blackbox`): the first line says
it is ready (with the seconds the imports and the JVM took); then one reply per request:

* ``{"op": "catalog"}`` -> ``{"tasks": [{"name", "id", "topic", "title"}], "simplifications"}``
* ``{"op": "variations", "task"}`` -> ``{"task", "train", "dev", "test"}`` (loads the task)
* ``{"op": "load", "task", "variation", "simplifications", "step_limit"}`` -> the first
  observation: ``{"task", "variation", "task_description", "observation", "score", "moves"}``
* ``{"op": "step", "action"}`` -> ``{"observation", "points", "score", "moves", "done", "completed"}``
* ``{"op": "valid_actions"}`` -> ``{"valid": [...]}``: what ScienceWorld accepts now (its
  ``step`` would list them after every command; here they are listed when asked, as that costs
  more than the command)
* ``{"op": "gold", "task", "variation", "simplifications"}`` -> ``{"actions": [...]}`` (leaves
  the simulator on that task's start: load again before stepping)

A request it cannot serve is ``{"error": ..., "kind": "bad_request"}``; a failure of the
simulator itself ``{"error": ..., "kind": "simulator"}``.
"""

import json
import os
import sys
import tempfile
import time

JAVA_OPTIONS = ["-XX:-UsePerfData", "-XX:+DisableAttachMechanism"]


class BadRequest(Exception):
    pass


def start_world():
    """ScienceWorld's ``ScienceWorldEnv`` over an authenticated gateway (see the docstring)."""
    from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway
    from scienceworld import ScienceWorldEnv
    from scienceworld.constants import BASEPATH, JAR_PATH

    class World(ScienceWorldEnv):
        def __init__(self):  # the package's __init__, but for the gateway's parameters
            port, token, proc = launch_gateway(
                classpath=JAR_PATH, die_on_exit=True, cwd=BASEPATH, return_proc=True,
                enable_auth=True, javaopts=JAVA_OPTIONS,
            )
            self._gateway = JavaGateway(
                gateway_parameters=GatewayParameters(auto_field=True, port=port, auth_token=token),
                java_process=proc,
            )
            self.server = self._gateway.jvm.scienceworld.runtime.pythonapi.PythonInterface()
            self.lastStepScore = 0
            self.taskName = None
            self.envStepLimit = 100
            self.clear_run_histories()
            self.goldPathGenerated = False
            self._obj_tree_tempdir = tempfile.TemporaryDirectory()

        def get_valid_action_object_combinations(self):
            # The package's step() lists the valid actions after every command, which takes
            # longer than the command itself (two thirds of a gold run's time); here they are
            # listed only when asked for (valid_now), from the same state.
            return []

        def valid_now(self):
            return ScienceWorldEnv.get_valid_action_object_combinations(self)

    return World()


class Session:
    def __init__(self, world):
        from scienceworld.constants import TASKS

        self.world = world
        self.tasks = TASKS
        self.names = list(world.get_task_names())

    def task(self, name):
        from scienceworld.utils import infer_task

        if not isinstance(name, str):
            raise BadRequest("the task must be a task name or id")
        canonical = infer_task(name)
        if canonical not in self.names:
            raise BadRequest(f"unknown ScienceWorld task {name!r}; the tasks are: {', '.join(self.names)}")
        return canonical

    def simplifications(self, value):
        if not isinstance(value, str):
            raise BadRequest("simplifications must be a comma-separated string")
        return value

    def variation(self, task, value):
        count = self.world.get_max_variations(task)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < count:
            raise BadRequest(f"task {task!r} has variations 0 to {count - 1}, not {value!r}")
        return value

    def load(self, task, variation, simplifications, gold=False):
        try:
            self.world.load(task, variation, simplifications, generateGoldPath=gold)
        except ValueError as exc:  # the package's own checks of the task and simplifications
            raise BadRequest(str(exc)) from None

    def handle(self, request):
        op = request.get("op") if isinstance(request, dict) else None
        if op == "catalog":
            by_name = {t["task_name"]: t for t in self.tasks}
            return {
                "tasks": [
                    {"name": n, "id": by_name.get(n, {}).get("task_id"), "topic": by_name.get(n, {}).get("topic"),
                     "title": by_name.get(n, {}).get("task")}
                    for n in self.names
                ],
                "simplifications": ["easy", *self.world.get_possible_simplifications()],
            }
        if op == "variations":
            task = self.task(request.get("task"))
            self.load(task, 0, "")
            return {
                "task": task,
                "train": list(self.world.get_variations_train()),
                "dev": list(self.world.get_variations_dev()),
                "test": list(self.world.get_variations_test()),
            }
        if op == "load":
            task = self.task(request.get("task"))
            variation = self.variation(task, request.get("variation"))
            simplifications = self.simplifications(request.get("simplifications", ""))
            step_limit = request.get("step_limit", 100)
            if not isinstance(step_limit, int) or isinstance(step_limit, bool) or step_limit < 1:
                raise BadRequest("step_limit must be a positive integer")
            self.load(task, variation, simplifications)
            self.world.envStepLimit = step_limit
            observation, info = self.world.reset()
            return {
                "task": task,
                "variation": variation,
                "simplifications": simplifications,
                "task_description": info["taskDesc"],
                "observation": observation,
                "score": info["score"],
                "moves": info["moves"],
            }
        if op == "step":
            action = request.get("action")
            if not isinstance(action, str):
                raise BadRequest("the action must be a string")
            if self.world.taskName is None:
                raise BadRequest("load a task before stepping")
            observation, points, done, info = self.world.step(action)
            return {
                "observation": observation,
                "points": points,
                "score": info["score"],
                "moves": info["moves"],
                "done": bool(done),
                "completed": bool(self.world.server.getCompleted()),
            }
        if op == "valid_actions":
            if self.world.taskName is None:
                raise BadRequest("load a task first")
            return {"valid": list(self.world.valid_now())}
        if op == "gold":
            task = self.task(request.get("task"))
            variation = self.variation(task, request.get("variation"))
            self.load(task, variation, self.simplifications(request.get("simplifications", "")), gold=True)
            actions = self.world.get_gold_action_sequence()
            # The JVM keeps the gold flag of the last load that set it, and its reset() reloads with
            # that flag: every later reset would generate a gold path again (20 s and more for the
            # mendelian-genetics tasks). A load without one does not clear it; this does.
            getattr(self.world.server, "goldPathGenerationEnabled_$eq")(False)
            return {"actions": actions}
        raise BadRequest(f"unknown op {op!r}")


def main():
    # The protocol owns the real stdout; whatever else prints (a library, a warning) goes to stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    began = time.monotonic()
    import scienceworld

    imported = time.monotonic()
    world = start_world()
    session = Session(world)
    ready = time.monotonic()

    def send(value):
        out.write(json.dumps(value) + "\n")
        out.flush()

    send({"ready": True, "scienceworld": scienceworld.__version__, "import_s": imported - began,
          "jvm_start_s": ready - imported, "tasks": len(session.names)})
    try:
        for line in sys.stdin:
            try:
                reply = session.handle(json.loads(line))
            except BadRequest as exc:
                reply = {"error": str(exc), "kind": "bad_request"}
            except Exception as exc:  # noqa: BLE001 - the simulator's failure is an answer; the caller decides
                reply = {"error": f"{type(exc).__name__}: {exc}", "kind": "simulator"}
            send(reply)
    finally:
        world.close()


if __name__ == "__main__":
    main()
