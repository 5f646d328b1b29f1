"""The image builder: recipe hashing and loading, registration, resolve/ensure, and the built images.

Tests marked ``docker`` inspect the images that ``boxgym images build`` made; without
them they skip, unless ``BOXGYM_REQUIRE_DOCKER=1`` (CI), where a missing image fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from boxgym.errors import EngineError, EngineUnavailable, ImageBuildError, ImageNotFound
from boxgym.sandboxes.config import AGENT_UID, WORKDIR
from boxgym.sandboxes.images import (
    DESKTOP,
    SLIM,
    Recipe,
    catalog,
    ensure_image,
    get_recipe,
    image_hash,
    image_tag,
    load_recipes,
    prune_images,
    recipe_names,
    register_recipe,
    resolve_image,
    runner,
    unregister_recipe,
)
from boxgym.sandboxes.images import build as build_module
from boxgym.sandboxes.images.dockercli import ImageInfo, image_info
from boxgym.sandboxes.images.recipes import TOOLSERVER_SOURCE, rootfs_hash, rootfs_tag

TEST_LABEL = "boxgym.sandbox=test-images"


@pytest.fixture
def toolserver(tmp_path: Path) -> Path:
    """A stand-in tool-server source tree, so hashes do not follow the real one's edits."""
    root = tmp_path / "toolserver"
    root.mkdir()
    (root / "main.py").write_text("print('serving')\n")
    (root / "procs.py").write_text("X = 1\n")
    return root


@pytest.fixture
def registered():
    """Register recipes for one test and forget them afterwards."""
    names: list[str] = []

    def register(recipe: Recipe, **kwargs) -> Recipe:
        names.append(recipe.name)
        return register_recipe(recipe, **kwargs)

    yield register
    for name in names:
        unregister_recipe(name)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- hashing -----------------------------------------------------------------------------


def test_hash_is_stable_and_names_the_tag(toolserver: Path) -> None:
    twin = Recipe(name="slim", base=SLIM.base, packages=list(SLIM.packages), description="another text")
    first = image_hash(SLIM, toolserver=toolserver)
    assert first == image_hash(SLIM, toolserver=toolserver) == image_hash(twin, toolserver=toolserver)
    assert len(first) == 64
    assert image_tag(SLIM, toolserver=toolserver) == f"boxgym/slim:{first[:12]}"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"packages": SLIM.packages + ("jq",)}, id="package added"),
        pytest.param({"packages": SLIM.packages[1:]}, id="package removed"),
        pytest.param({"wheels": ("six==1.16.0",)}, id="wheel added"),
        pytest.param({"files": {"/etc/motd": b"hello\n"}}, id="file added"),
        pytest.param({"run": ("true",)}, id="run command added"),
        pytest.param({"base": "debian:trixie"}, id="other suite"),
        pytest.param({"name": "slim2"}, id="other name"),
    ],
)
def test_hash_changes_with_every_input(change: dict, toolserver: Path) -> None:
    changed = Recipe(**{**_fields(SLIM), **change})
    assert image_hash(changed, toolserver=toolserver) != image_hash(SLIM, toolserver=toolserver)
    assert rootfs_hash(changed) != rootfs_hash(SLIM)


def _fields(recipe: Recipe) -> dict:
    return {
        "name": recipe.name,
        "base": recipe.base,
        "packages": recipe.packages,
        "wheels": recipe.wheels,
        "files": recipe.files,
        "run": recipe.run,
    }


def test_wheel_pin_changes_hash(toolserver: Path) -> None:
    bumped = replace(DESKTOP, wheels=tuple(w.replace("pillow==", "pillow==0.") for w in DESKTOP.wheels))
    assert bumped.wheels != DESKTOP.wheels
    assert image_hash(bumped, toolserver=toolserver) != image_hash(DESKTOP, toolserver=toolserver)


def test_host_file_contents_are_hashed_not_paths(tmp_path: Path, toolserver: Path) -> None:
    conf = tmp_path / "app.conf"
    conf.write_text("a = 1\n")
    recipe = Recipe(name="withfile", base="debian:bookworm", files={"/etc/app.conf": conf})
    before = image_hash(recipe, toolserver=toolserver)
    assert image_hash(recipe, toolserver=toolserver) == before
    conf.write_text("a = 2\n")
    assert image_hash(recipe, toolserver=toolserver) != before
    conf.chmod(0o755)  # an executable bit is content too
    after_edit = image_hash(recipe, toolserver=toolserver)
    conf.chmod(0o644)
    assert image_hash(recipe, toolserver=toolserver) != after_edit


def test_directory_source_hashes_each_file(tmp_path: Path, toolserver: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.txt").write_text("a")
    recipe = Recipe(name="withtree", files={"/opt/tree": tree})
    before = image_hash(recipe, toolserver=toolserver)
    (tree / "sub" / "b.txt").write_text("b")
    assert image_hash(recipe, toolserver=toolserver) != before


def test_toolserver_source_changes_image_hash_but_not_rootfs(toolserver: Path) -> None:
    before = image_hash(SLIM, toolserver=toolserver)
    rootfs_before = rootfs_hash(SLIM)
    (toolserver / "procs.py").write_text("X = 2\n")
    assert image_hash(SLIM, toolserver=toolserver) != before
    assert rootfs_hash(SLIM) == rootfs_before  # only the thin tool-server layer is rebuilt


def test_toolserver_build_artifacts_do_not_change_hash(toolserver: Path) -> None:
    before = image_hash(SLIM, toolserver=toolserver)
    (toolserver / "__pycache__").mkdir()
    (toolserver / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    (toolserver / "bin").mkdir()
    (toolserver / "bin" / "boxgym-spawn").write_bytes(b"\x7fELF")  # compiled by the builder, not copied
    assert image_hash(SLIM, toolserver=toolserver) == before
    (toolserver / "spawn.c").write_text("int main(void) { return 0; }\n")
    assert image_hash(SLIM, toolserver=toolserver) != before


def test_missing_toolserver_still_hashes(tmp_path: Path, toolserver: Path) -> None:
    missing = image_hash(SLIM, toolserver=tmp_path / "nowhere")
    assert missing != image_hash(SLIM, toolserver=toolserver)


def test_base_recipe_change_propagates_to_children(registered, toolserver: Path) -> None:
    parent = registered(Recipe(name=_unique("parent"), base="slim", packages=("jq",)))
    child = registered(Recipe(name=_unique("child"), base=parent.name, packages=("tree",)))
    before = image_hash(child, toolserver=toolserver)
    registered(replace(parent, packages=("jq", "file")), replace=True)
    assert image_hash(child, toolserver=toolserver) != before


def test_desktop_builds_on_slim() -> None:
    assert DESKTOP.base == "slim"
    bumped_slim = replace(SLIM, packages=SLIM.packages + ("jq",))
    before = rootfs_hash(DESKTOP)
    register_recipe(bumped_slim, replace=True)
    try:
        assert rootfs_hash(DESKTOP) != before
    finally:
        unregister_recipe("slim")
    assert get_recipe("slim") == SLIM


def test_builtin_wheels_are_pinned() -> None:
    assert DESKTOP.wheels
    assert all("==" in requirement for requirement in DESKTOP.wheels)


# -- recipes: validation, registration, files ---------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"name": "Bad Name"}, id="name not a repository"),
        pytest.param({"name": "x", "base": "x"}, id="own base"),
        pytest.param({"name": "x", "files": {"etc/motd": b""}}, id="relative destination"),
        pytest.param({"name": "x", "files": {"/etc/../motd": b""}}, id="dotdot destination"),
    ],
)
def test_invalid_recipes_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Recipe(**kwargs)


def test_one_string_instead_of_a_list_is_refused() -> None:
    with pytest.raises(TypeError, match="list of strings"):
        Recipe(name="x", packages="jq")


def test_register_and_unregister(registered) -> None:
    name = _unique("mine")
    recipe = registered(Recipe(name=name, base="slim", packages=("jq",)))
    assert get_recipe(name) is recipe
    assert name in recipe_names()
    with pytest.raises(ValueError, match="replace=True"):
        register_recipe(Recipe(name=name, base="slim", packages=("tree",)))
    unregister_recipe(name)
    with pytest.raises(ImageNotFound, match=name):
        get_recipe(name)


def test_builtins_cannot_be_replaced_by_accident() -> None:
    with pytest.raises(ValueError):
        register_recipe(Recipe(name="slim", packages=("jq",)))
    assert get_recipe("slim") == SLIM


def test_unknown_base_is_reported(registered, toolserver: Path) -> None:
    orphan = registered(Recipe(name=_unique("orphan"), base="no-such-recipe"))
    with pytest.raises(ImageNotFound, match="no-such-recipe"):
        image_hash(orphan, toolserver=toolserver)


def test_recipes_from_installed_packages_via_entry_points(monkeypatch) -> None:
    import importlib.metadata

    from boxgym.sandboxes.images import recipes as recipes_module

    plugin = Recipe(name=_unique("plugin"), base="slim", packages=("jq",))

    class FakeEntryPoint:
        name = plugin.name
        value = "someplugin.images:RECIPE"

        def load(self) -> Recipe:
            return plugin

    def fake_entry_points(*, group: str):
        return [FakeEntryPoint()] if group == "boxgym.recipes" else []

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    monkeypatch.setattr(recipes_module, "_entry_points_loaded", False)
    try:
        assert get_recipe(plugin.name) is plugin
        assert plugin.name in recipe_names()
    finally:
        unregister_recipe(plugin.name)


def test_load_recipe_from_toml(tmp_path: Path, toolserver: Path) -> None:
    name = _unique("fromtoml")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "tool.conf").write_text("x = 1\n")
    path = tmp_path / "recipe.toml"
    path.write_text(
        f"""
name = "{name}"
base = "slim"
packages = ["jq", "ripgrep"]
wheels = ["six==1.16.0"]
run = ["git config --system init.defaultBranch main"]

[files]
"/etc/tool.conf" = "conf/tool.conf"
"/etc/motd" = {{ content = "welcome\\n" }}
"""
    )
    try:
        (recipe,) = load_recipes(path)
        assert get_recipe(name) is recipe
        assert recipe.base == "slim"
        assert recipe.packages == ("jq", "ripgrep")
        assert recipe.wheels == ("six==1.16.0",)
        assert recipe.run == ("git config --system init.defaultBranch main",)
        assert dict(recipe.files) == {"/etc/motd": b"welcome\n", "/etc/tool.conf": tmp_path / "conf" / "tool.conf"}
        before = image_hash(recipe, toolserver=toolserver)
        (tmp_path / "conf" / "tool.conf").write_text("x = 2\n")
        assert image_hash(load_recipes(path)[0], toolserver=toolserver) != before
    finally:
        unregister_recipe(name)


def test_load_several_recipes_from_json(tmp_path: Path) -> None:
    a, b = _unique("a"), _unique("b")
    path = tmp_path / "recipes.json"
    path.write_text(json.dumps({"recipes": [{"name": a, "base": "slim"}, {"name": b, "base": a, "packages": ["jq"]}]}))
    try:
        recipes = load_recipes(path)
        assert [r.name for r in recipes] == [a, b]
        assert rootfs_hash(get_recipe(b))  # b's base resolves to a, which resolves to slim
    finally:
        unregister_recipe(a)
        unregister_recipe(b)


def test_load_refuses_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\nextends = "slim"\n')
    with pytest.raises(ValueError, match="extends"):
        load_recipes(path)
    assert "x" not in recipe_names()


# -- resolve and ensure, with the engine faked ---------------------------------------------


async def test_resolve_unknown_recipe_raises_image_not_found() -> None:
    with pytest.raises(ImageNotFound, match="no image recipe named"):
        await resolve_image("no-such-recipe")


async def test_resolve_unbuilt_image_says_how_to_build(monkeypatch, registered) -> None:
    name = _unique("unbuilt")
    registered(Recipe(name=name, base="slim", packages=("jq",)))

    async def nothing(ref: str):
        return None

    monkeypatch.setattr(catalog, "image_info", nothing)
    with pytest.raises(ImageNotFound, match=f"boxgym images build {name}"):
        await resolve_image(name)


async def test_ensure_builds_only_when_missing(monkeypatch, registered) -> None:
    name = _unique("ensured")
    recipe = registered(Recipe(name=name, base="slim"))
    present: set[str] = set()
    builds: list[str] = []

    async def fake_info(ref: str):
        return ImageInfo(ref, (ref,), {}, 1, "") if ref in present else None

    async def fake_build(recipe: Recipe, *, force: bool, progress) -> str:
        builds.append(recipe.name)
        present.add(image_tag(recipe))
        return image_tag(recipe)

    monkeypatch.setattr(catalog, "image_info", fake_info)
    monkeypatch.setattr(catalog, "build_image", fake_build)
    tag = await ensure_image(name)
    assert tag == image_tag(recipe)
    assert await ensure_image(name) == tag
    assert builds == [name]  # the second call found the image
    await ensure_image(name, force=True)
    assert builds == [name, name]


# -- the engine boundary: docker CLI failures become boxgym errors ---------------------------


def _fake_docker(monkeypatch, tmp_path: Path, stderr: str, code: int) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "docker"
    script.write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit {code}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))


async def test_no_daemon_is_engine_unavailable(monkeypatch, tmp_path: Path) -> None:
    _fake_docker(monkeypatch, tmp_path, "Cannot connect to the Docker daemon at unix:///x.sock.", 1)
    with pytest.raises(EngineUnavailable, match="Cannot connect"):
        await image_info("boxgym/slim:000000000000")


async def test_missing_image_is_none_and_other_failures_are_engine_errors(monkeypatch, tmp_path: Path) -> None:
    _fake_docker(monkeypatch, tmp_path, "Error: No such image: boxgym/slim:0", 1)
    assert await image_info("boxgym/slim:000000000000") is None
    script = tmp_path / "bin" / "docker"
    script.write_text("#!/bin/sh\necho 'permission denied while trying to connect' >&2\nexit 1\n")
    with pytest.raises(EngineError) as info:
        await image_info("boxgym/slim:000000000000")
    assert not isinstance(info.value, EngineUnavailable)
    assert "permission denied" in (info.value.daemon_message or "")


async def test_no_docker_command_is_engine_unavailable(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineUnavailable, match="not on PATH"):
        await image_info("boxgym/slim:000000000000")


# -- builder internals: failures, cancellation, mounts --------------------------------------


@pytest.fixture
def builder(tmp_path: Path):
    b = runner.Runner(tmp_path / "cache", progress=None, verbose=False)
    try:
        yield b
    finally:
        b.close()


async def test_failed_step_names_the_command_and_its_output(builder) -> None:
    with pytest.raises(ImageBuildError) as info:
        await builder.run(["sh", "-c", "echo first line; echo 'E: Unable to locate package nope' >&2; exit 100"])
    message = str(info.value)
    assert "exited with 100" in message
    assert "Unable to locate package nope" in message
    assert "sh -c" in message
    assert str(builder.log_path) in message


async def test_failed_chroot_script_is_named_by_its_script(builder, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(runner, "_CHROOT_ENV", ())
    fake_chroot = tmp_path / "bin" / "chroot"
    fake_chroot.parent.mkdir()
    fake_chroot.write_text('#!/bin/sh\nshift\nexec "$@"\n')  # run the command on the host instead
    fake_chroot.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_chroot.parent}:{os.environ['PATH']}")
    with pytest.raises(ImageBuildError) as info:
        await builder.chroot(tmp_path, "echo installing; exit 7")
    assert str(info.value).startswith("`echo installing; exit 7` in the image's root exited with 7")


async def test_a_hung_command_is_killed_at_its_deadline(builder, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    builder.command_timeout = 0.5
    with pytest.raises(ImageBuildError, match="(?s)ran longer than 0.5s.*still waiting"):
        await builder.run(["sh", "-c", f"sleep 300 & echo $! > {pidfile}; echo still waiting; wait"])
    grandchild = int(pidfile.read_text())
    for _ in range(100):
        if not _alive(grandchild):
            break
        await asyncio.sleep(0.05)
    assert not _alive(grandchild)


async def test_missing_tool_is_a_build_error(builder) -> None:
    with pytest.raises(ImageBuildError, match="not installed"):
        await builder.run(["boxgym-no-such-tool-xyz"])


async def test_cancelling_a_step_kills_its_whole_process_group(builder, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    task = asyncio.ensure_future(builder.run(["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"]))
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.05)
    grandchild = int(pidfile.read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if not _alive(grandchild):
            break
        await asyncio.sleep(0.05)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_output_without_newlines_is_kept_and_tailed(builder) -> None:
    out = await builder.run(["sh", "-c", "head -c 200000 /dev/zero | tr '\\0' x"])  # one 200 kB line
    assert out == "x" * 200_000
    with pytest.raises(ImageBuildError) as info:
        await builder.run(["sh", "-c", "head -c 200000 /dev/zero | tr '\\0' y; echo; echo the-reason; exit 2"])
    assert "the-reason" in str(info.value)
    assert len(str(info.value)) < 20_000  # a tail, not the whole output


def test_paths_that_symlinks_lead_out_of_the_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "var" / "cache").mkdir(parents=True)
    (root / "var" / "cache" / "apt").symlink_to("/usr")  # absolute: on the host, /usr
    (root / "tmp").symlink_to("var")  # relative and inside: fine
    with pytest.raises(ImageBuildError, match="outside the build root"):
        runner.path_in_root(root, "/var/cache/apt/archives")
    assert runner.path_in_root(root, "/tmp/x") == root / "tmp" / "x"
    (root / "etc").symlink_to("../../elsewhere")  # relative, but out of the root
    with pytest.raises(ImageBuildError):
        runner.path_in_root(root, "/etc/resolv.conf")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_release_tree_unmounts_before_deleting(tmp_path: Path) -> None:
    root = tmp_path / "root"
    inner = root / "proc"
    inner.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(inner)], check=True)
    (inner / "kept-on-tmpfs").write_text("x")
    runner.release_tree(root)
    assert not root.exists()
    assert not [p for p in runner.mount_points() if p.startswith(str(tmp_path))]


def test_toolserver_tar_is_root_owned_and_skips_artifacts(toolserver: Path, tmp_path: Path) -> None:
    (toolserver / "__pycache__").mkdir()
    (toolserver / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (toolserver / "bin").mkdir()
    (toolserver / "bin" / "stale").write_bytes(b"old")
    helper = tmp_path / "compiled"
    helper.write_bytes(b"\x7fELF")
    data = build_module._toolserver_tar(toolserver, {"bin/boxgym-spawn": helper})
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert set(members) == {"toolserver", "toolserver/main.py", "toolserver/procs.py", "toolserver/bin",
                            "toolserver/bin/boxgym-spawn"}  # fmt: skip
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())
    assert members["toolserver/main.py"].mode == 0o644
    assert members["toolserver/bin/boxgym-spawn"].mode == 0o755


# -- the built images (docker) ---------------------------------------------------------------


def _built(name: str) -> str:
    tag = image_tag(get_recipe(name))
    if asyncio.run(image_info(tag)) is None:
        message = f"{tag} is not built; run `boxgym images build {name}`"
        if os.environ.get("BOXGYM_REQUIRE_DOCKER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return tag


def _run_in(tag: str, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--label", TEST_LABEL, tag, *argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


_LAYOUT_CHECK = """
import hashlib, json, os, pwd, stat
agent = pwd.getpwnam("agent")
ws = os.stat("{workdir}")
run = os.stat("/run/boxgym")
ts = "/opt/boxgym/toolserver"
files = {{}}
for d, dirs, names in os.walk(ts):
    for n in names:
        p = os.path.join(d, n)
        files[os.path.relpath(p, ts)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
spawn = os.path.join(ts, "bin", "boxgym-spawn")
print(json.dumps({{
    "agent": [agent.pw_uid, agent.pw_gid, agent.pw_dir, agent.pw_shell],
    "workdir": [ws.st_uid, ws.st_gid, stat.S_IMODE(ws.st_mode)],
    "run": [run.st_uid, stat.S_IMODE(run.st_mode)],
    "files": files,
    "spawn_executable": os.access(spawn, os.X_OK),
    "apt_lists": os.listdir("/var/lib/apt/lists") if os.path.isdir("/var/lib/apt/lists") else [],
    "env": [os.environ.get("LANG"), os.environ.get("PATH")],
}}))
"""


@pytest.mark.docker
@pytest.mark.parametrize("name", ["slim", "desktop"])
def test_image_has_agent_workspace_and_toolserver(name: str) -> None:
    tag = _built(name)
    result = _run_in(tag, "python3", "-I", "-c", _LAYOUT_CHECK.format(workdir=WORKDIR))
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["agent"] == [AGENT_UID, AGENT_UID, "/home/agent", "/bin/bash"]
    assert facts["workdir"] == [AGENT_UID, AGENT_UID, 0o755]
    assert facts["run"] == [0, 0o755]
    expected = {
        rel: hashlib.sha256(path.read_bytes()).hexdigest()
        for rel, path in build_module.iter_tree(TOOLSERVER_SOURCE, skip=build_module.TOOLSERVER_SKIP)
    }
    shipped = {rel: digest for rel, digest in facts["files"].items() if not rel.startswith("bin/")}
    assert shipped == expected
    assert "main.py" in shipped
    if (TOOLSERVER_SOURCE / "spawn.c").exists():
        assert facts["spawn_executable"]
    assert facts["apt_lists"] == []  # apt caches removed
    assert facts["env"][0] == "C.UTF-8"
    assert "/usr/local/bin" in facts["env"][1]


@pytest.mark.docker
@pytest.mark.parametrize("name", ["slim", "desktop"])
def test_image_labels_name_the_recipe_and_hash(name: str) -> None:
    tag = _built(name)
    info = asyncio.run(image_info(tag))
    assert info is not None
    recipe = get_recipe(name)
    assert info.labels["boxgym.image.recipe"] == name
    assert info.labels["boxgym.image.hash"] == image_hash(recipe)
    assert info.labels["boxgym.image.rootfs"] == rootfs_hash(recipe)
    assert asyncio.run(image_info(rootfs_tag(recipe))) is not None


@pytest.mark.docker
@pytest.mark.parametrize("name", ["slim", "desktop"])
def test_toolserver_runs_on_the_image_python_and_its_helper_drops_to_agent(name: str) -> None:
    tag = _built(name)
    result = _run_in(tag, "python3", "-I", "/opt/boxgym/toolserver/main.py", "--help")
    assert result.returncode == 0, result.stderr
    assert "--socket" in result.stdout
    if not (TOOLSERVER_SOURCE / "spawn.c").exists():
        return
    result = _run_in(
        tag, "/opt/boxgym/toolserver/bin/boxgym-spawn", str(AGENT_UID), str(AGENT_UID), "/usr/bin/id", "-u"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(AGENT_UID)


@pytest.mark.docker
@pytest.mark.parametrize("name", ["slim", "desktop"])
def test_image_lists_the_versions_it_got(name: str) -> None:
    tag = _built(name)
    result = _run_in(tag, "cat", "/opt/boxgym/debian-packages.txt", "/opt/boxgym/python-packages.txt")
    assert result.returncode == 0, result.stderr
    lines = set(result.stdout.splitlines())
    debian = {line.split("=")[0] for line in lines if "=" in line and "==" not in line}
    assert {"python3", "git", "procps"} <= debian
    if name == "desktop":
        assert {"chromium", "xvfb", "openbox"} <= debian
        pins = {
            re.sub(r"[-_.]+", "-", pin.split("==")[0]).lower() + "==" + pin.split("==")[1] for pin in DESKTOP.wheels
        }
        assert pins <= lines  # the recipe's pins, under their canonical names


@pytest.mark.docker
def test_slim_has_its_tools() -> None:
    tag = _built("slim")
    result = _run_in(tag, "sh", "-c", "git --version && ps --version && bash --version | head -1 && python3 -V")
    assert result.returncode == 0, result.stderr
    assert "git version" in result.stdout
    assert "Python 3.11" in result.stdout


@pytest.mark.docker
async def test_resolve_image_finds_the_built_image() -> None:
    tag = await asyncio.to_thread(_built, "slim")
    assert await resolve_image("slim") == tag


@pytest.mark.docker
async def test_resolve_unbuilt_image_against_the_engine(registered) -> None:
    name = _unique("unbuilt")
    registered(Recipe(name=name, base="slim", files={"/etc/marker": uuid.uuid4().bytes}))
    with pytest.raises(ImageNotFound, match=f"boxgym images build {name}"):
        await resolve_image(name)


@pytest.mark.docker
def test_desktop_has_its_tools() -> None:
    tag = _built("desktop")
    script = (
        "import jupyter_client, ipykernel, playwright, PIL, Xlib; "
        "import pyautogui, pyscreeze, pymsgbox; print('imports ok')"
    )
    result = _run_in(
        tag, "sh", "-c",
        "chromium --version && Xvfb -help 2>&1 | head -1 && command -v openbox && command -v xauth "
        f"&& xvfb-run -a python3 -c \"{script}\"",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Chromium" in result.stdout
    assert "imports ok" in result.stdout


_DESKTOP_WORKS = r"""
import asyncio, os, subprocess, time
os.environ["DISPLAY"] = ":99"
xvfb = subprocess.Popen(["Xvfb", ":99", "-screen", "0", "1024x768x24", "-nolisten", "tcp"])
for _ in range(100):
    if os.path.exists("/tmp/.X11-unix/X99"):
        break
    time.sleep(0.1)
wm = subprocess.Popen(["openbox"], stderr=subprocess.DEVNULL)

from PIL import ImageGrab
shot = ImageGrab.grab(xdisplay=":99")
assert shot.size == (1024, 768), shot.size

import pyautogui
pyautogui.moveTo(100, 200)
assert tuple(pyautogui.position()) == (100, 200), pyautogui.position()

from playwright.sync_api import sync_playwright
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"], headless=True)
    page = browser.new_page()
    page.set_content("<title>boxgym</title><h1 id=h>hello</h1>")
    assert page.title() == "boxgym"
    assert page.inner_text("#h") == "hello"
    browser.close()

from jupyter_client.manager import start_new_kernel
km, kc = start_new_kernel(kernel_name="python3")
outputs = []
kc.execute_interactive("print(1+1)", timeout=60, output_hook=outputs.append)
text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
assert text.strip() == "2", outputs
kc.stop_channels()
km.shutdown_kernel(now=True)
wm.terminate()
xvfb.terminate()
print("desktop ok")
"""


@pytest.mark.docker
@pytest.mark.browser
@pytest.mark.display
@pytest.mark.slow
def test_desktop_works_offline() -> None:
    """Xvfb + screenshot, pyautogui, headless Chromium through Playwright and a Jupyter kernel, no network."""
    tag = _built("desktop")
    result = _run_in(tag, "python3", "-c", _DESKTOP_WORKS, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "desktop ok" in result.stdout


# -- prune (docker) ---------------------------------------------------------------------


def _import_tiny(ref: str, labels: dict[str, str]) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("marker")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    changes = [f"--change=LABEL {k}={v}" for k, v in labels.items()]
    out = subprocess.run(
        ["docker", "import", *changes, "-", ref], input=buffer.getvalue(), capture_output=True, check=True
    )
    return out.stdout.decode().strip()


@pytest.mark.docker
async def test_prune_removes_stale_boxgym_images_only(registered) -> None:
    name = _unique("prunetest")
    registered(Recipe(name=name, base="slim"))
    stale = f"boxgym/{name}:000000000000"
    foreign = f"{name}-not-boxgym:1"
    await asyncio.to_thread(_import_tiny, stale, {"boxgym.image.recipe": name, "boxgym.image.hash": "0" * 64})
    await asyncio.to_thread(_import_tiny, foreign, {})
    try:
        would, _ = await prune_images(everything=True, dry_run=True)
        assert stale in would
        assert foreign not in would
        assert all(ref.startswith(("boxgym/", "sha256:")) for ref in would)
        assert await image_info(stale) is not None  # a dry run removes nothing

        removed, failed = await prune_images([name])
        assert removed == [stale]
        assert failed == []
        assert await image_info(stale) is None
        assert await image_info(foreign) is not None
    finally:
        await asyncio.to_thread(subprocess.run, ["docker", "rmi", "--force", stale, foreign], capture_output=True)


@pytest.mark.docker
async def test_prune_keeps_current_images() -> None:
    tags = [await asyncio.to_thread(_built, name) for name in ("slim",)]
    would, _ = await prune_images(dry_run=True)
    assert not set(tags) & set(would)


# -- a user recipe, built for real (docker, root) -----------------------------------------------


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="building needs root (chroot)")
async def test_user_recipe_wheels_files_and_commands_land_in_the_image(registered, tmp_path: Path) -> None:
    await asyncio.to_thread(_built, "slim")
    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/sh\necho hello from boxgym\n")
    script.chmod(0o755)
    name = _unique("usertest")
    recipe = registered(
        Recipe(
            name=name,
            base="slim",
            wheels=("six==1.16.0",),
            files={"/usr/local/bin/hello": script, "/etc/boxgym-test/motd": b"welcome\n"},
            run=("echo ran > /etc/boxgym-test/ran", "test -x /usr/local/bin/hello"),
        )
    )
    try:
        tag = await ensure_image(name)
        assert tag == image_tag(recipe)
        result = await asyncio.to_thread(
            _run_in,
            tag,
            "sh",
            "-c",
            "hello && cat /etc/boxgym-test/motd /etc/boxgym-test/ran && stat -c %U /etc/boxgym-test/motd"
            " && python3 -c 'import six; print(six.__version__)'",
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split("\n")[:5] == ["hello from boxgym", "welcome", "ran", "root", "1.16.0"]
    finally:
        _, failed = await prune_images([name], everything=True)
        assert failed == []
    assert await image_info(image_tag(recipe)) is None
    assert await image_info(rootfs_tag(recipe)) is None


# -- the command line ---------------------------------------------------------------------


def test_cli_build_unknown_recipe_fails_before_any_work(capsys) -> None:
    from boxgym.cli import main

    assert main(["images", "build", "no-such-recipe"]) == 1
    assert "no image recipe named 'no-such-recipe'" in capsys.readouterr().err


def test_cli_list_shows_each_recipe(monkeypatch, capsys, tmp_path: Path) -> None:
    from boxgym.cli import main
    from boxgym.sandboxes import images

    name = _unique("clilist")
    path = tmp_path / "r.toml"
    path.write_text(f'name = "{name}"\nbase = "slim"\n')

    async def fake_list(names=None, *, host=None):
        assert host is None  # the default host, unless --host names one
        return [
            images.ImageStatus(
                n, image_tag(get_recipe(n)), built=(n == "slim"), size=204_000_000 if n == "slim" else None
            )
            for n in recipe_names()
        ]

    async def fake_prune(names=None, *, everything=False, dry_run=False, host=None):
        assert dry_run and host is None
        return ["boxgym/slim:000000000000"], []

    monkeypatch.setattr(images, "list_images", fake_list)
    monkeypatch.setattr(images, "prune_images", fake_prune)
    try:
        assert main(["images", "list", "--recipe", str(path)]) == 0
    finally:
        unregister_recipe(name)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["RECIPE", "TAG", "BUILT", "SIZE", "CREATED"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["slim"][2:4] == ["yes", "204"]
    assert rows[name][2] == "no"
    assert {"slim", "desktop", name} <= set(rows)
    assert lines[-1].startswith("1 stale boxgym images")


def test_cli_build_defaults_to_the_recipes_of_recipe_files(monkeypatch, capsys, tmp_path: Path) -> None:
    from boxgym.cli import main
    from boxgym.sandboxes import images

    name = _unique("clibuild")
    path = tmp_path / "r.toml"
    path.write_text(f'name = "{name}"\nbase = "slim"\n')
    built: list[str] = []

    async def fake_build(recipe: Recipe, *, force: bool, progress, verbose: bool) -> str:
        built.append(recipe.name)
        return image_tag(recipe)

    monkeypatch.setattr(images, "build_image", fake_build)
    try:
        assert main(["images", "build", "--recipe", str(path)]) == 0
    finally:
        unregister_recipe(name)
    assert built == [name]
    assert f"{name}: boxgym/{name}:" in capsys.readouterr().out
