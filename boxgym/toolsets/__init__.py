"""Toolsets: the tools an agent calls, their OpenAI schemas, and the parsers that find calls in model output."""

from .base import EpisodeTools, EpisodeToolset, ShowsScreen, ToolResult, Toolset, cap_text, function_schema
from .compose import ComposedToolset, SubmitToolset, compose
from .calls import DefaultParser, ParsedAction, ParseError, ParseFailure, ToolCall, ToolCallParser
from .gui import GUI_TOOLS, GuiToolset, Termination
from .gui_format import K25Parser
from .shell import SHELL_TOOLS, ShellToolset

__all__ = [
    "GUI_TOOLS",
    "SHELL_TOOLS",
    "ComposedToolset",
    "DefaultParser",
    "EpisodeTools",
    "EpisodeToolset",
    "GuiToolset",
    "K25Parser",
    "ParseError",
    "ParseFailure",
    "ParsedAction",
    "ShellToolset",
    "ShowsScreen",
    "SubmitToolset",
    "Termination",
    "ToolCall",
    "ToolCallParser",
    "ToolResult",
    "Toolset",
    "cap_text",
    "compose",
    "function_schema",
]
