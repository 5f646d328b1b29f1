"""File operations that cannot block, flood, or be misled by what the agent planted.

Identity: agent-side operations run on threads whose *fs uid/gid* is the agent's
(``setfsuid`` is per thread on Linux; the server sets it up), so the kernel
applies exactly the permissions the agent's own commands would meet and new
files are owned by the agent. Root-side operations (judges, setup) run on
other threads and never follow a symlink that root does not own: the path is
first resolved by name through root-owned symlinks only, then opened one part
at a time with ``O_NOFOLLOW`` (``openat``), so an agent's symlink, or one
swapped in between the two steps, is refused, never followed.

Every open is non-blocking and followed by ``fstat``: what is not a regular
file (or, for a listing, a directory) is refused before a byte moves, so a
FIFO cannot hang a thread and ``/dev/zero`` cannot fill the server's memory.
Reads stop at :data:`~.protocol.READ_LIMIT` bytes an answer (the refusal says
how to read in parts), writes at :data:`~.protocol.WRITE_LIMIT`, listings at
:data:`LIST_LIMIT` entries.

Every ``OSError`` becomes a :class:`Refused` whose ``reason`` names it (one of
:data:`~.protocol.REFUSALS`) and whose message names the path and says what to
do; only a missing path stays ``FileNotFoundError`` (``not_found``).
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
import stat as stat_mod

from .protocol import READ_LIMIT, WRITE_LIMIT

#: The most entries one ``list_dir`` answers with.
LIST_LIMIT = 10_000
_MAX_LINKS = 40  # symlinks followed in one root-side path, as the kernel's own limit
_OPEN = os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_DIR = getattr(os, "O_PATH", 0) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC  # O_PATH: Linux only


class Refused(Exception):
    """The request cannot be served as asked; ``reason`` is one of ``protocol.REFUSALS``."""

    def __init__(self, message: str, reason: str = "bad_request") -> None:
        super().__init__(message)
        self.reason = reason


_ERRNO_REASONS = {
    errno.EROFS: ("read_only", "read-only file system"),
    errno.ENOSPC: ("no_space", "no space left on its file system"),
    errno.EDQUOT: ("no_space", "disk quota exceeded"),
    errno.EFBIG: ("too_large", "file too large"),
    errno.ENAMETOOLONG: ("name_too_long", "name too long (at most 255 bytes a name, 4095 a path)"),
    errno.EACCES: ("permission", "permission denied"),
    errno.EPERM: ("permission", "operation not permitted"),
    errno.EISDIR: ("is_directory", "is a directory"),
    errno.ENOTDIR: ("not_directory", "a part of the path is not a directory"),
    errno.EEXIST: ("exists", "already exists"),
    errno.ENOTEMPTY: ("exists", "directory not empty"),
    errno.ELOOP: ("symlink", "a symlink that is not followed here, or too many levels of symlinks"),
    errno.ENXIO: ("not_regular", "not a regular file (a FIFO with no reader, a socket or a device)"),
    errno.ENODEV: ("not_regular", "not a regular file (a device)"),
    errno.EAGAIN: ("not_regular", "not a regular file (it would block)"),
}


def writable_places(uid: int) -> list[str]:
    """The writable tmpfs mounts that ``uid`` may write in: where a write that met a read-only
    file system can go instead."""
    try:
        with open("/proc/self/mounts") as fh:
            mounts = [line.split() for line in fh]
    except OSError:
        return []
    places = []
    for m in mounts:
        if len(m) < 4 or m[2] != "tmpfs" or "rw" not in m[3].split(",") or m[1].startswith(("/dev", "/sys", "/proc", "/run")):
            continue
        try:
            st = os.stat(m[1])
        except OSError:
            continue
        if st.st_uid == uid or st.st_mode & 0o002:
            places.append(m[1])
    return sorted(places)


def refusal(exc: OSError, path: str, action: str, writable: list[str] | None = None) -> Exception:
    """What an ``OSError`` of ``action`` on ``path`` becomes: a named :class:`Refused`, or not found."""
    if isinstance(exc, FileNotFoundError):
        return FileNotFoundError(f"cannot {action} {path!r}: no such file or directory")
    reason, said = _ERRNO_REASONS.get(exc.errno, ("os_error", None))
    said = said or f"{errno.errorcode.get(exc.errno or 0, 'error')}: {exc.strerror}"
    message = f"cannot {action} {path!r}: {said}"
    if reason == "read_only" and writable:
        message += f"; writable places are {', '.join(writable)}"
    return Refused(message, reason)


def _kind(mode: int) -> str:
    if stat_mod.S_ISLNK(mode):
        return "symlink"
    if stat_mod.S_ISDIR(mode):
        return "dir"
    if stat_mod.S_ISREG(mode):
        return "file"
    return "other"


def _info(st: os.stat_result, shown: str, name: str) -> dict:
    return {
        "path": shown,
        "name": name,
        "kind": _kind(st.st_mode),
        "size": st.st_size,
        "mode": stat_mod.S_IMODE(st.st_mode),
        "mtime": st.st_mtime,
    }


def _not_regular(path: str, mode: int, action: str) -> Refused:
    if stat_mod.S_ISDIR(mode):
        return Refused(f"cannot {action} {path!r}: it is a directory (list it with list_dir)", "is_directory")
    what = {stat_mod.S_IFIFO: "a FIFO", stat_mod.S_IFSOCK: "a socket", stat_mod.S_IFCHR: "a character device",
            stat_mod.S_IFBLK: "a block device"}.get(stat_mod.S_IFMT(mode), "not a regular file")  # fmt: skip
    return Refused(f"cannot {action} {path!r}: it is {what}; only regular files are read and written", "not_regular")


def _read_upto(fd: int, offset: int, want: int) -> bytes:
    chunks, got = [], 0
    while got < want:
        chunk = os.pread(fd, min(want - got, 1 << 20), offset + got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class FileOps:
    """The blocking file work; the server runs each call on a thread of the caller's identity.

    ``root=True`` selects root-side path handling (no symlink that root does not own is
    followed); agent-side calls leave resolution to the kernel, under the agent's fs identity.
    """

    def __init__(self, workdir: str, agent_uid: int | None = None) -> None:
        self.workdir = workdir
        self.writable = writable_places(os.geteuid() if agent_uid is None else agent_uid)

    def resolve(self, path: str) -> str:
        """The absolute, normalised form of ``path`` (relative to the work directory)."""
        if not isinstance(path, str) or not path:
            raise Refused("path must be a non-empty string", "bad_name")
        if "\x00" in path:
            raise Refused(f"path {path!r} contains a NUL character", "bad_name")
        try:
            os.fsencode(path)
        except UnicodeEncodeError as exc:
            raise Refused(f"path {path!r} is not valid Unicode ({exc.reason} at position {exc.start})", "bad_name") from None
        return os.path.normpath(path if os.path.isabs(path) else os.path.join(self.workdir, path))

    # -- opening, by identity --------------------------------------------------------

    def _trusted_path(self, full: str, shown: str, *, follow_last: bool = True) -> str:
        """``full`` with its root-owned symlinks replaced by their targets; any other symlink is
        refused. With ``follow_last=False`` the last part is left as it is (to look at a link)."""
        pending = [p for p in reversed(full.split("/")) if p]
        done: list[str] = []
        links = 0
        while pending:
            name = pending.pop()
            if name == ".":
                continue
            if name == "..":
                if done:
                    done.pop()
                continue
            here = "/" + "/".join([*done, name])
            try:
                st = os.lstat(here)
            except FileNotFoundError:
                done.append(name)  # the rest does not exist yet: taken by name (write_file creates it)
                continue
            if stat_mod.S_ISLNK(st.st_mode) and (pending or follow_last):
                if st.st_uid != 0:
                    raise Refused(f"{shown!r}: {here!r} is a symlink that root does not follow (it is not root's)", "symlink")
                links += 1
                if links > _MAX_LINKS:
                    raise Refused(f"{shown!r}: too many levels of symlinks", "symlink")
                target = os.readlink(here)
                if target.startswith("/"):
                    done = []
                pending.extend(p for p in reversed(target.split("/")) if p)
                continue
            done.append(name)
        return "/" + "/".join(done)

    def _parent_fd(self, real: str, *, make_parents: bool) -> tuple[int, str]:
        """An ``O_PATH`` fd of ``real``'s directory, reached without following any symlink, and the last name."""
        parts = [p for p in real.split("/") if p]
        fd = os.open("/", _DIR)
        try:
            for part in parts[:-1]:
                try:
                    child = os.open(part, _DIR, dir_fd=fd)
                except FileNotFoundError:
                    if not make_parents:
                        raise
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                    child = os.open(part, _DIR, dir_fd=fd)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd, parts[-1] if parts else "."

    def _open(self, full: str, flags: int, *, root: bool, shown: str, mode: int = 0o644, make_parents: bool = False) -> int:
        if not root:
            if make_parents:
                try:
                    os.makedirs(os.path.dirname(full), exist_ok=True)
                except FileExistsError:  # a part of the path is a file, not a directory
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)) from None
            return os.open(full, flags | _OPEN, mode)
        dirfd, name = self._parent_fd(self._trusted_path(full, shown), make_parents=make_parents)
        try:
            return os.open(name, flags | _OPEN | os.O_NOFOLLOW, mode, dir_fd=dirfd)
        finally:
            os.close(dirfd)

    def _lstat(self, full: str, *, root: bool, shown: str) -> os.stat_result:
        if not root:
            return os.lstat(full)
        dirfd, name = self._parent_fd(self._trusted_path(full, shown, follow_last=False), make_parents=False)
        try:
            return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        finally:
            os.close(dirfd)

    # -- operations (each runs on a worker thread) ----------------------------------

    def read_file(self, path: str, max_bytes: int | None = None, offset: int = 0, *, root: bool = False) -> dict:
        full = self.resolve(path)
        for name, value in (("max_bytes", max_bytes), ("offset", offset)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise Refused(f"{name!r} must be a non-negative integer")
        try:
            fd = self._open(full, os.O_RDONLY, root=root, shown=path)
        except OSError as exc:
            raise refusal(exc, path, "read") from None
        try:
            st = os.fstat(fd)
            if not stat_mod.S_ISREG(st.st_mode):
                raise _not_regular(path, st.st_mode, "read")
            # Files of /proc say size 0 and still have content: read one byte past the limit to know.
            want = READ_LIMIT + 1 if max_bytes is None else min(max_bytes, READ_LIMIT + 1)
            data = _read_upto(fd, offset, want)
        except OSError as exc:
            raise refusal(exc, path, "read") from None
        finally:
            os.close(fd)
        if len(data) > READ_LIMIT:
            size = max(st.st_size, offset + len(data))
            raise Refused(
                f"cannot read {path!r} at once: it has {size - offset} bytes from offset {offset}, more than the "
                f"{READ_LIMIT} one read returns; read it in parts with offset and max_bytes "
                f"(offset={offset}, max_bytes={READ_LIMIT}, then offset={offset + READ_LIMIT}, ...)",
                "too_large",
            )
        truncated = max_bytes is not None and offset + len(data) < st.st_size
        encoded = base64.b64encode(data)
        del data  # up to READ_LIMIT bytes, and what follows holds them a few times over: one at a time
        return {"data_b64": encoded.decode(), "size": st.st_size, "truncated": truncated}

    def write_file(self, path: str, data_b64: str, mode: int | None = None, *, root: bool = False) -> dict:
        full = self.resolve(path)
        if not isinstance(data_b64, str):
            raise Refused("'data_b64' must be a base64 string")
        if len(data_b64) // 4 * 3 > WRITE_LIMIT + 3:
            raise Refused(f"cannot write {path!r}: more than the {WRITE_LIMIT} bytes one write takes", "too_large")
        if mode is not None and (not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 0o7777):
            raise Refused("'mode' must be a permission number from 0 to 0o7777")
        try:
            data = base64.b64decode(data_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Refused(f"'data_b64' is not base64: {exc}") from None
        try:
            # No O_TRUNC: what the path names is checked before anything is changed.
            fd = self._open(full, os.O_WRONLY | os.O_CREAT, root=root, shown=path, make_parents=True)
        except OSError as exc:
            raise refusal(exc, path, "write", self.writable) from None
        try:
            st = os.fstat(fd)
            if not stat_mod.S_ISREG(st.st_mode):
                raise _not_regular(path, st.st_mode, "write")
            os.ftruncate(fd, 0)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if mode is not None:
                os.fchmod(fd, mode)
        except OSError as exc:
            raise refusal(exc, path, "write", self.writable) from None
        finally:
            os.close(fd)
        return {"size": len(data)}

    def list_dir(self, path: str = ".", *, root: bool = False) -> list[dict]:
        full = self.resolve(path)
        try:
            fd = self._open(full, os.O_RDONLY | os.O_DIRECTORY, root=root, shown=path)
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:
                raise Refused(f"cannot list {path!r}: it is not a directory", "not_directory") from None
            raise refusal(exc, path, "list") from None
        try:
            entries = []
            with os.scandir(fd) as it:
                for entry in it:
                    if len(entries) == LIST_LIMIT:
                        raise Refused(
                            f"cannot list {path!r}: it has more than {LIST_LIMIT} entries; list it with a "
                            "command instead (e.g. ls | head)",
                            "too_large",
                        )
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # removed while we looked
                    entries.append(_info(st, os.path.join(path, entry.name), entry.name))
        except OSError as exc:
            raise refusal(exc, path, "list") from None
        finally:
            os.close(fd)
        return sorted(entries, key=lambda e: e["name"])

    def stat(self, path: str, *, root: bool = False) -> dict:
        full = self.resolve(path)
        try:
            st = self._lstat(full, root=root, shown=path)
        except OSError as exc:
            raise refusal(exc, path, "stat") from None
        return _info(st, path, os.path.basename(full.rstrip("/")) or "/")
