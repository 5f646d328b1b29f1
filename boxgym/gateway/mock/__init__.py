"""The scripted engine: tokenizer, chat template, scripts and server."""

from .script import MockEngineConfig, Reply, ScriptedCall
from .server import EngineStats, MockEngine, create_engine_app
from .tokenizer import ByteTokenizer, render_chat

__all__ = [
    "MockEngine",
    "MockEngineConfig",
    "Reply",
    "ScriptedCall",
    "EngineStats",
    "create_engine_app",
    "ByteTokenizer",
    "render_chat",
]
