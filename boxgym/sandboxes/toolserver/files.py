"""File operations, performed with the file-system identity of the caller's user.

Agent-side operations run on threads whose *fs uid/gid* is the agent's
(``setfsuid`` is per thread on Linux), so the kernel applies exactly the
permissions the agent's own commands would meet and new files are owned by
the agent. Root-side operations (judges, setup) run on other threads.
"""

from __future__ import annotations

import base64
import ctypes
import os
import stat as stat_mod
from concurrent.futures import ThreadPoolExecutor

_libc = ctypes.CDLL(None, use_errno=True)


def _kind(mode: int) -> str:
    if stat_mod.S_ISLNK(mode):
        return "symlink"
    if stat_mod.S_ISDIR(mode):
        return "dir"
    if stat_mod.S_ISREG(mode):
        return "file"
    return "other"


def _info(path: str, shown: str) -> dict:
    st = os.lstat(path)
    return {
        "path": shown,
        "name": os.path.basename(path.rstrip("/")) or "/",
        "kind": _kind(st.st_mode),
        "size": st.st_size,
        "mode": stat_mod.S_IMODE(st.st_mode),
        "mtime": st.st_mtime,
    }


class FileOps:
    """Blocking file work on two small thread pools, one per identity."""

    def __init__(self, workdir: str, agent_uid: int, agent_gid: int) -> None:
        self.workdir = workdir
        self._agent_ids = (agent_uid, agent_gid)
        switch = agent_uid != os.geteuid()
        self.pools = {
            "agent": ThreadPoolExecutor(4, "files-agent", initializer=self._become_agent if switch else None),
            "root": ThreadPoolExecutor(4, "files-root"),
        }

    def _become_agent(self) -> None:
        uid, gid = self._agent_ids
        _libc.setfsgid(gid)
        _libc.setfsuid(uid)

    def resolve(self, path: str) -> str:
        if not isinstance(path, str) or not path:
            raise ValueError("path must be a non-empty string")
        return os.path.normpath(path if os.path.isabs(path) else os.path.join(self.workdir, path))

    # Each method below runs on a pool thread.

    def read_file(self, path: str, max_bytes: int | None = None) -> dict:
        full = self.resolve(path)
        with open(full, "rb") as fh:
            data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
        truncated = max_bytes is not None and len(data) > max_bytes
        if truncated:
            data = data[:max_bytes]
        return {"data_b64": base64.b64encode(data).decode(), "size": os.path.getsize(full), "truncated": truncated}

    def write_file(self, path: str, data_b64: str, mode: int | None = None) -> dict:
        full = self.resolve(path)
        data = base64.b64decode(data_b64, validate=True)
        parent = os.path.dirname(full)
        os.makedirs(parent, exist_ok=True)
        with open(full, "wb") as fh:
            fh.write(data)
        if mode is not None:
            os.chmod(full, mode)
        return {"size": len(data)}

    def list_dir(self, path: str = ".") -> list[dict]:
        full = self.resolve(path)
        names = sorted(os.listdir(full))
        return [_info(os.path.join(full, name), os.path.join(path, name)) for name in names]

    def stat(self, path: str) -> dict:
        return _info(self.resolve(path), path)
