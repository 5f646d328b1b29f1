"""What the GUI tests share: the host's X server for the gui plugin on the fake sandbox, and a small app.

run.sh installs Xvfb, openbox and Tk on the host; a laptop without them skips these tests with
the reason, unless ``BOXGYM_REQUIRE_DOCKER=1`` (CI) makes them run, and fail, anyway.
"""

from __future__ import annotations

import os
import shutil
import struct

import pytest

MISSING = [program for program in ("Xvfb", "openbox") if shutil.which(program) is None]

_SKIP = pytest.mark.skipif(
    bool(MISSING) and os.environ.get("BOXGYM_REQUIRE_DOCKER") != "1",
    reason=f"no {' or '.join(MISSING)} on this host (run.sh installs them)",
)
#: ``pytestmark`` of a module whose tests run the gui plugin on the fake sandbox (the host's X server).
DISPLAY = [pytest.mark.display, _SKIP]


def needs_display(test):
    """The same marks for one test."""
    return pytest.mark.display(_SKIP(test))

#: A button, an entry, a check box and a drag board, each where the description says.
APP = {
    "title": "Test app",
    "window": [1280, 800],
    "widgets": [
        {"type": "label", "text": "Test app", "x": 40, "y": 40, "w": 300, "h": 30},
        {"type": "button", "id": "go", "text": "Go", "x": 40, "y": 100, "w": 160, "h": 40},
        {"type": "entry", "id": "name", "value": "", "x": 40, "y": 170, "w": 300, "h": 32},
        {"type": "check", "id": "agree", "text": "I agree", "value": False, "x": 40, "y": 230, "w": 200, "h": 30},
        {"type": "board", "id": "board", "x": 400, "y": 100, "w": 600, "h": 400,
         "items": [{"id": "apple", "text": "apple", "x": 20, "y": 20, "w": 120, "h": 44, "color": "#ff0000"}],
         "boxes": [{"id": "fruit", "text": "Fruit", "x": 300, "y": 180, "w": 260, "h": 200}]},
    ],
}


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    return struct.unpack(">II", data[16:24])
