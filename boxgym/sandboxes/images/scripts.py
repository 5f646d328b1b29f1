"""The shell that the builder runs inside an image's root (``chroot``).

These texts are part of every image's hash: changing one rebuilds every image,
which is what a changed builder must do. Bump :data:`BUILD_FORMAT` when the
builder's Python side changes what it puts into an image.
"""

from __future__ import annotations

from boxgym.sandboxes.config import AGENT_UID, WORKDIR

BUILD_FORMAT = 1

#: debootstrap's variant and extra packages for a ``debian:<suite>`` base.
DEBOOTSTRAP_VARIANT = "minbase"
DEBOOTSTRAP_INCLUDE = ("python3",)

#: Python of each suite's ``python3``: wheels are built for it on the host.
SUITE_PYTHON = {"bookworm": (3, 11), "trixie": (3, 13)}

#: pip runs from its own wheel inside the image (``python3 pip.whl/pip``), so no pip is installed.
BUILD_PIP = "pip==24.3.1"

#: Once per suite, right after debootstrap; the result is cached as a tarball.
#: ``{mirror}``, ``{security_mirror}`` and ``{suite}`` are filled in (not hashed).
BASE_SETUP = """\
set -eu
echo force-unsafe-io > /etc/dpkg/dpkg.cfg.d/00-boxgym-unsafe-io
cat > /etc/apt/sources.list <<EOF
deb {mirror} {suite} main
deb {mirror} {suite}-updates main
deb {security_mirror} {suite}-security main
EOF
cat > /etc/dpkg/dpkg.cfg.d/01-boxgym-nodoc <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/lintian/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
EOF
cat > /etc/apt/apt.conf.d/01-boxgym <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Retries "3";
Acquire::Languages "none";
EOF
apt-get update -q
apt-get -y -q -o Dpkg::Options::=--force-confold upgrade
"""

#: Before a build's packages: no service may start inside the chroot.
PREPARE = """\
set -eu
# no fsync per file while building: the root is thrown away if the build fails
echo force-unsafe-io > /etc/dpkg/dpkg.cfg.d/00-boxgym-unsafe-io
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d
"""

APT_INSTALL = "set -eu; apt-get update -q; apt-get install -y -q --no-install-recommends {packages}"

#: ``{pip}`` is the pip wheel's path, ``{wheels}`` the wheel directory, both inside the root.
PIP_INSTALL = (
    "set -eu; python3 {pip}/pip install --no-index --find-links {wheels} --only-binary=:all: "
    "--break-system-packages --root-user-action=ignore --disable-pip-version-check "
    "--no-warn-script-location --progress-bar off {requirements}"
)

#: What every image has, whatever its recipe: see boxgym.sandboxes.config.
BOXGYM_LAYER = f"""\
set -eu
getent group agent >/dev/null || groupadd --gid {AGENT_UID} agent
id -u agent >/dev/null 2>&1 || useradd --uid {AGENT_UID} --gid {AGENT_UID} --home-dir /home/agent \\
    --create-home --shell /bin/bash agent
test "$(id -u agent):$(id -g agent)" = "{AGENT_UID}:{AGENT_UID}"
install -d -o {AGENT_UID} -g {AGENT_UID} -m 0755 {WORKDIR}
install -d -o 0 -g 0 -m 0755 /run/boxgym /opt/boxgym
# what exactly is inside: a tag pins the recipe, these pin the versions it got that day
dpkg-query -W -f '${{Package}}=${{Version}}\\n' | sort > /opt/boxgym/debian-packages.txt
python3 -I -c 'import importlib.metadata as m, re; print(*sorted({{re.sub("[-_.]+", "-", d.metadata["Name"]).lower() \\
    + "==" + d.version for d in m.distributions()}}), sep=chr(10))' > /opt/boxgym/python-packages.txt
"""

#: Last, with the apt cache already unmounted: keep the image small and free of host traces.
CLEANUP = """\
set -eu
rm -f /usr/sbin/policy-rc.d /etc/dpkg/dpkg.cfg.d/00-boxgym-unsafe-io
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/log/apt/* \\
    /var/log/dpkg.log /var/log/alternatives.log /var/log/bootstrap.log /tmp/* /var/tmp/* /root/.cache
find /usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find /usr/share/doc -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf /usr/share/man/* /usr/share/info/*
find /usr/share/locale -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
: > /etc/resolv.conf
: > /etc/machine-id 2>/dev/null || true
"""

#: Run in the finished image before it is tagged. ``{toolserver}`` is ``True`` when one was copied in.
SMOKE_CHECK = f"""\
import os, pwd, stat
agent = pwd.getpwnam("agent")
assert (agent.pw_uid, agent.pw_gid, agent.pw_dir) == ({AGENT_UID}, {AGENT_UID}, "/home/agent"), agent
st = os.stat("{WORKDIR}")
assert st.st_uid == {AGENT_UID} and stat.S_IMODE(st.st_mode) == 0o755, st
st = os.stat("/run/boxgym")
assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o755, st
assert os.path.isfile("/opt/boxgym/toolserver/main.py") or not {{toolserver}}
print("ok")
"""

#: How the tool server's C helpers are compiled on the host: static, so the image's libc does not matter.
CC_FLAGS = ("-O2", "-Wall", "-static", "-s")

ENV_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: ``docker import``/``commit --change`` lines every image gets.
IMAGE_CHANGES = (
    f"ENV PATH={ENV_PATH}",
    "ENV LANG=C.UTF-8",
    f"WORKDIR {WORKDIR}",
    'CMD ["/bin/bash"]',
)
