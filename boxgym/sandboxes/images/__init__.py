"""Sandbox images, built from recipes without any registry.

``boxgym images build`` turns each :class:`Recipe` into ``boxgym/<name>:<hash12>``:
Debian packages (debootstrap + apt in a chroot), Python wheels built on the host and
installed offline, extra files and commands, the ``agent`` user, and the tool server.
Sandboxes ask :func:`resolve_image` for the tag (cheap, never builds) or
:func:`ensure_image` (builds when missing).

Nothing here talks to the engine at import time.
"""

from __future__ import annotations

from .build import BuildEvent, Progress, build_image, cache_dir
from .catalog import ImageStatus, copy_image, ensure_image, list_images, prune_images, resolve_image
from .recipes import (
    DESKTOP,
    SCIENCEWORLD,
    SLIM,
    Recipe,
    get_recipe,
    image_hash,
    image_tag,
    load_recipes,
    recipe_names,
    register_recipe,
    unregister_recipe,
)

__all__ = [
    "DESKTOP",
    "SCIENCEWORLD",
    "SLIM",
    "BuildEvent",
    "ImageStatus",
    "Progress",
    "Recipe",
    "build_image",
    "cache_dir",
    "copy_image",
    "ensure_image",
    "get_recipe",
    "image_hash",
    "image_tag",
    "list_images",
    "load_recipes",
    "prune_images",
    "recipe_names",
    "register_recipe",
    "resolve_image",
    "unregister_recipe",
]
