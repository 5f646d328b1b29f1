"""Sandboxes on two Docker hosts: this machine's engine and a second one (.ci/second-docker-host),
reached over its Unix socket or over tcp:// with TLS client certificates. A pool spread over both
runs sandboxes and episodes on both; limits, backstops, gc and the TTL work per host; a daemon
that cannot see the socket directory, or a client the daemon does not trust, is refused clearly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from boxgym.errors import EngineMisconfigured, EngineUnavailable, ImageNotFound, SandboxBroken
from boxgym.sandboxes import DockerHost, SandboxPool, SandboxSpec, TLSFiles
from boxgym.sandboxes.docker import DockerSandbox
from boxgym.sandboxes.engine import DockerEngine, EngineLimits
from boxgym.sandboxes.ownership import LABEL_RUN, current_run, socket_base
from boxgym.sandboxes.pool import sandbox

from .conftest import slim_image

pytestmark = pytest.mark.docker

HERE = DockerHost().resolved()


def containers(host: DockerHost, label: str) -> list[str]:
    """Container ids on ``host`` with ``label``, through the docker CLI (not boxgym's client)."""
    flags = [] if host == HERE else ["-H", host.url]
    if host.tls is not None:
        flags += ["--tlsverify", "--tlscacert", host.tls.ca, "--tlscert", host.tls.cert, "--tlskey", host.tls.key]
    out = subprocess.run(["docker", *flags, "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


async def test_a_pool_spread_over_two_hosts_runs_sandboxes_on_both(spec, second_host):
    hosts = [HERE, second_host.tcp]  # the second over TLS with a client certificate
    async with SandboxPool(spec, size=4, hosts=hosts) as pool:
        await pool.wait_ready(timeout=60)
        assert [h.ready for h in pool.statistics().hosts] == [2, 2]
        held = [await pool.acquire() for _ in range(6)]
        try:
            answers = await asyncio.gather(*(sb.exec("echo $((6*7))") for sb in held))
            assert [a.stdout for a in answers] == ["42\n"] * 6
            # The four ready ones were two a host; the next two follow the load (and the timing).
            assert Counter(sb.host.url for sb in held[:4]) == {HERE.address: 2, second_host.tcp.url: 2}
            assert all(sb.spec.host == sb.host for sb in held)
            on_second = set(containers(second_host.unix, f"{LABEL_RUN}={current_run().run_id}"))
            assert {sb.id[:12] for sb in held if sb.host == second_host.tcp} <= on_second
        finally:
            await asyncio.gather(*(sb.aclose() for sb in held))
    run_label = f"{LABEL_RUN}={current_run().run_id}"
    assert containers(HERE, run_label) == [] and containers(second_host.unix, run_label) == []


class ReferencePolicy:
    """Plays each task's reference solution, then says it is done."""

    def __init__(self) -> None:
        from boxgym.envs.suites import shell

        self.tasks = shell.task_set()
        self.scripts: dict[str, Any] = {}

    async def __call__(self, episode: Any) -> Any:
        from boxgym.envs import reference_messages
        from boxgym.rollout.policy import as_completion

        if episode.episode_id not in self.scripts:
            steps = reference_messages(self.tasks.get(episode.task.task_id))
            self.scripts[episode.episode_id] = iter([*steps, {"role": "assistant", "content": "done"}])
        return as_completion(next(self.scripts[episode.episode_id]))


async def test_the_rollout_manager_runs_episodes_on_both_hosts(second_host):
    from boxgym.envs import EnvFactory
    from boxgym.rollout import Concurrency, Outcome, RolloutConfig, RolloutManager, TaskRef

    hosts_used: list[str] = []

    class Recorded:
        lends = False

        def __init__(self, pool: SandboxPool) -> None:
            self.pool = pool

        async def acquire(self) -> DockerSandbox:
            sb = await self.pool.acquire()
            hosts_used.append(sb.host.url)
            return sb

        async def aclose(self) -> None:
            pass

    tasks = [TaskRef(f"shell/d0/s{seed}", "boxgym/Shell-v0") for seed in range(1, 5)]
    factory = EnvFactory()
    try:
        async with SandboxPool(SandboxSpec(image=slim_image()), size=4, hosts=[HERE, second_host.unix]) as pool:
            await pool.wait_ready(timeout=60)
            config = RolloutConfig(concurrency=Concurrency(episodes=4))
            async with RolloutManager(factory, ReferencePolicy(), provider=Recorded(pool), config=config) as manager:
                results = await manager.collect(tasks)
    finally:
        await factory.aclose()
    assert [(r.outcome, r.reward) for r in results] == [(Outcome.TERMINATED, 1.0)] * 4, [r.error for r in results]
    assert Counter(hosts_used) == {HERE.address: 2, second_host.unix.url: 2}


async def test_a_spec_names_its_host(spec, second_host):
    async with sandbox(replace(spec, host=second_host.tcp)) as sb:
        assert sb.host == second_host.tcp
        assert (await sb.exec("echo there")).stdout == "there\n"
        assert sb.id[:12] in containers(second_host.unix, f"{LABEL_RUN}={current_run().run_id}")
        async with DockerEngine() as here:
            with pytest.raises(ValueError, match="names the Docker host"):
                await DockerSandbox.create(sb.spec, engine=here)


async def test_limits_are_counted_per_host(monkeypatch, tmp_path, second_host):
    monkeypatch.setenv("BOXGYM_LIMITS_DIR", str(tmp_path))  # only these engines count here
    limits = EngineLimits(max_concurrent=1, creates_per_s=2.0, create_burst=1)
    one, same, other = (DockerEngine(limits, host=h) for h in (HERE, HERE, second_host.unix))
    try:
        # `one` holds the only API slot of this host for 1.5 s (a bounded events stream); `same`
        # is another client of this host (another process, as far as the flock'ed files know).
        now = time.time()
        quiet = json.dumps({"label": ["boxgym.test=no-such-event"]})  # nothing else reaches this stream
        window = {"since": f"{now:.3f}", "until": f"{now + 1.5:.3f}", "filters": quiet}
        hold = asyncio.ensure_future(one.request("GET", "/events", params=window))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await other.ping()
        assert time.monotonic() - started < 0.5  # the second host's slot is its own
        await same.ping()
        assert time.monotonic() - started > 0.8  # this host's waited for the stream to end
        await hold
        # Creations per second: the burst of 1 is taken on this host; the other host has its own.
        missing = {"Image": "boxgym/no-such-image:0"}
        with pytest.raises(ImageNotFound):
            await one.create_container(missing)
        started = time.monotonic()
        with pytest.raises(ImageNotFound):
            await other.create_container(missing)
        assert time.monotonic() - started < 0.3
        with pytest.raises(ImageNotFound):
            await same.create_container(missing)
        assert time.monotonic() - started > 0.35  # 2 per second on this host
    finally:
        for engine in (one, same, other):
            await engine.aclose()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def rogue_tls(directory: Path) -> TLSFiles:
    """A CA of our own and a client certificate it signed: the daemon trusts neither."""
    directory.mkdir()
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
             "-subj", "/CN=rogue CA", "-keyout", "ca-key.pem", "-out", "ca.pem", cwd=directory)  # fmt: skip
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=rogue",
             "-keyout", "key.pem", "-out", "c.csr", cwd=directory)  # fmt: skip
    (directory / "c.ext").write_text("extendedKeyUsage=clientAuth\n")
    _openssl("x509", "-req", "-in", "c.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
             "-days", "1", "-extfile", "c.ext", "-out", "cert.pem", cwd=directory)  # fmt: skip
    return TLSFiles.from_dir(directory)


async def test_tls_refuses_an_untrusted_client_and_an_unverifiable_daemon(tmp_path, second_host):
    good, rogue = second_host.tcp.tls, rogue_tls(tmp_path / "rogue")
    assert good is not None
    cases = {
        "a client certificate the daemon's CA did not sign": TLSFiles(good.ca, rogue.cert, rogue.key),
        "a CA that did not sign the daemon's certificate": TLSFiles(rogue.ca, good.cert, good.key),
    }
    for case, tls in cases.items():
        async with DockerEngine(host=DockerHost(second_host.tcp.url, tls)) as engine:
            with pytest.raises(EngineMisconfigured, match="TLS") as caught:
                await engine.ping()
            assert second_host.tcp.url in str(caught.value), case
    async with DockerEngine(host=second_host.tcp) as engine:
        await engine.ping()  # the right files pass


async def test_a_failing_host_backs_off_while_the_other_fills_the_pool(spec, second_host, monkeypatch):
    create = DockerSandbox.create.__func__  # type: ignore[attr-defined]
    attempts: list[float] = []

    async def second_host_down(cls, spec, *, engine, run=None):  # the fault injected: creations there fail
        if engine.host == second_host.unix:
            attempts.append(time.monotonic())
            raise EngineUnavailable("injected: the second host stopped answering")
        return await create(cls, spec, engine=engine, run=run)

    monkeypatch.setattr(DockerSandbox, "create", classmethod(second_host_down))
    async with SandboxPool(spec, size=2, hosts=[second_host.unix, HERE]) as pool:
        await pool.wait_ready(timeout=60)
        await asyncio.sleep(1.5)
        down, up = pool.statistics().hosts
        assert up.ready == 2 and down.ready == 0 and "injected" in (down.last_error or "")
        assert 1 <= len(attempts) <= 3  # backing off (0.5 s, 1 s, ...), not hammered
        held = [await pool.acquire() for _ in range(3)]  # the third on demand: the living host
        try:
            assert {sb.host for sb in held} == {HERE}
        finally:
            await asyncio.gather(*(sb.aclose() for sb in held))


async def pool_image(spec: SandboxSpec) -> str:
    from boxgym.sandboxes.docker import resolve_image_ref

    return await resolve_image_ref(spec.image)


async def test_an_image_missing_on_a_host_says_how_to_bring_it(second_host):
    from boxgym.sandboxes.images import Recipe, copy_image, register_recipe, unregister_recipe

    tag, copied = await copy_image(slim_image(), to=second_host.unix)
    assert not copied and tag.startswith("boxgym/")  # already there: nothing moved
    register_recipe(Recipe(name="hosts-test-unbuilt", base="slim", packages=("jq",)))
    try:
        pool = SandboxPool(SandboxSpec(image="hosts-test-unbuilt"), size=1, hosts=[second_host.unix])
        with pytest.raises(ImageNotFound, match=f"boxgym images copy hosts-test-unbuilt --to {second_host.unix.url}"):
            await pool.start()
        await pool.aclose()
        with pytest.raises(ImageNotFound, match="build it there first"):
            await copy_image("hosts-test-unbuilt", to=second_host.unix)
    finally:
        unregister_recipe("hosts-test-unbuilt")


async def test_the_ttl_ends_a_sandbox_on_the_second_host(spec, second_host):
    async with DockerEngine(host=second_host.unix) as engine:
        short = replace(spec, deadlines=replace(spec.deadlines, ttl=2.0))
        sb = await DockerSandbox.create(replace(short, image=await pool_image(spec)), engine=engine)
        try:
            with pytest.raises(SandboxBroken, match="TTL"):
                await sb.exec("sleep 60", timeout=60)
            deadline = time.monotonic() + 10
            while await engine.inspect_container(sb.id) is not None:  # AutoRemove, on that host
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        finally:
            await sb.aclose()


# -- the backstops and gc, per host, with an owner process that ends -----------------------------


def _owner(second: DockerHost, body: str) -> subprocess.Popen[str]:
    """A process that fills a pool over both hosts, prints its run id, then runs ``body``."""
    code = textwrap.dedent(
        f"""
        import asyncio, json, os, signal, sys, time
        from boxgym.sandboxes import DockerHost, SandboxPool, SandboxSpec, TLSFiles
        from boxgym.sandboxes.ownership import current_run
        async def main():
            url, tls = json.loads(os.environ["SECOND_HOST"])
            second = DockerHost(url, TLSFiles(*tls) if tls else None)
            pool = SandboxPool(SandboxSpec(image={slim_image()!r}), size=2, hosts=[DockerHost(), second])
            await pool.start()
            await pool.wait_ready(timeout=60)
            print(current_run().run_id, flush=True)
        {textwrap.indent(textwrap.dedent(body), '    ')}
        asyncio.run(main())
        """
    )
    tls = [second.tls.ca, second.tls.cert, second.tls.key] if second.tls else None
    env = {**os.environ, "SECOND_HOST": json.dumps([second.url, tls])}
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)


async def _started(proc: subprocess.Popen[str], second: DockerHost) -> str:
    run_id = (await asyncio.to_thread(proc.stdout.readline)).strip()  # type: ignore[union-attr]
    assert run_id.startswith("r"), "the owner did not start its pool"
    label = f"{LABEL_RUN}={run_id}"
    assert len(containers(HERE, label)) == 1 and len(containers(second, label)) == 1
    return run_id


@pytest.mark.parametrize(
    "body",
    [pytest.param("    time.sleep(60)", id="sigterm"), pytest.param("    raise RuntimeError('crash')", id="crash")],
)
async def test_the_exit_backstops_remove_the_run_s_containers_on_every_host(second_host, body):
    proc = _owner(second_host.tcp, body)
    run_id = await _started(proc, second_host.unix)
    if "sleep" in body:
        proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(proc.wait, 60)
    proc.stdout.close()  # type: ignore[union-attr]
    label = f"{LABEL_RUN}={run_id}"
    assert containers(HERE, label) == [] and containers(second_host.unix, label) == []


async def test_gc_finds_and_cleans_every_host_of_an_owner_killed_with_sigkill(second_host):
    proc = _owner(second_host.tcp, "    time.sleep(60)")
    run_id = await _started(proc, second_host.unix)
    hosts_file = socket_base() / run_id / "hosts"
    assert {json.loads(line)["url"] for line in hosts_file.read_text().splitlines()} == {HERE.address, second_host.tcp.url}
    proc.kill()
    await asyncio.to_thread(proc.wait, 30)
    proc.stdout.close()  # type: ignore[union-attr]
    label = f"{LABEL_RUN}={run_id}"
    assert len(containers(second_host.unix, label)) == 1  # SIGKILL ran no handler
    gc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "boxgym", "gc"], capture_output=True, text=True, timeout=120
    )
    assert gc.returncode == 0, gc.stdout + gc.stderr
    assert f"run {run_id}" in gc.stdout and f"on {second_host.tcp.url}" in gc.stdout  # found without naming it
    assert containers(HERE, label) == [] and containers(second_host.unix, label) == []
    assert not (socket_base() / run_id).exists()


async def test_a_daemon_that_cannot_see_the_socket_directory_is_refused(tmp_path, second_host):
    # The owner runs in a mount namespace of its own with a tmpfs over its socket directory: the
    # daemon (outside it) bind-mounts the directory beneath, as a daemon on another machine, or a
    # snap-packaged one with a private /tmp, would. Nothing the container writes reaches the owner.
    if os.geteuid() != 0 or subprocess.run(["unshare", "--help"], capture_output=True).returncode != 0:
        pytest.skip("needs root and unshare(1) to give the owner its own mount namespace")
    hidden = tmp_path / "sockets"
    hidden.mkdir()
    code = textwrap.dedent(
        f"""
        import asyncio, json
        from boxgym.sandboxes import DockerHost, SandboxSpec
        from boxgym.sandboxes.ownership import current_run
        from boxgym.sandboxes.pool import sandbox
        async def main():
            try:
                async with sandbox(SandboxSpec(image={slim_image()!r}, host=DockerHost({second_host.unix.url!r}))):
                    error = None
            except Exception as exc:
                error = [type(exc).__name__, str(exc)]
            print(json.dumps({{"run": current_run().run_id, "error": error}}))
        asyncio.run(main())
        """
    )
    script = f'mount -t tmpfs tmpfs {hidden} && exec "$0" -c "$1"'
    started = time.monotonic()
    out = await asyncio.to_thread(
        subprocess.run,
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, sys.executable, code],
        capture_output=True, text=True, timeout=120, env={**os.environ, "BOXGYM_SOCKET_DIR": str(hidden)},
    )  # fmt: skip
    took = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["error"] and report["error"][0] == "EngineMisconfigured", report
    assert "does not see this process's files" in report["error"][1] and took < 30
    assert containers(second_host.unix, f"{LABEL_RUN}={report['run']}") == []  # the failed start left nothing


def test_gc_fails_when_a_named_host_does_not_answer(tmp_path):
    gone = f"unix://{tmp_path}/gone.sock"
    out = subprocess.run([sys.executable, "-m", "boxgym", "gc", "--host", gone], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and f"skipped {gone}" in out.stdout
