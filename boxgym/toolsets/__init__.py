"""Toolsets: the tools an agent calls, their OpenAI schemas, and the parsers that find calls in model output."""

from .base import EpisodeTools, EpisodeToolset, ToolResult, Toolset, cap_text, function_schema
from .compose import ComposedToolset, SubmitToolset, compose
from .ipython import IPythonToolset
from .calls import DefaultParser, ParsedAction, ParseError, ParseFailure, ToolCall, ToolCallParser
from .shell import SHELL_TOOLS, ShellToolset

__all__ = [
    "SHELL_TOOLS",
    "ComposedToolset",
    "DefaultParser",
    "EpisodeTools",
    "EpisodeToolset",
    "IPythonToolset",
    "ParseError",
    "ParseFailure",
    "ParsedAction",
    "ShellToolset",
    "SubmitToolset",
    "ToolCall",
    "ToolCallParser",
    "ToolResult",
    "Toolset",
    "cap_text",
    "compose",
    "function_schema",
]
