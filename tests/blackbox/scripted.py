"""A scripted black box for the env's tests: a program whose commands say what it should do."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

import numpy as np

from boxgym.blackbox import BlackBoxReset, BlackBoxStep, Program, ProgramSpec

# "points N" scores N, "win" ends the task, "tired" ends it for lack of moves, "crash" exits,
# anything else is echoed. The pid lets a test see whether the program was started again.
SOURCE = textwrap.dedent("""
    import json, os, sys
    print(json.dumps({"ready": True}), flush=True)
    task = None
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "load":
            task = request["task"]
            print(json.dumps({"text": f"task {task} begins", "pid": os.getpid()}), flush=True)
            continue
        command = request["command"]
        if command == "crash":
            print("simulated crash", file=sys.stderr, flush=True)
            sys.exit(9)
        reply = {"text": f"{task}: you said {command!r}", "points": 0, "end": None}
        if command.startswith("points "):
            reply["points"] = int(command.split()[1])
        elif command in ("win", "tired"):
            reply["end"] = command
        print(json.dumps(reply), flush=True)
""")


class Scripted:
    program = ProgramSpec("scripted", python=SOURCE, request_timeout=10.0)
    system_prompt = "You are in a scripted world."
    command_help = "A command of the script."

    def __init__(self) -> None:
        self.pids: list[int] = []

    async def reset(self, program: Program, rng: np.random.Generator, options: Mapping[str, Any]) -> BlackBoxReset:
        task = str(options.get("task_id") or f"t{int(rng.integers(1000))}")
        reply = await program.request({"op": "load", "task": task})
        self.pids.append(reply["pid"])
        return BlackBoxReset(task, reply["text"], {"task": task})

    async def step(self, program: Program, command: str) -> BlackBoxStep:
        reply = await program.request({"op": "step", "command": command})
        return BlackBoxStep(
            reply["text"], reward=reply["points"] / 10, terminated=reply["end"] == "win",
            truncated=reply["end"] == "tired", metadata={"points": reply["points"]},
        )

    async def valid_actions(self, program: Program) -> list[str] | None:
        return ["points 1", "win", "tired", "open the door", "close the door"]

    async def reference(self, program: Program, task_id: str) -> list[str] | None:
        return ["points 3", "points 7", "win"]
