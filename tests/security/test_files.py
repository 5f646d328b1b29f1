"""File operations an agent can aim at what is not a file, too much of one, or a place it may not write.

Each is refused with a named reason (never a raw OSError, a frame error or a hung
thread), and the server keeps serving afterwards.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest

from boxgym.errors import SandboxFileNotFound, SandboxRefused
from boxgym.sandboxes import READ_LIMIT, WRITE_LIMIT

from .conftest import SERVER

pytestmark = pytest.mark.docker


async def refused(coro, reason: str) -> str:
    with pytest.raises(SandboxRefused) as err:
        await coro
    assert err.value.reason == reason, err.value
    return str(err.value)


async def test_a_huge_sparse_file_is_refused_with_how_to_read_it_in_parts(sb):
    await sb.exec("truncate -s 10G huge && printf 'tail' | dd of=huge bs=1 seek=$((10*1024**3 - 4)) conv=notrunc 2>/dev/null")
    message = await refused(sb.read_file("huge"), "too_large")
    assert "offset" in message and "max_bytes" in message and str(READ_LIMIT) in message
    assert await sb.read_file("huge", offset=10 * 1024**3 - 4) == b"tail"
    assert await sb.read_file("huge", offset=4096, max_bytes=8) == b"\0" * 8
    await refused(sb.read_file("huge", max_bytes=READ_LIMIT + 1), "too_large")
    assert (await sb.health()).ok


async def test_a_60_mib_file_reads_in_parts_and_never_whole(sb):
    await sb.exec("head -c 60M /dev/urandom > big")
    await refused(sb.read_file("big"), "too_large")
    parts = [await sb.read_file("big", offset=o, max_bytes=READ_LIMIT) for o in range(0, 60 * 2**20, READ_LIMIT)]
    whole = b"".join(parts)
    digest = (await sb.exec("sha256sum big | cut -d' ' -f1")).stdout.strip()
    assert len(whole) == 60 * 2**20 and hashlib.sha256(whole).hexdigest() == digest


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/urandom", "/dev/null", "/proc/self/fd/0"])
async def test_devices_are_refused_for_reading(sb, path):
    await refused(sb.read_file(path), "not_regular")


async def test_a_planted_fifo_cannot_hang_the_server(sb):
    await sb.exec("mkfifo pipe")
    started = time.monotonic()
    # More readers than the server has file threads, as agent and as root, and writers too.
    reads = [sb.read_file("pipe", user=user) for user in ("agent", "root") for _ in range(6)]
    writes = [sb.write_file("pipe", "x", user=user) for user in ("agent", "root") for _ in range(3)]
    results = await asyncio.gather(*reads, *writes, return_exceptions=True)
    assert all(isinstance(r, SandboxRefused) and r.reason == "not_regular" for r in results), results
    assert time.monotonic() - started < 5
    await sb.write_file("after.txt", "still serving")
    assert await sb.read_file("after.txt") == b"still serving"


async def test_a_socket_is_refused(sb):
    await sb.exec("python3 -c \"import socket; socket.socket(socket.AF_UNIX).bind('sock')\"")
    await refused(sb.read_file("sock"), "not_regular")
    await refused(sb.write_file("sock", "x"), "not_regular")


@pytest.mark.parametrize("path", ["/etc/x", "/usr/local/bin/x", "/usr/local/lib/x.py", "/etc/passwd"])
async def test_read_only_places_are_refused_and_say_where_to_write(sb, path):
    if path == "/etc/passwd":  # an existing file that is not the agent's: permission comes first
        await refused(sb.write_file(path, "x"), "permission")
        return
    message = await refused(sb.write_file(path, "x"), "read_only")
    assert "/workspace" in message and "/tmp" in message


async def test_writing_through_the_agents_symlink_meets_the_same_refusal(sb):
    await sb.exec("ln -s /etc/hosts.d link && ln -s /usr/local/bin bin")
    await refused(sb.write_file("link", "x"), "read_only")
    await refused(sb.write_file("bin/tool", "x"), "read_only")


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        pytest.param("", "bad_name", id="empty"),
        pytest.param("a\x00b", "bad_name", id="nul"),
        pytest.param("bad\ud800name", "bad_name", id="lone-surrogate"),
        pytest.param("n" * 300, "name_too_long", id="name-too-long"),
        pytest.param("/".join(["d" * 200] * 25), "name_too_long", id="path-too-long"),
        pytest.param("/root/secret", "permission", id="root-home"),
        pytest.param("/run/boxgym/x", "permission", id="socket-dir"),
        pytest.param("/proc/1/environ", "permission", id="init-environ"),
    ],
)
async def test_bad_names_and_forbidden_places_are_named_refusals(sb, path, reason):
    await refused(sb.write_file(path, "x"), reason)


async def test_a_file_as_a_directory_is_not_a_directory(sb):
    await sb.write_file("plain", "x")
    await refused(sb.write_file("plain/sub/x", "y"), "not_directory")
    await refused(sb.list_dir("plain"), "not_directory")
    await refused(sb.read_file("."), "is_directory")
    await refused(sb.write_file(".", "x"), "is_directory")


async def test_a_full_work_directory_is_no_space(sb):
    await sb.exec("head -c 70M /dev/zero > fill", timeout=30)  # the test work directory holds 64 MiB
    await refused(sb.write_file("more", "x" * 65536), "no_space")
    await sb.exec("rm fill")
    await sb.write_file("more", "x")


async def test_writes_over_the_limit_are_refused_before_they_travel(sb):
    message = await refused(sb.write_file("big", b"x" * (100 * 2**20)), "too_large")
    assert str(WRITE_LIMIT) in message
    await refused(sb.exec("cat > f", stdin=b"x" * (WRITE_LIMIT + 1)), "too_large")
    with pytest.raises(SandboxFileNotFound):
        await sb.stat("big")
    await sb.write_file("ok", b"x" * WRITE_LIMIT)  # exactly the limit is fine
    assert (await sb.stat("ok")).size == WRITE_LIMIT


async def test_text_that_is_not_unicode_is_refused_not_raised(sb):
    await refused(sb.write_file("f", "half \ud800 a pair"), "bad_content")
    await refused(sb.exec("echo \ud800"), "bad_content")
    await refused(sb.exec(["echo", "a\x00b"]), "bad_content")


async def test_names_that_are_not_utf8_are_listed_and_usable(sb):
    await sb.exec("printf data > $'\\xff\\xfe'")
    [entry] = await sb.list_dir(".")
    assert entry.name == "\udcff\udcfe"  # surrogate escapes: the exact bytes round-trip
    assert await sb.read_file(entry.name) == b"data"


async def test_a_huge_directory_listing_is_refused(sb):
    await sb.exec("mkdir many && cd many && seq 1 10001 | xargs touch", timeout=60)
    message = await refused(sb.list_dir("many"), "too_large")
    assert "ls" in message


async def test_many_large_reads_at_once_leave_the_servers_memory_alone(sb):
    await sb.exec(f"head -c {READ_LIMIT} /dev/urandom > blob")
    reads = await asyncio.gather(*(sb.read_file("blob") for _ in range(16)))
    assert all(len(r) == READ_LIMIT for r in reads)
    health = await sb.health()
    assert health.ok and health.oom_kills == 0
    rss = await sb.exec(f"grep VmHWM /proc/$(pgrep -f '{SERVER}')/status", user="root")
    assert int(rss.stdout.split()[1]) < 100 * 1024, rss.stdout  # kB (measured: 66 MB; 22 MB idle)


async def test_root_does_not_follow_the_agents_symlinks(sb):
    await sb.exec("ln -s /run/boxgym sockdir && ln -s /etc/shadow shadow && mkdir d && ln -s /etc d/etc")
    await refused(sb.write_file("sockdir/planted", "x", user="root"), "symlink")
    await refused(sb.read_file("shadow", user="root"), "symlink")
    await refused(sb.read_file("d/etc/hostname", user="root"), "symlink")
    await refused(sb.list_dir("sockdir", user="root"), "symlink")
    assert (await sb.stat("shadow", user="root")).kind == "symlink"  # looking at the link itself is fine
    listing = await sb.exec("ls /run/boxgym", user="root")
    assert "planted" not in listing.stdout


async def test_root_still_follows_the_images_own_symlinks(sb):
    # Debian's merged /usr: /bin is a root-owned symlink to usr/bin; so are the alternatives.
    assert (await sb.stat("/bin", user="root")).kind == "symlink"
    assert (await sb.read_file("/bin/true", user="root", max_bytes=4)) == b"\x7fELF"
    assert (await sb.read_file("/etc/alternatives/awk", user="root", max_bytes=4)) == b"\x7fELF"
    await sb.write_file("root-made/x.txt", "judge", user="root")
    assert await sb.read_file("root-made/x.txt", user="root") == b"judge"
