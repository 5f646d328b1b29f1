"""The Shell suite: bring the file system to a described state; judged by inspecting it.

=====  ======================================================================
level  the agent must
=====  ======================================================================
0      create one file with exact content
1      + an executable script (mode 0755), a directory, delete a given file
2      + summarise given data files into a report, restrict a file to 0600
3      + build a git repository: two commits, a branch, a clean work tree
=====  ======================================================================

Names, contents and data come from the seed. The reference solution is a
sequence of ``bash`` calls, then ``submit``.
"""

from __future__ import annotations

import numpy as np

from ...judges.state import FileState, GitCheck, PathCheck
from ...toolsets.calls import ToolCall
from ..tasks import ProceduralTaskSet, Task

__all__ = ["LEVELS", "SYSTEM_PROMPT", "generate", "task_set"]

LEVELS = 4
SYSTEM_PROMPT = (
    "You are a system administrator working in a Linux sandbox with no network access. Use the tools to "
    "change the file system; paths are relative to the working directory. When the work is complete, call submit."
)
_WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike oscar papa quebec".split()


def _word(rng: np.random.Generator) -> str:
    return str(rng.choice(_WORDS))


def generate(seed: int, level: int) -> Task:
    rng = np.random.default_rng(seed)
    steps: list[str] = []  # the prompt's bullet points
    commands: list[str] = []  # the reference solution
    paths: list[PathCheck] = []
    gits: list[GitCheck] = []
    files: dict[str, str] = {}

    note, line = f"notes/{_word(rng)}-{int(rng.integers(100, 1000))}.txt", " ".join(_word(rng) for _ in range(4))
    steps.append(f"Create `{note}` containing exactly the line `{line}` followed by a newline.")
    commands.append(f"mkdir -p notes && printf '%s\\n' '{line}' > {note}")
    paths.append(PathCheck(note, "file", content=line + "\n"))

    if level >= 1:
        script, greeting = f"bin/{_word(rng)}.sh", _word(rng)
        body = f"#!/bin/sh\necho {greeting}\n"
        files["tmp/old.log"] = "stale\n"
        steps += [
            f"Create the script `{script}` with exactly these two lines: `#!/bin/sh` and `echo {greeting}`, "
            "and make it executable with permissions 0755 (rwxr-xr-x).",
            "Create an empty directory `archive`.",
            "Delete `tmp/old.log`.",
        ]
        commands.append(
            f"mkdir -p bin archive && printf '#!/bin/sh\\necho {greeting}\\n' > {script} && chmod 0755 {script} "
            "&& rm tmp/old.log"
        )
        paths += [
            PathCheck(script, "file", content=body, mode=0o755),
            PathCheck("archive", "dir"),
            PathCheck("tmp/old.log", "absent"),
        ]

    if level >= 2:
        report = []
        for name in sorted({_word(rng) for _ in range(3)}):
            count = int(rng.integers(1, 9))
            files[f"data/{name}.txt"] = "".join(f"{_word(rng)} {int(rng.integers(0, 99))}\n" for _ in range(count))
            report.append(f"{name}.txt {count}\n")
        files["secret.key"] = f"key-{int(rng.integers(10**8, 10**9))}\n"
        steps += [
            "Write `report.txt` with one line per file in `data/`, sorted by file name: the file name, a space, "
            "and its number of lines (e.g. `alpha.txt 3`).",
            "Make `secret.key` readable and writable by its owner only (permissions 0600).",
        ]
        commands.append(
            'cd data && for f in $(ls | sort); do echo "$f $(wc -l < $f)"; done > ../report.txt && cd .. '
            "&& chmod 0600 secret.key"
        )
        paths += [PathCheck("report.txt", "file", content="".join(report)), PathCheck("secret.key", mode=0o600)]

    if level >= 3:
        title, module = _word(rng).capitalize(), _word(rng)
        readme, app = f"# {title}\n", f"print({module!r})\n"
        first, second, branch = f"Add README for {title}", f"Add {module} app", f"feature-{_word(rng)}"
        steps += [
            f"Make `repo` a git repository on branch `main` with exactly two commits: the first adds `README.md` "
            f"containing `# {title}` (and a newline) with the message `{first}`; the second adds `src/app.py` "
            f"containing `print({module!r})` (and a newline) with the message `{second}`.",
            f"Create a branch `{branch}` at the same commit, stay on `main`, and leave no uncommitted or "
            "untracked files in `repo`. Any author identity will do (e.g. `git -c user.name=a -c user.email=a@b`).",
        ]
        git = "git -c user.name=agent -c user.email=agent@example.com"
        commands.append(
            f"mkdir -p repo/src && cd repo && git init -q -b main && printf '# {title}\\n' > README.md "
            f"&& git add README.md && {git} commit -q -m '{first}' "
            f"&& printf \"print('{module}')\\n\" > src/app.py && git add src/app.py && {git} commit -q -m '{second}' "
            f"&& git branch {branch}"
        )
        gits.append(
            GitCheck(
                "repo",
                branch="main",
                head_message=second,
                commits=2,
                files={"README.md": readme, "src/app.py": app},
                branches=(branch,),
                clean=True,
            )
        )

    prompt = "Bring the working directory to this state:\n\n" + "\n".join(f"- {s}" for s in steps)
    prompt += "\n\nOther files may exist. Call submit when you are done."
    reference = tuple(ToolCall(f"ref_{i}", "bash", {"command": c}) for i, c in enumerate(commands))
    return Task(
        id=f"shell/d{level}/s{seed}",
        prompt=prompt,
        oracle=FileState(tuple(paths), tuple(gits)),
        files=files,
        reference=reference + (ToolCall(f"ref_{len(commands)}", "submit", {}),),
        difficulty=level,
        metadata={"suite": "shell", "checks": len(paths) + len(gits)},
    )


def task_set() -> ProceduralTaskSet:
    return ProceduralTaskSet("shell", generate, LEVELS)
