"""What ``__all__`` says is the API: every name resolves, and nothing public is left out."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("module", ["boxgym.envs", "boxgym.judges", "boxgym.toolsets"])
def test_exported_members(module):
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert getattr(mod, name) is not None, name
    public = {n for n, v in vars(mod).items() if not n.startswith("_") and not isinstance(v, type(mod))}
    assert public <= set(mod.__all__) | {"annotations", "Any"}
