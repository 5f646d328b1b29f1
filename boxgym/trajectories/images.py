"""Images in observations and records: one representation, stored once per run.

Towards a policy an image is an OpenAI multimodal content part, its bytes inline as a data URL::

    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0..."}}

(the form vLLM, SGLang and OpenAI accept, and the gateway passes through unchanged). A tool
result that carries images (a plot from IPython, a screenshot) reaches the policy as its tool
message, which holds the text, followed by one ``user`` message with the images
(:func:`image_message`): chat templates accept images in user turns everywhere, in tool turns
only in some.

In records (``trajectories.jsonl``, ``gateway.jsonl``) an image is never inline. It is written
once per run, by content hash, as a file beside the JSONL (``images/<sha256>.<ext>``), and the
line holds a reference in its place::

    {"type": "image_url", "image_url": {"url": "boxgym-image:images/<sha256>.png"}}

:meth:`ImageStore.externalize` makes that replacement on the way into a record (the same image
in a thousand steps is one file) and :meth:`ImageStore.inline` undoes it for a reader that
needs the bytes back (replay, a viewer, a trainer that feeds images).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Image", "ImageStore", "REF_SCHEME", "has_images", "image_message", "image_part"]

REF_SCHEME = "boxgym-image:"
DIRNAME = "images"
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}
_MIMES = {ext: mime for mime, ext in _EXTENSIONS.items()}


@dataclass(frozen=True, slots=True)
class Image:
    """An image's bytes and type, as a tool returns it."""

    data: bytes
    mime: str = "image/png"

    def __post_init__(self) -> None:
        if self.mime not in _EXTENSIONS:
            raise ValueError(f"unsupported image type {self.mime!r}; one of {sorted(_EXTENSIONS)}")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


def image_part(image: Image) -> dict[str, Any]:
    """The OpenAI content part of one image."""
    return {"type": "image_url", "image_url": {"url": image.data_url()}}


def image_message(images: Sequence[Image], text: str) -> dict[str, Any]:
    """A ``user`` message holding ``images`` after a short ``text`` saying what they are."""
    return {"role": "user", "content": [{"type": "text", "text": text}, *(image_part(i) for i in images)]}


def has_images(messages: Iterable[Mapping[str, Any]]) -> bool:
    """True when some message has list content (the only place an image part can be)."""
    return any(type(message.get("content")) is list for message in messages)


def _decode_data_url(url: str) -> Image | None:
    head, sep, payload = url.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        return None
    mime = head[5:-7]
    if mime not in _EXTENSIONS:
        return None
    try:
        return Image(base64.b64decode(payload, validate=True), mime)
    except (binascii.Error, ValueError):
        return None


class ImageStore:
    """The ``images/`` directory of a run: content-addressed files, written once each."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)  # the run directory; images go to root/images
        self._known: set[str] = set()

    def put(self, image: Image) -> str:
        """Store ``image`` (once) and return its reference URL."""
        name = f"{image.sha256}.{_EXTENSIONS[image.mime]}"
        if name not in self._known:
            path = self.root / DIRNAME / name
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                tmp.write_bytes(image.data)
                os.replace(tmp, path)  # readers never see half an image
            self._known.add(name)
        return f"{REF_SCHEME}{DIRNAME}/{name}"

    def get(self, ref: str) -> Image:
        """The image a reference names (raises FileNotFoundError if it is not in this run)."""
        if not ref.startswith(REF_SCHEME):
            raise ValueError(f"not an image reference: {ref[:80]!r}")
        relative = ref[len(REF_SCHEME) :]
        name = os.path.basename(relative)
        if relative != f"{DIRNAME}/{name}":
            raise ValueError(f"not an image reference of a run: {ref[:80]!r}")
        return Image((self.root / DIRNAME / name).read_bytes(), _MIMES.get(name.rsplit(".", 1)[-1], "image/png"))

    def externalize(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``messages`` with every inline image replaced by its reference (new objects where
        something changed; the caller's messages are never modified)."""
        return [self._map_message(m, self._to_ref) for m in messages]

    def inline(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``messages`` with every reference replaced by the image's data URL again."""
        return [self._map_message(m, self._to_data) for m in messages]

    def _to_ref(self, url: str) -> str:
        image = _decode_data_url(url) if url.startswith("data:") else None
        return url if image is None else self.put(image)

    def _to_data(self, url: str) -> str:
        return self.get(url).data_url() if url.startswith(REF_SCHEME) else url

    @staticmethod
    def _map_message(message: dict[str, Any], convert: Any) -> dict[str, Any]:
        content = message.get("content")
        if type(content) is not list:
            return message
        parts = []
        changed = False
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "image_url" and isinstance(part.get("image_url"), Mapping):
                url = part["image_url"].get("url")
                if isinstance(url, str):
                    new = convert(url)
                    if new is not url:
                        part = {**part, "image_url": {**part["image_url"], "url": new}}
                        changed = True
            parts.append(part)
        return {**message, "content": parts} if changed else message
