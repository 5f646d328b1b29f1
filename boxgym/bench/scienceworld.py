"""ScienceWorld through boxgym, side by side with ScienceWorld in a plain process in the same container.

``boxgym bench sandbox --scienceworld`` adds, on the ``scienceworld`` image:

* ``scienceworld_start_p50_s``: a fresh sandbox's program, from spawn until it is ready (the
  imports, the JVM, py4j's connection): what the first reset of a sandbox pays, once;
* ``scienceworld_reset_p50_ms``, ``scienceworld_step_p50_ms``, ``scienceworld_valid_actions_p50_ms``:
  ``BlackBoxEnv.areset`` (a task loaded again in the running JVM), ``astep`` with one command,
  and the ``valid_actions`` tool, from the host;

and the same-run baselines, measured by a plain ``python3`` process inside one of those
containers with the same ScienceWorld:

* ``scienceworld_start_direct_s``: the package's own ``ScienceWorldEnv()`` (its JVM start);
* ``scienceworld_step_direct_p50_ms``: the same command through the program's code, called in
  that process (what the env adds is the difference: host, tool server, JSON lines);
* ``scienceworld_step_package_p50_ms``: the package's unmodified ``step``, which lists the
  valid actions after every command (the env lists them when asked).
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

__all__ = ["measure"]

TASK = "find-plant/0"
COMMAND = "look at door to kitchen"

_DIRECT = """
import json, statistics, time
namespace = {"__name__": "bench"}
exec(SOURCE, namespace)
began = time.perf_counter()
from scienceworld import ScienceWorldEnv
package = ScienceWorldEnv()
start = time.perf_counter() - began
package.load(TASK, VARIATION)
package.reset()
steps = []
for _ in range(STEPS):
    t = time.perf_counter(); package.step(COMMAND); steps.append(time.perf_counter() - t)
package.close()
session = namespace["Session"](namespace["start_world"]())
session.handle({"op": "load", "task": TASK, "variation": VARIATION, "step_limit": 10**6})
direct = []
for _ in range(STEPS):
    t = time.perf_counter(); session.handle({"op": "step", "action": COMMAND}); direct.append(time.perf_counter() - t)
session.world.close()
print(json.dumps({"start": start, "package": statistics.median(steps), "direct": statistics.median(direct)}))
"""


def _p50_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


async def measure(image: str, *, starts: int = 3, resets: int = 10, steps: int = 100) -> dict[str, Any]:
    """The figures above; ``image`` is the scienceworld recipe's (a name or a tag)."""
    from ..blackbox.program import Program
    from ..blackbox.scienceworld import PROGRAM
    from ..sandboxes import SandboxSpec
    from ..sandboxes.docker import DockerSandbox
    from ..sandboxes.engine import DockerEngine

    async with DockerEngine() as engine:
        spec = SandboxSpec(image=image)
        start_s = []
        for _ in range(starts):
            async with await DockerSandbox.create(spec, engine=engine) as sandbox:
                opened = await Program(sandbox, PROGRAM).open()
                start_s.append(opened.start_s)
        sandbox = await DockerSandbox.create(spec, engine=engine)
        figures = await _episode_figures(sandbox, resets, steps)
    return {"scienceworld_start_p50_s": round(statistics.median(start_s), 2), **figures}


async def _episode_figures(sandbox: Any, resets: int, steps: int) -> dict[str, Any]:
    from ..blackbox.env import BlackBoxEnv
    from ..blackbox.scienceworld import PROGRAM, ScienceWorld, ScienceWorldTask
    from ..envs import EpisodeLimits
    from ..envs.factory import GivenSandbox
    from ..errors import BoxgymError

    # Lent: the env keeps it across resets and leaves it open for the in-container baseline.
    env = BlackBoxEnv(
        provider=GivenSandbox(sandbox),
        blackbox=ScienceWorld(step_limit=10**6),
        limits=EpisodeLimits(max_turns=10**6, episode_seconds=10**6),
    )
    try:
        await env.areset(options={"task_id": TASK})
        reset_s, step_s, valid_s = [], [], []
        for _ in range(resets):
            t = time.perf_counter()
            await env.areset(options={"task_id": TASK})
            reset_s.append(time.perf_counter() - t)
        for _ in range(steps):
            t = time.perf_counter()
            await env.astep(COMMAND)
            step_s.append(time.perf_counter() - t)
        listing = {"role": "assistant", "content": "", "tool_calls": [
            {"id": "v", "type": "function", "function": {"name": "valid_actions", "arguments": "{}"}}]}
        for _ in range(resets):
            t = time.perf_counter()
            await env.astep(listing)
            valid_s.append(time.perf_counter() - t)
        task = ScienceWorldTask.parse(TASK)
        script = f"SOURCE = {PROGRAM.python!r}\nTASK = {task.name!r}\nVARIATION = {task.variation}\n"
        script += f"COMMAND = {COMMAND!r}\nSTEPS = {steps}\n{_DIRECT}"
        result = await sandbox.exec(["python3", "-I", "-c", script], user="root", timeout=600)
        if result.exit_code != 0:
            raise BoxgymError(f"the in-container baseline failed: {result.stderr[-2000:]}")
        direct = json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        await env.aclose()
        await sandbox.aclose()
    return {
        "scienceworld_start_direct_s": round(direct["start"], 2),
        "scienceworld_reset_p50_ms": _p50_ms(reset_s),
        "scienceworld_step_p50_ms": _p50_ms(step_s),
        "scienceworld_step_direct_p50_ms": round(direct["direct"] * 1000, 2),
        "scienceworld_step_package_p50_ms": round(direct["package"] * 1000, 2),
        "scienceworld_valid_actions_p50_ms": _p50_ms(valid_s),
    }
