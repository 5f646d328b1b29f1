"""Context management for long episodes (Kimi K2.5's agentic evaluation): hide tool results, or
discard all, past a threshold counted in the policy's own tokens.

* :class:`HideToolResults` / :class:`DiscardAll`: the strategies, and :class:`ContextView`, the
  record of what one call was shown (:mod:`~boxgym.context.strategies`);
* :class:`ContextManagedPolicy`: a policy wrapper, for the rollout manager (:mod:`~boxgym.context.policy`);
* :class:`ContextWindow`: a Gymnasium wrapper, for your own loop (:mod:`~boxgym.context.env`);
* :class:`GatewayTokens`: a call's context size from the gateway's records (:mod:`~boxgym.context.tokens`);
* :func:`shown_messages`: rebuild what a recorded call was shown from the full history;
* :func:`keep_last_images`, :class:`LastScreenshots` (a policy wrapper) and
  :class:`LastScreenshotsWindow` (an env wrapper): only the last N screenshots of a GUI episode
  (:mod:`~boxgym.context.screenshots`, docs/gui.md).

``docs/simulated.md`` (its last part) is the user's guide. The wrappers load on first use.
"""

from __future__ import annotations

from typing import Any

from .strategies import ContextState, ContextView, DiscardAll, HideToolResults, Strategy, rounds, shown_messages
from .tokens import GatewayTokens, TokenCount, call_tokens

__all__ = [
    "ContextManagedPolicy",
    "ContextState",
    "ContextView",
    "ContextWindow",
    "DiscardAll",
    "GatewayTokens",
    "HideToolResults",
    "LastScreenshots",
    "LastScreenshotsWindow",
    "Strategy",
    "TokenCount",
    "call_tokens",
    "keep_last_images",
    "rounds",
    "shown_messages",
]

_LAZY = {
    "ContextManagedPolicy": "boxgym.context.policy",
    "ContextWindow": "boxgym.context.env",
    "LastScreenshots": "boxgym.context.screenshots",
    "LastScreenshotsWindow": "boxgym.context.screenshots",
    "keep_last_images": "boxgym.context.screenshots",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
