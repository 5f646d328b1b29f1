"""Image recipes: what goes into a sandbox image, and the hash that names it.

A :class:`Recipe` is data. It starts from a Debian suite (``base="debian:bookworm"``,
debootstrapped) or from another recipe's image (``base="slim"``) and adds, in this
order: Debian packages, Python wheels (built on the host, installed offline), files,
and shell commands run in the image's root. Every image then gets the boxgym layer
(the ``agent`` user, ``/workspace``, ``/run/boxgym``) and, on top, the tool server.

The tag of an image is ``boxgym/<name>:<hash12>`` where the hash covers everything
that shapes the image: the base (recursively), packages, wheel requirements, the
contents of extra files, run commands, the builder's own scripts and the tool
server's source. An unchanged recipe maps to the same tag and is never rebuilt;
any change gives a new tag. The tag names the recipe, not a byte-identical image:
Debian packages and the unpinned dependencies of pinned wheels come from the mirror
and the index as they are on the day of the build.

Registering: the built-in recipes are ``slim``, ``desktop``, ``jupyter`` and ``scienceworld``. Add your own with
:func:`register_recipe`, from a TOML/JSON file with :func:`load_recipes`, or from an
installed package through the ``boxgym.recipes`` entry-point group (each entry point
names a :class:`Recipe` object, ``"mypkg.images:RECIPE"``), which the ``boxgym``
command also sees.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boxgym.errors import ImageNotFound

from . import scripts

__all__ = [
    "DEBIAN_PREFIX",
    "DESKTOP",
    "JUPYTER",
    "SCIENCEWORLD",
    "SLIM",
    "Recipe",
    "get_recipe",
    "image_hash",
    "image_tag",
    "load_recipes",
    "recipe_names",
    "register_recipe",
    "unregister_recipe",
]

#: A base that starts with this is debootstrapped: ``debian:<suite>``.
DEBIAN_PREFIX = "debian:"

#: Where the tool server lives in the host package, and where it goes in the image.
TOOLSERVER_SOURCE = Path(__file__).resolve().parents[1] / "toolserver"
TOOLSERVER_DEST = "/opt/boxgym/toolserver"
#: C helpers of the tool server, compiled by the builder (``cc -static``) into the image.
#: The host's ``bin/`` (a local build of them) is neither hashed nor copied.
TOOLSERVER_HELPERS = {"spawn.c": "bin/boxgym-spawn", "init.c": "bin/boxgym-init"}
TOOLSERVER_SKIP = frozenset({"bin"})
#: Every boxgym image lives in a repository named ``boxgym/<recipe>``.
REPOSITORY_PREFIX = "boxgym/"
#: Labels on every boxgym image (``hash`` only on finished images, ``rootfs`` on both).
LABEL_RECIPE = "boxgym.image.recipe"
LABEL_HASH = "boxgym.image.hash"
LABEL_ROOTFS = "boxgym.image.rootfs"

FileSource = Path | bytes

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Recipe:
    """One sandbox image, described as data.

    ``files`` maps an absolute destination path in the image to a host path (a file or
    a directory, copied recursively) or to the file's bytes. Host paths are read when
    the recipe is hashed and when it is built, so editing the file changes the tag.
    ``run`` commands execute with ``/bin/sh -c`` as root in the image's root, after
    packages, wheels and files. They have the build host's network, so ``apt-get``
    works, but pip inside cannot reach the index: list Python packages in ``wheels``.
    The finished image has no network unless the sandbox grants one.
    """

    name: str
    base: str = "debian:bookworm"
    packages: tuple[str, ...] = ()
    wheels: tuple[str, ...] = ()  # pinned requirement strings, e.g. "pillow==11.0.0"
    files: tuple[tuple[str, FileSource], ...] = ()
    run: tuple[str, ...] = ()
    description: str = ""

    def __init__(
        self,
        name: str,
        base: str = "debian:bookworm",
        packages: Iterable[str] = (),
        wheels: Iterable[str] = (),
        files: Mapping[str, str | os.PathLike[str] | bytes] | Iterable[tuple[str, Any]] = (),
        run: Iterable[str] = (),
        description: str = "",
    ) -> None:
        if not _NAME_RE.match(name):
            raise ValueError(f"recipe name {name!r} must match {_NAME_RE.pattern} (it becomes a Docker repository)")
        if name == base:
            raise ValueError(f"recipe {name!r} cannot be its own base")
        items = files.items() if isinstance(files, Mapping) else files
        normalised: list[tuple[str, FileSource]] = []
        for dest, source in items:
            if not dest.startswith("/") or ".." in Path(dest).parts:
                raise ValueError(f"recipe {name!r}: file destination {dest!r} must be an absolute path without '..'")
            normalised.append((dest, bytes(source) if isinstance(source, bytes | bytearray) else Path(source)))
        for attr, value in (
            ("name", name),
            ("base", base),
            ("packages", _strings(name, "packages", packages)),
            ("wheels", _strings(name, "wheels", wheels)),
            ("files", tuple(sorted(normalised, key=lambda item: item[0]))),
            ("run", _strings(name, "run", run)),
            ("description", description),
        ):
            object.__setattr__(self, attr, value)

    @property
    def debian_suite(self) -> str | None:
        """The Debian suite this recipe debootstraps, or ``None`` if it extends a recipe."""
        return self.base[len(DEBIAN_PREFIX) :] if self.base.startswith(DEBIAN_PREFIX) else None


def _strings(name: str, what: str, values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise TypeError(f"recipe {name!r}: {what} must be a list of strings, not one string")
    out = tuple(values)
    for value in out:
        if not isinstance(value, str) or not value.strip():
            raise TypeError(f"recipe {name!r}: {what} holds {value!r}, expected non-empty strings")
    return out


# -- the built-in recipes ----------------------------------------------------------

SLIM = Recipe(
    name="slim",
    base="debian:bookworm",
    packages=("bash", "coreutils", "procps", "git", "ca-certificates", "patch", "less", "xz-utils"),
    description="Python 3, a shell, git and the tool server",
)

DESKTOP = Recipe(
    name="desktop",
    base="slim",
    packages=(
        "chromium",
        "libatomic1",  # Playwright's bundled node driver links it
        "fonts-dejavu-core",
        "xvfb",
        "xauth",
        "openbox",
        "python3-tk",  # pyautogui imports mouseinfo, which exits the interpreter without tkinter
        "x11-utils",  # xdpyinfo/xwininfo: wait for the display, debug windows
    ),
    wheels=(
        "jupyter-client==8.10.0",
        "ipykernel==7.4.0",
        "playwright==1.65.2",
        "pyautogui==0.9.54",
        "python-xlib==0.33",
        "pillow==13.0.0",
        "miniwob==1.1.0",  # MiniWoB++'s task pages, served to the browser (boxgym/miniwob.*-v0)
    ),
    # Executable, not readable, by the agent: the kernel makes the browser's processes (the agent's
    # own uid) non-dumpable, so the agent's shell cannot attach to them or read their memory.
    run=("chmod 0711 /usr/lib/chromium/chromium",),
    description="slim + Jupyter kernel, Chromium driven by Playwright, Xvfb + openbox + pyautogui",
)

JUPYTER = Recipe(
    name="jupyter",
    base="slim",
    wheels=(
        "jupyter-client==8.10.0",
        "ipykernel==7.4.0",
        "numpy==2.4.6",
        "pandas==3.1.1",
        "matplotlib==3.11.2",
        "pillow==13.0.0",
    ),
    description="slim + a Jupyter kernel with NumPy, pandas, Matplotlib and Pillow (the IPython toolset, data analysis)",
)

SCIENCEWORLD = Recipe(
    name="scienceworld",
    base="slim",
    wheels=("scienceworld==1.2.3",),  # the jar is in the wheel; py4j comes with it
    run=(
        # Java 17 for the jar. Not in `packages`: its postinst links a man page into
        # /usr/share/man/man1, which the images' no-docs dpkg rule never creates.
        "mkdir -p /usr/share/man/man1 && apt-get update -q && "
        "apt-get install -y -q --no-install-recommends default-jre-headless",
        # Only the simulator's user (10002, boxgym.sandboxes.toolserver.ops_blackbox) may read the
        # package: an agent with a shell cannot run its own ScienceWorld to compute gold paths.
        'd=$(python3 -c "import os, scienceworld; print(os.path.dirname(scienceworld.__file__))") && '
        'chown -R root:10002 "$d" && chmod -R o-rwx "$d"',
    ),
    description="slim + ScienceWorld 1.2.3 (its jar and py4j) and Java 17, for boxgym/ScienceWorld-v0",
)

_BUILTIN = {recipe.name: recipe for recipe in (SLIM, DESKTOP, JUPYTER, SCIENCEWORLD)}
_registry: dict[str, Recipe] = dict(_BUILTIN)
_entry_points_loaded = False


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group="boxgym.recipes"):
        recipe = ep.load()
        if not isinstance(recipe, Recipe):
            raise TypeError(f"entry point {ep.name} = {ep.value!r} is not a boxgym Recipe")
        _registry.setdefault(recipe.name, recipe)


def register_recipe(recipe: Recipe, *, replace: bool = False) -> Recipe:
    """Make ``recipe`` buildable by name. Replacing an existing name needs ``replace=True``."""
    _load_entry_points()
    current = _registry.get(recipe.name)
    if current is not None and current != recipe and not replace:
        raise ValueError(f"a different recipe named {recipe.name!r} is registered; pass replace=True to override it")
    _registry[recipe.name] = recipe
    return recipe


def unregister_recipe(name: str) -> None:
    """Forget a registered recipe; a built-in one goes back to its built-in definition."""
    if name in _BUILTIN:
        _registry[name] = _BUILTIN[name]
    else:
        _registry.pop(name, None)


def get_recipe(name: str) -> Recipe:
    _load_entry_points()
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry))
        raise ImageNotFound(
            f"no image recipe named {name!r} (known: {known}); register one with "
            f"boxgym.sandboxes.images.register_recipe() or pass `boxgym images build --recipe FILE`"
        ) from None


def recipe_names() -> list[str]:
    _load_entry_points()
    return sorted(_registry)


def lineage(recipe: Recipe) -> list[Recipe]:
    """The recipe and its bases, the debootstrapped one first."""
    chain = [recipe]
    while chain[0].debian_suite is None:
        parent = get_recipe(chain[0].base)
        if parent in chain:
            raise ValueError(f"recipe {recipe.name!r} has a cycle in its bases: {[r.name for r in chain]}")
        chain.insert(0, parent)
    return chain


# -- loading from files ---------------------------------------------------------------


def load_recipes(path: str | os.PathLike[str], *, register: bool = True) -> list[Recipe]:
    """Read recipes from a TOML or JSON file and (by default) register them.

    The file holds one recipe at its top level, or a list of them under ``recipes``
    (``[[recipes]]`` in TOML). Relative paths in ``files`` are relative to the file::

        name = "mytools"
        base = "slim"
        packages = ["jq", "ripgrep"]
        wheels = ["numpy==2.1.3"]
        run = ["git config --system init.defaultBranch main"]
        [files]
        "/etc/mytools.conf" = "mytools.conf"             # a host path
        "/etc/motd" = { content = "welcome\\n" }          # inline text
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import tomllib

            data = tomllib.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}") from exc
    entries = data.get("recipes", [data])
    recipes = [_recipe_from_mapping(entry, path) for entry in entries]
    if register:
        for recipe in recipes:
            register_recipe(recipe, replace=True)
    return recipes


_FIELDS = {"name", "base", "packages", "wheels", "files", "run", "description"}


def _recipe_from_mapping(entry: Mapping[str, Any], origin: Path) -> Recipe:
    unknown = set(entry) - _FIELDS
    if unknown:
        raise ValueError(f"{origin}: unknown recipe keys {sorted(unknown)} (allowed: {sorted(_FIELDS)})")
    if "name" not in entry:
        raise ValueError(f"{origin}: a recipe needs a name")
    files: dict[str, FileSource] = {}
    for dest, source in dict(entry.get("files", {})).items():
        if isinstance(source, str):
            files[dest] = (origin.parent / source).resolve()
        elif isinstance(source, Mapping) and set(source) == {"content"}:
            files[dest] = str(source["content"]).encode()
        else:
            raise ValueError(f'{origin}: files[{dest!r}] must be a path or {{content = "..."}}')
    kwargs = {key: entry[key] for key in ("base", "packages", "wheels", "run", "description") if key in entry}
    return Recipe(name=entry["name"], files=files, **kwargs)


# -- hashing ----------------------------------------------------------------------------


def tree_digest(source: FileSource, *, skip: frozenset[str] = frozenset()) -> str:
    """A digest of a file's bytes and mode, or of a directory's files (``__pycache__`` ignored)."""
    h = hashlib.sha256()
    if isinstance(source, bytes):
        h.update(b"bytes\0" + source)
        return h.hexdigest()
    if not source.exists():
        raise FileNotFoundError(f"recipe file source {source} does not exist")
    for rel, path in iter_tree(source, skip=skip):
        h.update(f"{rel}\0{path.stat().st_mode & 0o111:o}\0".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def iter_tree(source: Path, *, skip: frozenset[str] = frozenset()) -> list[tuple[str, Path]]:
    """``(relative path, path)`` of the regular files under ``source``, sorted; a file is ``("", source)``.

    ``__pycache__`` and the top-level directories named in ``skip`` are left out.
    """
    if source.is_file():
        return [("", source)]
    out = []
    for dirpath, dirnames, filenames in os.walk(source):
        top = Path(dirpath) == source
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not (top and d in skip))
        for filename in sorted(filenames):
            if filename.endswith((".pyc", ".pyo")):
                continue
            path = Path(dirpath, filename)
            if path.is_file():
                out.append((path.relative_to(source).as_posix(), path))
    return out


def _canonical(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _sha(document: Any) -> str:
    return hashlib.sha256(_canonical(document)).hexdigest()


def base_hash(suite: str) -> str:
    """The hash of a debootstrapped ``debian:<suite>`` root, which the builder caches as a tarball."""
    return _sha(
        {
            "kind": "debian",
            "suite": suite,
            "variant": scripts.DEBOOTSTRAP_VARIANT,
            "include": scripts.DEBOOTSTRAP_INCLUDE,
            "setup": scripts.BASE_SETUP,
            "format": scripts.BUILD_FORMAT,
        }
    )


def rootfs_hash(recipe: Recipe) -> str:
    """The hash of everything in ``recipe``'s image except the tool server."""
    chain = lineage(recipe)  # raises on unknown bases and cycles
    digest = base_hash(chain[0].debian_suite or "")
    for layer in chain:
        digest = _sha(
            {
                "kind": "rootfs",
                "name": layer.name,
                "base": digest,
                "packages": layer.packages,
                "wheels": layer.wheels,
                "pip": scripts.BUILD_PIP if layer.wheels else None,
                "files": [[dest, tree_digest(source)] for dest, source in layer.files],
                "run": layer.run,
                "scripts": [
                    scripts.PREPARE,
                    scripts.APT_INSTALL,
                    scripts.PIP_INSTALL,
                    scripts.BOXGYM_LAYER,
                    scripts.CLEANUP,
                ],
                "format": scripts.BUILD_FORMAT,
            }
        )
    return digest


def toolserver_digest(toolserver: Path | None = TOOLSERVER_SOURCE) -> str | None:
    """The digest of the tool server's source, ``None`` if there is none (yet)."""
    if toolserver is None or not toolserver.is_dir():
        return None
    return tree_digest(toolserver, skip=TOOLSERVER_SKIP)


def image_hash(recipe: Recipe, *, toolserver: Path | None = TOOLSERVER_SOURCE) -> str:
    """The full hash that names ``recipe``'s image: its root filesystem plus the tool server."""
    return _sha(
        {
            "kind": "image",
            "rootfs": rootfs_hash(recipe),
            "toolserver": toolserver_digest(toolserver),
            "helpers": TOOLSERVER_HELPERS,
            "cc": scripts.CC_FLAGS,
            "changes": scripts.IMAGE_CHANGES,
            "smoke": scripts.SMOKE_CHECK,
            "format": scripts.BUILD_FORMAT,
        }
    )


def image_tag(recipe: Recipe, *, toolserver: Path | None = TOOLSERVER_SOURCE) -> str:
    """``boxgym/<name>:<hash12>``: the tag of the image that ``recipe`` builds today."""
    return f"{REPOSITORY_PREFIX}{recipe.name}:{image_hash(recipe, toolserver=toolserver)[:12]}"


def rootfs_tag(recipe: Recipe) -> str:
    """The tag of the intermediate image without the tool server (rebuilt only when the rest changes)."""
    return f"{REPOSITORY_PREFIX}{recipe.name}:rootfs-{rootfs_hash(recipe)[:12]}"
