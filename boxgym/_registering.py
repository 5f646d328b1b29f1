"""``import boxgym`` registers the ``boxgym/`` ids with Gymnasium, as Gymnasium plugins do.

Registering needs Gymnasium (~80 ms to import), which most users of ``import boxgym`` (a gateway
server, a CLI) never load. So the ids are registered at once when Gymnasium is already loaded,
and otherwise at the moment it is: a one-shot import hook runs
:func:`boxgym.envs.registration.register_envs` right after the ``gymnasium`` package finishes
loading, then takes itself off ``sys.meta_path``. Either way ``import boxgym`` then
``gym.make("boxgym/Code-v0")`` works, in either import order.
"""

from __future__ import annotations

import sys
from types import ModuleType

__all__ = ["register_when_gymnasium_loads"]


def _register() -> None:
    loading = sys.modules.get("boxgym.envs.registration")
    if loading is not None and not hasattr(loading, "register_envs"):
        return  # boxgym.envs is what imports Gymnasium here, and registers once it has loaded
    from .envs.registration import register_envs

    register_envs()


class _AfterGymnasium:
    """A meta path finder that finds nothing itself: it wraps the real loader of ``gymnasium`` so
    that registering follows it. (Not an ``importlib.abc.MetaPathFinder`` subclass: importing that
    module costs more than all of ``import boxgym``.)"""

    def find_spec(self, fullname: str, path: object = None, target: ModuleType | None = None) -> object:
        if fullname != "gymnasium":
            return None
        sys.meta_path.remove(self)  # one shot, and the real finders answer the lookup below
        import importlib.util

        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_then_register(module: ModuleType) -> None:
            exec_module(module)
            _register()

        loader.exec_module = exec_then_register  # type: ignore[method-assign]
        return spec


def register_when_gymnasium_loads() -> None:
    if "gymnasium" in sys.modules:
        _register()
    elif not any(isinstance(finder, _AfterGymnasium) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterGymnasium())
