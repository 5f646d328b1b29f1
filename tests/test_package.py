"""The package's public surface and its import-time promises."""

from __future__ import annotations

import subprocess
import sys

import pytest

import boxgym
import boxgym.sandboxes

HEAVY = ["docker", "playwright", "pyautogui", "jupyter_client", "aiohttp", "boxgym.sandboxes.docker", "openai"]


def test_import_boxgym_loads_no_heavy_backend():
    code = f"import boxgym, sys; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("module", [boxgym, boxgym.sandboxes], ids=lambda m: m.__name__)
def test_every_exported_name_exists(module):
    for name in module.__all__:
        assert getattr(module, name) is not None, name


def test_cli_lists_its_subcommands():
    out = subprocess.run([sys.executable, "-m", "boxgym", "--help"], capture_output=True, text=True, check=True)
    for command in ("demo", "images", "gc", "bench"):
        assert command in out.stdout
