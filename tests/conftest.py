"""Shared test configuration.

Marks (``--strict-markers`` is on, so only these exist):

* ``docker``  needs a running Docker engine and the built boxgym images.
* ``browser`` needs Chromium in the desktop image.
* ``display`` needs the X server in the desktop image.
* ``slow``    takes more than a few seconds.

CI runs all of them: ``make test`` sets ``BOXGYM_REQUIRE_DOCKER=1``, which
turns a missing engine into a failure instead of a skip. Without it (a laptop
with no Docker) the marked tests are skipped with the reason.

Every session ends by counting the containers it created (each carries
``boxgym.session=<this session's id>``, set through ``BOXGYM_SESSION``, which
child processes inherit): a test run that leaves one behind fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

# Before any test creates a container: every container of this session, and of the
# processes it starts, carries this label, so the final count is exact.
SESSION = os.environ.setdefault("BOXGYM_SESSION", "pytest-" + uuid.uuid4().hex[:10])


def _docker_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


_DOCKER = None


def docker_available() -> bool:
    global _DOCKER
    if _DOCKER is None:
        _DOCKER = _docker_ok()
    return _DOCKER


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    needs = [item for item in items if item.get_closest_marker("docker")]
    if not needs or docker_available():
        return
    if os.environ.get("BOXGYM_REQUIRE_DOCKER") == "1":
        raise pytest.UsageError("BOXGYM_REQUIRE_DOCKER=1 but no Docker engine answers `docker info`")
    skip = pytest.mark.skip(reason="no Docker engine answers (set BOXGYM_REQUIRE_DOCKER=1 to fail instead)")
    for item in needs:
        item.add_marker(skip)


def _leftover_containers() -> list[str]:
    if not docker_available():
        return []
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=boxgym.session={SESSION}"], capture_output=True, text=True, timeout=30
    )
    return out.stdout.split()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return  # only the controlling process counts
    leftover = _leftover_containers()
    if leftover:
        session.config.stash[_LEFTOVER] = leftover
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_LEFTOVER = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    leftover = config.stash.get(_LEFTOVER, None)
    if leftover:
        terminalreporter.write_line(
            f"FAILED: {len(leftover)} containers of this session were left behind: {' '.join(leftover)}",
            red=True,
        )
