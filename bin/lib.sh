# Shared by bin/run and bin/test. Sourced, not executed.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
mkdir -p "$ROOT/var/log" "$ROOT/var/run"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
is_root() { [[ $(id -u) -eq 0 ]]; }

# Installs Debian packages that are missing (as root); otherwise names them and carries on.
ensure_apt_packages() {
    local missing=()
    for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if ! is_root; then
        say "missing Debian packages: ${missing[*]} (run as root, or install them yourself)"
        return 1
    fi
    say "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Creates .venv with Python 3.11 and installs requirements/<name>.txt when they changed.
ensure_venv() {
    local reqs="$ROOT/requirements/$1.txt"
    local python=python3.11
    command -v "$python" >/dev/null || python=python3
    "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || die "Python 3.11 is required ($python is $("$python" -V))"
    if [[ ! -x "$PY" ]]; then
        say "creating $VENV"
        "$python" -m venv "$VENV"
        "$PY" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements/venv.txt" 2>&1 | grep -v "is ignored" || true
    fi
    local stamp="$VENV/.installed-$1-$(cat "$ROOT"/requirements/*.txt | sha256sum | cut -c1-16)"
    if [[ ! -f "$stamp" ]]; then
        say "pip install -r requirements/$1.txt"
        "$PY" -m pip install -q --disable-pip-version-check -r "$reqs" 2>&1 | grep -v "is ignored" || true
        "$PY" -c "import django, wagtail, djstripe, MySQLdb" || die "pip install failed"
        rm -f "$VENV"/.installed-"$1"-*
        touch "$stamp"
    fi
}

docker_answers() {
    "$PY" - <<'PY' >/dev/null 2>&1
import os, docker
docker.DockerClient(base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"), timeout=3).ping()
PY
}

# Starts Debian's dockerd when no engine answers and we may (root). Sets STARTED_DOCKERD_PID.
STARTED_DOCKERD_PID=""
ensure_dockerd() {
    docker_answers && return 0
    if [[ -n "${DOCKER_HOST:-}" ]]; then
        say "the Docker engine at DOCKER_HOST=$DOCKER_HOST does not answer"
        return 1
    fi
    if ! is_root; then
        say "no Docker engine answers and only root can start dockerd"
        return 1
    fi
    command -v dockerd >/dev/null || ensure_apt_packages docker.io || return 1
    say "starting dockerd (log: var/log/dockerd.log)"
    # With its iptables rules on (dockerd's default): the stores' outbound fence hooks into its DOCKER-USER chain.
    # dockerd outlives this script: it must not keep any descriptor we inherited open (a caller's
    # `flock /tmp/docker-tests.lock bin/test` would otherwise stay locked for as long as dockerd runs).
    (
        for fd in /proc/$BASHPID/fd/*; do
            n=${fd##*/}
            if ((n > 2)); then eval "exec $n>&-" 2>/dev/null || true; fi
        done
        exec setsid dockerd >>"$ROOT/var/log/dockerd.log" 2>&1 </dev/null
    ) &
    STARTED_DOCKERD_PID=$!
    for _ in $(seq 1 60); do
        docker_answers && return 0
        sleep 0.5
    done
    say "dockerd did not answer within 30 s; see var/log/dockerd.log"
    return 1
}

redis_answers() { # $1 = redis URL
    "$PY" -c "import redis,sys; redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()" "$1" >/dev/null 2>&1
}
