"""Naming a Docker host, without Docker: what is accepted, what the default is, which limit
files a host gets, and the refusal of another machine's engine before anything is created."""

from __future__ import annotations

import socket
from dataclasses import replace

import pytest

from boxgym.errors import EngineMisconfigured, Fault, fault_of
from boxgym.sandboxes import DockerHost, SandboxPool, SandboxSpec, TLSFiles
from boxgym.sandboxes.engine import DockerEngine
from boxgym.sandboxes.hosts import check_on_this_machine, default_host

TLS = TLSFiles("/certs/ca.pem", "/certs/cert.pem", "/certs/key.pem")
#: TEST-NET-1 (RFC 5737): never an address of this machine.
ELSEWHERE = "tcp://192.0.2.10:2376"


@pytest.mark.parametrize(
    ("url", "tls", "match"),
    [
        pytest.param("tcp://127.0.0.1:2376", None, "needs TLS", id="tcp-without-tls"),
        pytest.param("unix://run/docker.sock", None, "absolute", id="relative-socket"),
        pytest.param("unix:///run/docker.sock", TLS, "TLS is for tcp", id="tls-on-a-socket"),
        pytest.param("tcp://127.0.0.1", TLS, "tcp://HOST:PORT", id="no-port"),
        pytest.param("ssh://me@there", None, "unix:///path or tcp://", id="ssh"),
        pytest.param("", TLS, "without a tcp://", id="tls-on-the-default"),
    ],
)
def test_a_host_that_cannot_work_is_refused_when_named(url, tls, match):
    with pytest.raises(ValueError, match=match):
        DockerHost(url, tls)


def test_the_default_host_follows_docker_host(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert DockerHost().address == "unix:///var/run/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/other.sock")
    assert DockerHost().address == "unix:///run/other.sock" and DockerHost().socket_path == "/run/other.sock"
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2376")
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    with pytest.raises(EngineMisconfigured, match="only over TLS"):
        default_host()
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    assert default_host() == DockerHost("tcp://127.0.0.1:2376", TLSFiles.from_dir(tmp_path))
    assert TLSFiles.from_dir(tmp_path).key == str(tmp_path / "key.pem")


def test_each_host_has_its_own_limit_files_and_the_standard_socket_keeps_the_old_ones(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    standard = DockerHost("unix:///var/run/docker.sock")
    second = DockerHost("unix:///run/boxgym-host2/docker.sock")
    tcp = DockerHost("tcp://127.0.0.1:23760", TLS)
    assert standard.limits_suffix == DockerHost().limits_suffix == ""  # shared with boxgym before hosts
    suffixes = {second.limits_suffix, tcp.limits_suffix, DockerHost("tcp://127.0.0.1:23761", TLS).limits_suffix}
    assert len(suffixes) == 3 and all(s.startswith("@") and "/" not in s for s in suffixes)
    assert "boxgym-host2" in second.limits_suffix


def test_an_address_of_this_machine_is_accepted():
    check_on_this_machine(DockerHost("tcp://127.0.0.1:2376", TLS))
    check_on_this_machine(DockerHost("tcp://localhost:2376", TLS))
    check_on_this_machine(DockerHost("unix:///anywhere.sock"))  # a Unix socket is here by definition
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
            own = probe.getsockname()[0]
    except OSError:
        pytest.skip("this machine has no route off loopback")
    check_on_this_machine(DockerHost(f"tcp://{own}:2376", TLS))


def test_another_machine_s_engine_is_refused_with_the_way_that_works():
    with pytest.raises(EngineMisconfigured) as caught:
        check_on_this_machine(DockerHost(ELSEWHERE, TLS))
    message = str(caught.value)
    assert "another machine" in message and "Unix socket" in message and "Ray actor" in message
    assert fault_of(caught.value) is Fault.BUG  # a retry would fail the same way


async def test_an_engine_and_a_pool_on_another_machine_refuse_before_connecting():
    remote = DockerHost(ELSEWHERE, TLS)  # the TLS files do not exist: the refusal comes first
    async with DockerEngine(host=remote) as engine:
        with pytest.raises(EngineMisconfigured, match="another machine"):
            await engine.ping()
    pool = SandboxPool(SandboxSpec(image="slim"), size=1, hosts=[remote])
    with pytest.raises(EngineMisconfigured, match="another machine"):
        await pool.start()
    await pool.aclose()


async def test_unloadable_tls_files_are_a_setup_error(tmp_path):
    async with DockerEngine(host=DockerHost("tcp://127.0.0.1:9", TLSFiles.from_dir(tmp_path))) as engine:
        with pytest.raises(EngineMisconfigured, match="cannot load the TLS files"):
            await engine.ping()


def test_a_pool_takes_one_engine_or_hosts_and_no_host_twice():
    spec = SandboxSpec(image="slim")
    a, b = DockerHost("unix:///run/a.sock"), DockerHost("unix:///run/b.sock")
    with pytest.raises(ValueError, match="not both"):
        SandboxPool(spec, engine=DockerEngine(host=a), hosts=[b])
    with pytest.raises(ValueError, match="twice"):
        SandboxPool(spec, hosts=[a, DockerHost("unix:///run/a.sock")])
    with pytest.raises(ValueError, match="no Docker host"):
        SandboxPool(spec, hosts=[])
    with pytest.raises(ValueError, match="not among the pool's"):
        SandboxPool(replace(spec, host=b), hosts=[a])
    with pytest.raises(ValueError, match="not among the pool's"):
        SandboxPool(replace(spec, host=b), engine=DockerEngine(host=a))
    assert SandboxPool(replace(spec, host=b)).hosts == (b,)
    assert SandboxPool(spec, hosts=[a, b]).hosts == (a, b)
