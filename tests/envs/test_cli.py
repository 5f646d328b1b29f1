"""``boxgym envs list`` and ``boxgym envs check``."""

from __future__ import annotations

import os

import pytest

from boxgym.cli import main
from boxgym.envs import ENVS


def test_list_prints_one_line_per_id(capsys):
    assert main(["envs", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [env.id for env in ENVS]
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)


def test_check_runs_the_checker_over_every_id(capsys):
    # The browser ids start a Chromium per reset (~30 s an id): test_browser_envs.py checks them.
    ids = [env.id for env in ENVS if env.kwargs.get("image") != "desktop"]
    assert main(["envs", "check", "--fake", *ids]) == 0
    out = capsys.readouterr().out
    assert out.count("ok    boxgym/") == len(ids) and f"{len(ids)}/{len(ids)} environments passed" in out


def test_check_reports_unknown_ids(capsys):
    assert main(["envs", "check", "--fake", "boxgym/Nope-v0"]) == 2
    assert "unknown id" in capsys.readouterr().out


@pytest.mark.docker
def test_check_on_docker(capsys):
    image = os.environ.get("BOXGYM_TEST_IMAGE", "slim")
    assert main(["envs", "check", "--image", image, "boxgym/SQL-v0"]) == 0
    assert "ok    boxgym/SQL-v0" in capsys.readouterr().out


@pytest.mark.docker
def test_check_on_docker_uses_each_ids_own_image(capsys):
    # DataAnalysis-v0 registers the jupyter image: without --image its kernel must be there.
    assert main(["envs", "check", "boxgym/DataAnalysis-v0"]) == 0
    assert "ok    boxgym/DataAnalysis-v0" in capsys.readouterr().out
