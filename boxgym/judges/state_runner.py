"""File-system state checker: executed *inside the sandbox* as root by :mod:`boxgym.judges.state`.

Stdlib only, started as ``python3 -I -S -c <this file>`` with a JSON payload
on stdin: ``paths`` and ``git`` checks, ``workdir``, ``agent_uid``, ``nonce``.

Paths are inspected with ``lstat`` and opened with ``O_NOFOLLOW``: a symlink
the agent planted is reported as a symlink, never followed. Git runs at the
agent's uid (a repository's config can name programs git will run, and those
must not run as root) with system and global config off, hooks and fsmonitor
disabled, and explicit output formats; a repository whose config defines
filters, includes or a worktree elsewhere fails its check rather than be
trusted. The verdict is the last stdout line, echoing the nonce.
"""

import json
import os
import stat
import subprocess
import sys

MAX_READ = 1 << 20
FORBIDDEN_CONFIG = ("filter.", "include.", "includeif.", "core.worktree", "core.fsmonitor", "diff.", "core.pager")


def check_path(workdir, spec):
    path = os.path.join(workdir, spec["path"])
    name = f"{spec['kind']} {spec['path']}"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return name, spec["kind"] == "absent", "does not exist"
    except OSError as exc:  # a parent that is a file, a loop: the agent's doing, so a failed check
        return name, False, f"cannot be inspected: {exc.strerror}"
    if spec["kind"] == "absent":
        return name, False, "exists"
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "other"
    if stat.S_ISLNK(st.st_mode):
        kind = "symlink"
    if kind != spec["kind"]:
        return name, False, f"is a {kind}"
    if spec.get("mode") is not None and stat.S_IMODE(st.st_mode) != spec["mode"]:
        return name, False, f"mode is {oct(stat.S_IMODE(st.st_mode))}, want {oct(spec['mode'])}"
    if spec.get("content") is not None or spec.get("contains") is not None:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(MAX_READ).decode("utf-8", "replace")
        if spec.get("content") is not None and data != spec["content"]:
            return name, False, f"content differs: {data[:200]!r}"
        if spec.get("contains") is not None and spec["contains"] not in data:
            return name, False, f"does not contain {spec['contains']!r}"
    return name, True, ""


def git(cfg, repo, *args):
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/nonexistent",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_OPTIONAL_LOCKS": "0",
        "LANG": "C.UTF-8",
    }
    extra = {}
    if cfg["agent_uid"] is not None:
        uid = cfg["agent_uid"]
        extra = {"user": uid, "group": uid, "extra_groups": []}
    flags = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "safe.directory=*", "--no-pager"]
    try:
        proc = subprocess.run(
            ["git", *flags, "-C", repo, *args], capture_output=True, env=env, cwd="/", timeout=10, **extra
        )
    except subprocess.TimeoutExpired:
        # A repository made too big to inspect fails its check; it is not a judge failure.
        return 124, ""
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


def check_git(cfg, spec):
    repo = os.path.join(cfg["workdir"], spec["repo"])
    name = f"git {spec['repo']}"
    code, out = git(cfg, repo, "rev-parse", "--is-inside-work-tree", "--show-toplevel")
    lines = out.splitlines()
    if code != 0 or not lines or os.path.realpath(lines[-1]) != os.path.realpath(repo):
        return [(name, False, "is not the top of a git work tree")]
    code, out = git(cfg, repo, "config", "--local", "--name-only", "--list")
    bad = [key for key in out.split() if key.lower().startswith(FORBIDDEN_CONFIG)]
    if code != 0 or bad:
        return [(name, False, f"repository config sets {', '.join(bad) or 'something unreadable'}")]
    results = []
    if spec.get("branch") is not None:
        _, out = git(cfg, repo, "symbolic-ref", "--short", "HEAD")
        results.append((f"{name} branch", out.strip() == spec["branch"], f"on {out.strip()!r}"))
    if spec.get("head_message") is not None:
        _, out = git(cfg, repo, "log", "-1", "--format=%s")
        results.append((f"{name} HEAD message", out.strip() == spec["head_message"], f"{out.strip()!r}"))
    if spec.get("commits") is not None:
        _, out = git(cfg, repo, "rev-list", "--count", "HEAD")
        results.append((f"{name} commit count", out.strip() == str(spec["commits"]), f"{out.strip()} commits"))
    for path, content in sorted((spec.get("files") or {}).items()):
        code, out = git(cfg, repo, "cat-file", "blob", f"HEAD:{path}")
        results.append((f"{name} HEAD:{path}", code == 0 and out == content, "" if code == 0 else "not committed"))
    for branch in spec.get("branches") or []:
        code, _ = git(cfg, repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
        results.append((f"{name} branch {branch} exists", code == 0, ""))
    if spec.get("clean"):
        code, out = git(cfg, repo, "status", "--porcelain", "--untracked-files=all")
        results.append((f"{name} clean", code == 0 and not out.strip(), out[:200]))
    return results


def main():
    real_stdout = os.dup(1)
    cfg = json.loads(sys.stdin.read())
    verdict = {"nonce": cfg["nonce"], "checks": [], "harness_error": None}
    status = 2
    try:
        checks = [check_path(cfg["workdir"], spec) for spec in cfg.get("paths", [])]
        for spec in cfg.get("git", []):
            checks.extend(check_git(cfg, spec))
        verdict["checks"] = [{"name": n, "passed": bool(p), "detail": d} for n, p, d in checks]
        status = 0 if all(c["passed"] for c in verdict["checks"]) else 1
    except BaseException as exc:  # noqa: BLE001 - the harness reports its own failure, whatever it is
        verdict["harness_error"] = f"{type(exc).__name__}: {exc}"[:2000]
    os.write(real_stdout, (json.dumps(verdict) + "\n").encode())
    os._exit(status)


if __name__ == "__main__":
    main()
