#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine; idempotent.
#
# - If `docker info` already answers (a GitHub runner, a developer's machine, a second run),
#   only a missing compose CLI is installed (Debian's docker-compose v1; v2 counts as well).
# - Otherwise Debian's engine is installed if missing (docker.io, docker-compose v1, and
#   debootstrap for ci/base-image.sh), a pid file left by a killed daemon is removed, and
#   dockerd is started detached from this shell (log: /var/log/dockerd.log). It keeps running
#   after this script exits and does not hold the caller's stdout open.
#
# Environment: DOCKERD_LOG (default /var/log/dockerd.log), DOCKERD_WAIT (seconds, default 60).
set -euo pipefail

log() { printf 'ci: %s\n' "$*"; }

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
DOCKERD_WAIT=${DOCKERD_WAIT:-60}
PIDFILE=/var/run/docker.pid
CONTAINERD_DIR=/var/run/docker/containerd

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -n)
    fi
fi

docker_answers() {
    command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1
}

live_dockerd_pids() {
    # pgrep also lists zombies: a daemon killed a moment ago may linger as one until reaped.
    local p
    for p in $(pgrep -x dockerd 2>/dev/null || true); do
        case "$(ps -o stat= -p "$p" 2>/dev/null)" in
            "" | Z*) ;;
            *) echo "$p" ;;
        esac
    done
}

dockerd_alive() {
    [ -n "$(live_dockerd_pids)" ]
}

pid_alive() { # pid; a zombie does not count
    [ -n "$1" ] || return 1
    case "$(ps -o stat= -p "$1" 2>/dev/null)" in
        "" | Z*) return 1 ;;
    esac
}

compose_present() {
    docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1
}

apt_install() { # package...
    local ti aptlog
    log "installing $* from Debian's archive"
    ti=$(date +%s)
    aptlog=$(mktemp)
    if ! { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
           "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
               -o Dpkg::Use-Pty=0 "$@"; } >"$aptlog" 2>&1; then
        echo "ci: error: apt-get could not install $*; last lines of its output follow" >&2
        tail -n 25 "$aptlog" >&2
        rm -f "$aptlog"
        exit 1
    fi
    rm -f "$aptlog"
    log "installed in $(( $(date +%s) - ti )) s"
}

t0=$(date +%s)

if docker_answers; then
    log "docker engine already answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
    # The compose test (tests/docker/test_compose.py) needs either compose CLI.
    compose_present || apt_install docker-compose
    exit 0
fi

# --- install what is missing ---------------------------------------------------------------
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
compose_present || missing+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
    # de-duplicate, keep order
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
    apt_install "${missing[@]}"
    log "$(dockerd --version 2>/dev/null || echo 'dockerd ?')"
fi

# The install may have started a daemon through the init scripts; look again.
if docker_answers; then
    log "docker engine answers after install; nothing more to do"
    exit 0
fi

# --- start dockerd ---------------------------------------------------------------------------
fail() { # message
    echo "ci: error: $1; last lines of $DOCKERD_LOG follow" >&2
    tail -n 25 "$DOCKERD_LOG" >&2 2>/dev/null || true
    exit 1
}

# Wait until the engine answers (0), or $1 seconds pass (1), or no live dockerd is left (2).
wait_for_engine() { # seconds
    local deadline=$(( $(date +%s) + $1 )) gone=0
    until docker_answers; do
        [ "$(date +%s)" -ge "$deadline" ] && return 1
        if dockerd_alive; then gone=0; else gone=$(( gone + 1 )); fi
        # Two looks a second apart: the launcher shell takes a moment to exec dockerd.
        [ "$gone" -ge 2 ] && return 2
        sleep 1
    done
}

start_dockerd() {
    if [ -e "$PIDFILE" ]; then
        log "removing stale $PIDFILE (pid $(cat "$PIDFILE" 2>/dev/null || echo '?'), no dockerd alive)"
        "${SUDO[@]}" rm -f "$PIDFILE"
    fi
    # dockerd's managed containerd: a pid file whose process is gone is stale, and so is its socket.
    # It dies with a killed dockerd, but not at once: a new dockerd that still sees it alive would
    # try to reuse it and give up after 15 s, so give it a few seconds to go first. (One that stays
    # alive is reused by the new dockerd.)
    if [ -e "$CONTAINERD_DIR/containerd.pid" ]; then
        local cpid
        cpid=$(cat "$CONTAINERD_DIR/containerd.pid" 2>/dev/null || true)
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            pid_alive "$cpid" || break
            sleep 0.5
        done
        if ! pid_alive "$cpid"; then
            log "removing stale containerd pid file and socket"
            "${SUDO[@]}" rm -f "$CONTAINERD_DIR/containerd.pid" "$CONTAINERD_DIR/containerd.sock" \
                "$CONTAINERD_DIR/containerd.sock.ttrpc" "$CONTAINERD_DIR/containerd-debug.sock"
        fi
    fi
    "${SUDO[@]}" mkdir -p "$(dirname "$DOCKERD_LOG")"
    log "starting dockerd in the background (log: $DOCKERD_LOG)"
    # New session, no controlling terminal, stdin from /dev/null and stdout/stderr to the log:
    # the daemon outlives this script and keeps none of the caller's pipes open.
    # shellcheck disable=SC2016  # $1 is expanded by the inner sh
    "${SUDO[@]}" setsid nohup sh -c 'exec dockerd >>"$1" 2>&1' dockerd-launcher "$DOCKERD_LOG" \
        </dev/null >/dev/null 2>&1 &
    disown 2>/dev/null || true
}

if dockerd_alive; then
    log "a dockerd process is alive (pid $(live_dockerd_pids | paste -sd' ' -)) but does not answer yet; waiting for it"
    rc=0
    wait_for_engine "$DOCKERD_WAIT" || rc=$?
    case $rc in
        0) log "docker engine answers ($(( $(date +%s) - t0 )) s in all)"; exit 0 ;;
        1) fail "the running dockerd did not answer within ${DOCKERD_WAIT} s" ;;
        2) log "that dockerd has exited; starting a new one" ;;
    esac
fi

start_dockerd
rc=0
wait_for_engine "$DOCKERD_WAIT" || rc=$?
case $rc in
    1) fail "docker engine did not answer within ${DOCKERD_WAIT} s" ;;
    2) fail "dockerd exited at start" ;;
esac

log "docker engine answers: server $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'), storage $(docker info --format '{{.Driver}}' 2>/dev/null || echo '?') ($(( $(date +%s) - t0 )) s in all)"
