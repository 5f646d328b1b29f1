#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine (Python 3.11, root or sudo):
#
#   ./run.sh demo     set everything up, then run the demo
#   ./run.sh test     set everything up (and a second Docker engine), then run the whole test suite (what CI runs)
#   ./run.sh setup    only set up: system packages, a running Docker engine, the venv, the images
#
# Every step checks first and skips what is already done, so a second run is quick.
set -euo pipefail
cd "$(dirname "$0")"

VENV=${BOXGYM_VENV:-.venv}
STATE=.boxgym
mkdir -p "$STATE"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  if [ ! -f "$STATE/apt-updated" ]; then $SUDO apt-get update -qq && touch "$STATE/apt-updated"; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup_system() {
  # debootstrap builds image roots; gcc + libc6-dev build the tool server's small C launcher;
  # chromium is the browser the viewer's real-browser test drives (through Playwright);
  # default-jre-headless runs ScienceWorld's JVM in the fake-sandbox tests; Xvfb, openbox and Tk
  # run the GUI plugin and the Desktop suite's apps on the fake sandbox.
  local pkgs=(debootstrap gcc libc6-dev ca-certificates python3-venv chromium default-jre-headless xvfb openbox python3-tk fonts-dejavu-core)
  if ! docker info >/dev/null 2>&1; then
    command -v dockerd >/dev/null 2>&1 || pkgs+=(docker.io)
  fi
  apt_install "${pkgs[@]}"
}

setup_docker() {
  if docker info >/dev/null 2>&1; then return 0; fi
  say "starting the Docker engine"
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl start docker || true
  fi
  if ! docker info >/dev/null 2>&1; then
    # No init system to ask (containers, CI): run dockerd in the background ourselves.
    $SUDO sh -c 'nohup dockerd >/var/log/boxgym-dockerd.log 2>&1 &'
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "the Docker engine did not come up; see /var/log/boxgym-dockerd.log" >&2
  exit 1
}

setup_venv() {
  local want
  want=$(cat pyproject.toml | sha256sum | cut -c1-16)
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$STATE/venv-stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  say "creating the virtual environment $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e '.[all,test]'
  echo "$want" >"$STATE/venv-stamp"
}

setup_images() {
  say "building sandbox images (skips any whose recipe is unchanged)"
  # debootstrap, chroot and mount need root; the cache stays in this checkout's user's cache dir.
  $SUDO env BOXGYM_CACHE="${BOXGYM_CACHE:-$HOME/.cache/boxgym}" "$VENV/bin/boxgym" images build
}

setup_second_host() {
  # The tests of sandboxes spread over several Docker hosts use a second engine on this machine
  # (its own socket, data root and TLS port; no bridge, no iptables rules): start it, and copy
  # the slim image to it (docker save | docker load: 6.6 s the first time, 0.5 s after; its data root keeps it).
  eval "$(.ci/second-docker-host env)"
  export BOXGYM_HOST2_UNIX BOXGYM_HOST2_TCP BOXGYM_HOST2_TLS
  if ! docker -H "$BOXGYM_HOST2_UNIX" info >/dev/null 2>&1; then
    say "starting a second Docker engine (a second host for the multi-host tests)"
    $SUDO .ci/second-docker-host start
  fi
  $SUDO "$VENV/bin/boxgym" images copy slim --to "$BOXGYM_HOST2_UNIX" >/dev/null
}

setup() {
  setup_system
  setup_docker
  setup_venv
  setup_images
}

case "${1:-}" in
  setup)
    setup
    ;;
  demo)
    setup
    shift
    exec "$VENV/bin/boxgym" demo "$@"
    ;;
  test)
    setup
    setup_second_host
    shift
    # Docker-marked tests fail instead of skipping if the engine went away.
    BOXGYM_REQUIRE_DOCKER=1 exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: ./run.sh demo | test [pytest args] | setup" >&2
    exit 2
    ;;
esac
