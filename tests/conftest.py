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

The tests of sandboxes on several Docker hosts use a second engine on this machine
(the ``second_host`` fixture): ``.ci/second-docker-host start`` starts it, ``./run.sh
test`` does that and copies the slim image to it. Without it they are skipped, or fail
under ``BOXGYM_REQUIRE_DOCKER=1``. Its containers are counted at the end too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from boxgym.sandboxes.hosts import DockerHost, TLSFiles

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


@dataclass(frozen=True)
class SecondHost:
    """The second Docker engine (.ci/second-docker-host): one daemon, two ways to reach it."""

    unix: DockerHost  # its Unix socket
    tcp: DockerHost  # tcp://127.0.0.1:PORT with TLS and the client certificate
    tls_dir: Path

    @classmethod
    def from_env(cls) -> "SecondHost":
        tls_dir = Path(os.environ.get("BOXGYM_HOST2_TLS", "/var/lib/boxgym-host2/tls/client"))
        return cls(
            DockerHost(os.environ.get("BOXGYM_HOST2_UNIX", "unix:///run/boxgym-host2/docker.sock")),
            DockerHost(os.environ.get("BOXGYM_HOST2_TCP", "tcp://127.0.0.1:23760"), TLSFiles.from_dir(tls_dir)),
            tls_dir,
        )

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The docker CLI on this engine."""
        return subprocess.run(["docker", "-H", self.unix.url, *args], capture_output=True, text=True, timeout=60)

    def answers(self) -> bool:
        if not Path(self.unix.socket_path or "").exists() or shutil.which("docker") is None:
            return False
        try:
            return self.docker("info").returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False


@pytest.fixture(scope="session")
def second_host() -> SecondHost:
    host = SecondHost.from_env()
    problem = None
    if not host.answers():
        problem = f"no second Docker engine answers at {host.unix} (start it: .ci/second-docker-host start)"
    else:
        from boxgym.sandboxes.images import get_recipe, image_tag

        image = os.environ.get("BOXGYM_TEST_IMAGE", "slim")
        tag = image if ":" in image else image_tag(get_recipe(image))
        if host.docker("image", "inspect", tag).returncode != 0:
            problem = f"{tag} is not on {host.unix} (boxgym images copy {image} --to {host.unix.url})"
    if problem is not None:
        if os.environ.get("BOXGYM_REQUIRE_DOCKER") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    return host


def _leftover_containers() -> list[str]:
    if not docker_available():
        return []
    hosts = [[]]
    second = SecondHost.from_env()
    if second.answers():
        hosts.append(["-H", second.unix.url])
    leftover = []
    for flags in hosts:
        out = subprocess.run(
            ["docker", *flags, "ps", "-aq", "--filter", f"label=boxgym.session={SESSION}"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        leftover += out.stdout.split()
    return leftover


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
