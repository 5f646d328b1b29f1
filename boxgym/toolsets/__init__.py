"""Toolsets: the tools an agent calls, their OpenAI schemas, and the parsers that find calls in model output."""

from .base import EpisodeTools, EpisodeToolset, Opening, StartsEpisode, ToolResult, Toolset, cap_text, function_schema
from .browser import BROWSER_TOOLS, BrowserToolset
from .compose import ComposedToolset, SubmitToolset, compose
from .ipython import IPythonToolset
from .calls import DefaultParser, ParsedAction, ParseError, ParseFailure, ToolCall, ToolCallParser
from .gui import GUI_TOOLS, GuiToolset, Termination
from .gui_format import K25Parser
from .shell import SHELL_TOOLS, ShellToolset

__all__ = [
    "BROWSER_TOOLS",
    "GUI_TOOLS",
    "SHELL_TOOLS",
    "BrowserToolset",
    "ComposedToolset",
    "DefaultParser",
    "EpisodeTools",
    "EpisodeToolset",
    "GuiToolset",
    "K25Parser",
    "IPythonToolset",
    "ParseError",
    "ParseFailure",
    "Opening",
    "ParsedAction",
    "ShellToolset",
    "StartsEpisode",
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
