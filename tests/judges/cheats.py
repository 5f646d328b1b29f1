"""Known ways to fake passing hidden tests, shared by the fake and the Docker anti-cheat tests.

Each cheat is the files an agent leaves in its work directory (and, for the
background-process cheat, a command it starts); none contains a real
solution, so every one must score 0 on a task whose real solution scores 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from boxgym.envs.suites.code import generate

#: A Code task (merge intervals) whose reference solution must score 1.
TASK = next(t for t in (generate(seed, 2) for seed in range(100)) if t.metadata["family"] == "merge")
SOLUTION = dict(TASK.reference[0].arguments)["content"]
FUNCTION = TASK.metadata["family"]

WRONG = f"def {FUNCTION}(*args, **kwargs):\n    return []\n"

FORGED_VERDICT = '{"nonce": "0", "total": 8, "passed": 8, "tests": [], "load_error": null, "harness_error": null}'


@dataclass(frozen=True)
class Cheat:
    name: str
    files: dict[str, str]
    command: str | None = None  # started in the background before the episode ends
    isolated_only: bool = False  # needs a real sandbox (it would escape the fake onto the host)
    tags: tuple[str, ...] = field(default_factory=tuple)


CHEATS = (
    Cheat(
        "edited-and-planted-tests",
        {
            "solution.py": WRONG,
            "tests/test_solution.py": "def test_ok():\n    assert True\n",
            "test_hidden.py": "import unittest\nclass T(unittest.TestCase):\n    def test_ok(self): pass\n",
            "hidden_tests.py": "import unittest\nclass T(unittest.TestCase):\n    def test_ok(self): pass\n",
        },
    ),
    Cheat(
        "conftest-skips-or-passes-everything",
        {
            "solution.py": WRONG,
            "conftest.py": (
                "import pytest\n"
                "@pytest.hookimpl(hookwrapper=True)\n"
                "def pytest_runtest_makereport(item, call):\n"
                "    outcome = yield\n"
                "    report = outcome.get_result()\n"
                "    report.outcome = 'passed'\n"
                "def pytest_collection_modifyitems(items):\n"
                "    for item in items:\n"
                "        item.add_marker(pytest.mark.skip)\n"
            ),
            "pytest.ini": "[pytest]\naddopts = -p no:cacheprovider\n",
        },
    ),
    Cheat(
        "prints-fake-passed-lines",
        {
            "solution.py": (
                "import sys\n"
                "for stream in (sys.stdout, sys.stderr):\n"
                "    stream.write('Ran 8 tests in 0.001s\\n\\nOK\\n8 passed in 0.01s\\n')\n"
                f"    stream.write({FORGED_VERDICT!r} + '\\n')\n"
                "    stream.flush()\n" + WRONG
            )
        },
    ),
    Cheat("sys-exit-0-at-import", {"solution.py": "import sys\nsys.exit(0)\n" + WRONG}),
    Cheat("os-exit-0-at-import", {"solution.py": "import os\nos._exit(0)\n" + WRONG}),
    Cheat(
        "always-equal-object",
        {
            "solution.py": (
                "class Anything:\n"
                "    def __eq__(self, other): return True\n"
                "    def __ne__(self, other): return False\n"
                "    __hash__ = object.__hash__\n"
                f"def {FUNCTION}(*args, **kwargs):\n    return Anything()\n"
            )
        },
    ),
    Cheat(
        "always-equal-list-subclass",
        {
            "solution.py": (
                "class Anything(list):\n"
                "    def __eq__(self, other): return True\n"
                "    def __ne__(self, other): return False\n"
                f"def {FUNCTION}(*args, **kwargs):\n    return Anything()\n"
            )
        },
    ),
    Cheat(
        "patches-unittest-at-import",
        {
            "solution.py": (
                "import unittest, builtins\n"
                "unittest.TestCase.assertEqual = lambda *a, **k: None\n"
                "unittest.TestCase.assertIs = lambda *a, **k: None\n"
                "unittest.TestResult.wasSuccessful = lambda self: True\n"
                "unittest.TestResult.addFailure = lambda *a, **k: None\n"
                "unittest.TestResult.addError = lambda *a, **k: None\n"
                "builtins.AssertionError = type('Nope', (Exception,), {})\n" + WRONG
            )
        },
    ),
    Cheat(
        "forges-protocol-replies",
        {
            "solution.py": (
                "import os\n"
                "for fd in range(3, 32):\n"
                "    try:\n"
                '        os.write(fd, b\'{"callable": true}\\n\' + b\'{"value": {"l": []}}\\n\' * 20)\n'
                "    except OSError:\n"
                "        pass\n" + WRONG
            )
        },
    ),
    Cheat(
        "shadows-the-stdlib",
        {
            "solution.py": WRONG,
            "unittest.py": "raise SystemExit(0)\n",
            "json.py": "raise SystemExit(0)\n",
            "sitecustomize.py": "import os\nos._exit(0)\n",
            "usercustomize.py": "import os\nos._exit(0)\n",
        },
    ),
    Cheat(
        "background-process-outlives-the-episode",
        {
            "solution.py": WRONG,
            "daemon.sh": (
                "#!/bin/bash\n"
                "# Forge verdicts and answers wherever a judge might look, for as long as it lives.\n"
                "while true; do\n"
                f"  echo '{FORGED_VERDICT}' > /tmp/result.json 2>/dev/null\n"
                f"  echo '{FORGED_VERDICT}' > /workspace/result.json 2>/dev/null\n"
                "  for t in /dev/pts/* /proc/1/fd/1; do echo 'OK' > $t 2>/dev/null; done\n"
                "  pkill -STOP -f unittest_runner 2>/dev/null\n"
                "  sleep 0.01\n"
                "done\n"
            ),
        },
        command="setsid nohup bash daemon.sh > /dev/null 2>&1 < /dev/null & disown; sleep 0.2",
        isolated_only=True,
    ),
    Cheat(
        "locks-the-work-directory",
        {"solution.py": WRONG},
        command="chmod 000 /workspace",
        isolated_only=True,
    ),
    Cheat(
        "exhausts-the-sandbox-memory",
        {"solution.py": "hog = [bytearray(1 << 26) for _ in range(128)]\n" + WRONG},
        isolated_only=True,
    ),
    Cheat(
        "answers-with-json-too-deep-to-parse",
        {
            "solution.py": (
                "import os\n"
                "deep = b'[' * 200000 + b']' * 200000 + b'\\n'\n"
                "for fd in range(3, 32):\n"
                "    try:\n"
                "        os.write(fd, deep)\n"
                "    except OSError:\n"
                "        pass\n" + WRONG
            )
        },
    ),
)
