"""What one IPython cell showed, collected from the kernel's messages into a bounded answer.

The kernel's IOPub messages (``stream``, ``display_data``, ``execute_result``, ``error``,
``clear_output``) become the fields of an ``ipython.execute`` answer, as a notebook would
show them to a person:

* ``stdout`` and ``stderr``: each capped, head and tail kept around the truncation marker;
* ``outputs``: displays and the cell's result, in order, each as text: ``text/plain``, or the
  text of ``text/html`` when that is all there is (``display(HTML(...))``), markdown, LaTeX
  or JSON as written; an image is a placeholder ``[image N: PNG 640x480 ...]`` naming its
  place in ``images_b64``;
* ``images_b64``: PNG and JPEG images (matplotlib figures, PIL images), a bounded number;
* ``error``: the exception's name, value and traceback.

ANSI escapes are stripped and carriage-return overwrites resolved (a progress bar shows its
last state). Everything here comes from the agent's process and may be malformed on purpose:
nothing in it may raise, and no part of it may grow without bound.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from html.parser import HTMLParser
from typing import Any

from .procs import CappedBuffer
from .protocol import TRUNCATION_MARKER

__all__ = ["CellOutput", "clean_text", "html_to_text"]

#: Images one cell may return, the bytes of one, and of all of them.
MAX_IMAGES = 8
MAX_IMAGE_BYTES = 4 * 1024 * 1024
MAX_IMAGES_TOTAL = 16 * 1024 * 1024
#: Displays and results kept per cell; later ones are counted.
MAX_OUTPUTS = 64
#: HTML longer than this is cut before it is parsed (parsing costs the server's CPU).
MAX_HTML = 1024 * 1024

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_DROPPED = re.compile(r"\x1b\]boxgym-dropped;(\d{1,15})\x07")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The default repr of an object (``<IPython.core.display.HTML object>``) says nothing worth reading.
_OBJECT_REPR = re.compile(r"^<[\w.]+ object( at 0x[0-9a-f]+)?>$")
_IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG"}
_TEXT_TYPES = ("text/markdown", "text/html", "text/latex", "application/json")


def clean_text(text: str) -> str:
    """``text`` as a notebook shows it: no ANSI escapes, each ``\\r`` overwrite resolved."""
    text = _ANSI.sub("", text).replace("\r\n", "\n")
    if "\r" in text:
        lines = []
        for line in text.split("\n"):
            if "\r" in line:
                parts = [part for part in line.split("\r") if part]
                line = parts[-1] if parts else ""
            lines.append(line)
        text = "\n".join(lines)
    return _CONTROL.sub("", text)


def _cap(text: str, limit: int) -> tuple[str, bool]:
    """Head and tail of ``text`` around the marker, about ``limit`` bytes in all."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text, False
    buffer = CappedBuffer(limit)
    buffer.feed(data)
    return buffer.text(), True


class _HtmlText(HTMLParser):
    """The readable text of an HTML fragment: blocks on their own lines, table cells joined by ``|``."""

    _SKIP = frozenset({"script", "style", "head", "template"})
    _BLOCKS = frozenset(
        {"p", "div", "table", "thead", "tbody", "tfoot", "caption", "ul", "ol", "pre", "section", "article",
         "h1", "h2", "h3", "h4", "h5", "h6", "hr", "blockquote", "dl", "dt", "dd", "header", "footer"}
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.pre = 0
        self.first_cell = True

    def _newline(self) -> None:
        if self.parts and not self.parts[-1].endswith("\n"):
            self.parts.append("\n")

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "tr":
            self._newline()
            self.first_cell = True
        elif tag in ("td", "th"):
            if not self.first_cell:
                self.parts.append(" | ")
            self.first_cell = False
        elif tag == "li":
            self._newline()
            self.parts.append("- ")
        elif tag in self._BLOCKS:
            self.pre += tag == "pre"
            self._newline()

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(self.skipping - 1, 0)
        elif tag in self._BLOCKS or tag in ("tr", "li"):
            self.pre -= tag == "pre" and self.pre > 0
            self._newline()

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if self.pre:
            self.parts.append(data)
        elif data.strip():
            self.parts.append(re.sub(r"\s+", " ", data))
        elif self.parts and not self.parts[-1].endswith(("\n", " ")):
            self.parts.append(" ")  # the space between two words in separate tags; none between tags


def html_to_text(html: str) -> str:
    """The text a reader sees in ``html`` (tags dropped, tables as ``a | b`` rows)."""
    parser = _HtmlText()
    try:
        parser.feed(html[:MAX_HTML])
        parser.close()
    except Exception:  # noqa: BLE001 - html.parser is lenient; whatever it still rejects is shown as is
        return html[:MAX_HTML]
    lines = [re.sub(r" {2,}", " ", line).strip() for line in "".join(parser.parts).split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return text + ("\n[... boxgym: the HTML was cut before it was read ...]" if len(html) > MAX_HTML else "")


def _png_size(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return f" {int.from_bytes(data[16:20], 'big')}x{int.from_bytes(data[20:24], 'big')}"
    return ""


def _text(value: Any) -> str:
    """A mime bundle's text value: a string, or a list of strings (the notebook format allows both)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)
    return ""


class CellOutput:
    """Collects one cell's output messages; :meth:`answer` is the bounded result."""

    def __init__(self, max_output: int) -> None:
        self.max_output = max_output
        self.stdout = CappedBuffer(max_output)
        self.stderr = CappedBuffer(max_output)
        self.outputs: list[dict[str, Any]] = []
        self.images: list[str] = []
        self.image_bytes = 0
        self.omitted_outputs = 0
        self.error: dict[str, Any] | None = None
        self.execution_count: int | None = None
        self.truncated = False
        self.notes: list[str] = []  # what went missing, for the agent to read

    def feed(self, msg_type: str, content: Any) -> None:
        if not isinstance(content, dict):
            return
        if msg_type == "stream":
            stream = self.stderr if content.get("name") == "stderr" else self.stdout
            text = _text(content.get("text"))
            if "\x1b]boxgym-dropped;" in text:
                # What the kernel dropped from the middle of the cell's output (kernel_startup.py).
                for omitted in _DROPPED.findall(text):
                    stream.total += int(omitted)
                text = _DROPPED.sub("", text)
            stream.feed(text.encode("utf-8", "surrogatepass"))
        elif msg_type in ("display_data", "execute_result", "update_display_data"):
            self._display(msg_type, content)
        elif msg_type == "error":
            self._error(content)
        elif msg_type == "clear_output":
            # A notebook clears the cell's output area (an animation, a live progress view).
            self.stdout, self.stderr = CappedBuffer(self.max_output), CappedBuffer(self.max_output)
            self.outputs, self.images, self.image_bytes, self.omitted_outputs = [], [], 0, 0
        elif msg_type == "execute_input" and isinstance(content.get("execution_count"), int):
            self.execution_count = content["execution_count"]

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def _display(self, msg_type: str, content: dict[str, Any]) -> None:
        if len(self.outputs) >= MAX_OUTPUTS:
            self.omitted_outputs += 1
            return
        data = content.get("data")
        if not isinstance(data, dict):
            return
        kind = "result" if msg_type == "execute_result" else "display"
        if kind == "result" and isinstance(content.get("execution_count"), int):
            self.execution_count = content["execution_count"]
        text = _text(data.get("text/plain"))
        if not text or _OBJECT_REPR.match(text.strip()):
            for mime in _TEXT_TYPES:
                if mime in data:
                    value = data[mime]
                    richer = html_to_text(_text(value)) if mime == "text/html" else _text(value)
                    if mime == "application/json" and not isinstance(value, str):
                        richer = json.dumps(value, indent=1, default=str)[: self.max_output * 2]
                    if richer:
                        text = richer
                        break
        image = self._image(data, text)
        if image is not None:
            text = image
        elif any(isinstance(key, str) and key.startswith("image/") for key in data) and not text:
            text = f"[an image of a type that is not shown ({', '.join(sorted(k for k in data if k.startswith('image/')))})]"
        elif not text:
            shown = ", ".join(sorted(str(key) for key in data)[:5])
            text = f"[an output with no text form ({shown}); widgets and other rich outputs are not shown here]"
        text, cut = _cap(text, self.max_output)
        self.truncated |= cut
        self.outputs.append({"kind": kind, "text": text})

    def _image(self, data: dict[str, Any], alt: str) -> str | None:
        for mime, label in _IMAGE_TYPES.items():
            value = data.get(mime)
            if not isinstance(value, str):
                continue
            try:
                raw = base64.b64decode(value, validate=False)
            except (binascii.Error, ValueError):
                return f"[a {label} image that is not valid base64]"
            caption = f": {alt.strip()[:200]}" if alt.strip() else ""
            if len(raw) > MAX_IMAGE_BYTES:
                return f"[an image too large to show ({len(raw)} bytes {label}, over {MAX_IMAGE_BYTES}){caption}]"
            if len(self.images) >= MAX_IMAGES or self.image_bytes + len(raw) > MAX_IMAGES_TOTAL:
                return f"[an image not shown: this cell already showed {len(self.images)} images{caption}]"
            self.images.append(base64.b64encode(raw).decode("ascii"))
            self.image_bytes += len(raw)
            size = _png_size(raw) if mime == "image/png" else ""
            return f"[image {len(self.images)}: {label}{size}{caption}]"
        return None

    def _error(self, content: dict[str, Any]) -> None:
        trace = content.get("traceback")
        lines = [line for line in trace if isinstance(line, str)] if isinstance(trace, list) else []
        ename, evalue = _text(content.get("ename")) or "Error", _text(content.get("evalue"))
        text = clean_text("\n".join(lines)) if lines else f"{ename}: {evalue}"
        text, cut = _cap(text, self.max_output)
        self.truncated |= cut
        self.error = {"ename": ename[:200], "evalue": _cap(evalue, 2000)[0], "traceback": text}

    def answer(self) -> dict[str, Any]:
        """The fields of an ``ipython.execute`` answer this output makes."""
        self.truncated |= self.stdout.truncated or self.stderr.truncated
        outputs = [{"kind": o["kind"], "text": clean_text(o["text"])} for o in self.outputs]
        if self.omitted_outputs:
            marker = TRUNCATION_MARKER.format(omitted=self.omitted_outputs).replace("bytes", "more outputs")
            outputs.append({"kind": "display", "text": marker})
            self.truncated = True
        return {
            "stdout": clean_text(self.stdout.text()),
            "stderr": clean_text(self.stderr.text()),
            "outputs": outputs,
            "images_b64": list(self.images),
            "error": self.error,
            "execution_count": self.execution_count,
            "truncated": self.truncated,
            "notes": list(self.notes),
        }
