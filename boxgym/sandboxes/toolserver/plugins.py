"""Operation plugins: what the tool server does beyond commands and files.

A plugin is a module ``ops_<name>.py`` beside this file that defines one class, ``Plugin``.
Its operations are called ``<name>.<op>`` (``ipython.execute``, ``browser.click``); the host
reaches them with ``sandbox.call(op, args)``. The shape, with its lifecycle::

    class Plugin:
        EXCLUSIVE = frozenset({"execute"})  # ops that answer ``busy`` while another op of
                                            # this plugin runs, instead of interleaving

        def __init__(self, ctx):            # the per-sandbox state, as typed attributes
            self.kernel = None

        async def start(self):              # optional: before the first op (start a kernel, a
            ...                             # browser, a display); once, even under concurrent calls

        async def stop(self):               # optional: the sandbox closes; stop cleanly and leave
            ...                             # no process running (a deadline bounds it)

        async def op_execute(self, code: str, timeout: float = 30.0) -> dict:
            ...

Who broke it, as the rest of boxgym says it (:func:`boxgym.errors.fault_of`):

* the agent's doing is an answer, never an exception: a cell that raised, a page that did not
  load, a click that timed out is a result (``"ok": false`` and what happened); a request that
  cannot be served as asked (an element id that does not exist, a bad argument) raises
  :class:`~.files.Refused` with a reason. The host turns both into observations.
* :class:`Unavailable` says the tool cannot run at all (its kernel cannot be restarted, the
  browser does not start): an infrastructure failure, retried on a fresh sandbox.
* any other exception is ``internal``, a bug of the plugin: reported, not retried.

The server stops every started plugin when it stops (SIGTERM, the TTL) and when the host asks
before it removes the container (the ``stop_plugins`` operation), so a sandbox closes with no
kernel, browser or X server of its plugins left. The in-process fake sandbox loads the same
modules through the same :class:`Plugins`, so toolsets are unit-tested against the real ops.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from typing import Any

from .files import Refused

__all__ = ["Busy", "Plugins", "Unavailable", "plugin_names"]

#: How long one plugin's ``stop`` may take before it is abandoned (its processes die with the
#: container anyway; the fake's die with their process group).
STOP_WITHIN_S = 10.0


class Busy(Exception):
    """An exclusive operation is already running; becomes an error of type ``busy``."""


class Unavailable(Exception):
    """The tool cannot run in this sandbox (its kernel, browser or display cannot be started):
    an error of type ``unavailable``, an infrastructure failure on the host."""


def plugin_names() -> list[str]:
    """The namespaces of the plugin modules beside this file (``ipython``, ``browser``, ...)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return sorted(name[4:-3] for name in os.listdir(here) if name.startswith("ops_") and name.endswith(".py"))


class _Loaded:
    __slots__ = ("exclusive", "instance", "running", "start_lock", "started")

    def __init__(self, instance: Any) -> None:
        self.instance = instance
        self.exclusive = frozenset(getattr(instance, "EXCLUSIVE", ()))
        self.start_lock = asyncio.Lock()
        self.started = False
        self.running = 0  # exclusive ops in flight


class Plugins:
    """The plugins of one server (or one fake sandbox): loaded, started and stopped here."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._loaded: dict[str, _Loaded] = {}
        self._closed = False

    def _load(self, namespace: str) -> _Loaded:
        loaded = self._loaded.get(namespace)
        if loaded is not None:
            return loaded
        if not namespace.isidentifier():
            raise Refused(f"unknown operation namespace {namespace!r}")
        try:
            module = importlib.import_module(f"{__package__}.ops_{namespace}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(f"ops_{namespace}"):
                raise Refused(f"unknown operation namespace {namespace!r}") from None
            raise Unavailable(f"{namespace} operations are not available in this image: {exc}") from None
        plugin_class = getattr(module, "Plugin", None)
        if plugin_class is None:
            raise Refused(f"unknown operation namespace {namespace!r}")
        loaded = self._loaded[namespace] = _Loaded(plugin_class(self.ctx))
        return loaded

    async def _started(self, namespace: str) -> _Loaded:
        loaded = self._load(namespace)
        if not loaded.started:
            async with loaded.start_lock:
                if self._closed:
                    raise Unavailable("the sandbox is stopping")
                if not loaded.started:
                    start = getattr(loaded.instance, "start", None)
                    if start is not None:
                        await start()
                    loaded.started = True
        return loaded

    async def call(self, namespace: str, name: str, args: dict[str, Any]) -> Any:
        if self._closed:
            raise Unavailable("the sandbox is stopping")
        if not name.isidentifier() or name.startswith("_"):
            raise Refused(f"unknown operation {namespace}.{name!r}", reason="bad_request")
        loaded = self._load(namespace)
        handler = getattr(loaded.instance, f"op_{name}", None)
        if handler is None:
            raise Refused(f"unknown operation {namespace}.{name}", reason="bad_request")
        loaded = await self._started(namespace)
        exclusive = name in loaded.exclusive
        if exclusive:
            if loaded.running:
                raise Busy(f"{namespace}.{name} cannot run while another {namespace} operation is running")
            loaded.running = 1
        try:
            return await _invoke(handler, args)
        finally:
            if exclusive:
                loaded.running = 0

    async def stop(self) -> dict[str, str]:
        """Stop every started plugin (each within :data:`STOP_WITHIN_S`); idempotent. Returns what
        did not stop cleanly, by namespace (empty when all did)."""
        self._closed = True
        failed: dict[str, str] = {}
        for namespace, loaded in list(self._loaded.items()):
            stop = getattr(loaded.instance, "stop", None)
            if not loaded.started or stop is None:
                continue
            loaded.started = False
            try:
                async with asyncio.timeout(STOP_WITHIN_S):
                    await stop()
            except Exception as exc:  # noqa: BLE001 - one plugin's failed stop must not keep the others running
                failed[namespace] = f"{type(exc).__name__}: {exc}"
        return failed


async def _invoke(handler: Any, args: dict[str, Any]) -> Any:
    try:
        return await handler(**args)
    except TypeError as exc:
        # Wrong or missing argument names are the caller's error, not the plugin's.
        if "argument" in str(exc) and exc.__traceback__ is not None and exc.__traceback__.tb_next is None:
            raise Refused(f"bad arguments: {exc}", reason="bad_request") from None
        raise
