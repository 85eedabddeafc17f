#!/usr/bin/env bash
# What `make bench` compares the echo servers with: socat and ncat (what a user picks instead) and
# iperf3 (the loopback ceiling). Its smoke test (tests/bench/) fails under CI=true without them.
# Idempotent: installs only what is missing, quietly.
set -euo pipefail

need=()
command -v socat >/dev/null 2>&1 || need+=(socat)
command -v ncat >/dev/null 2>&1 || need+=(ncat)
command -v iperf3 >/dev/null 2>&1 || need+=(iperf3)
if [ "${#need[@]}" -eq 0 ]; then
    echo "ci: bench tools present (socat, ncat, iperf3)"
    exit 0
fi
echo "ci: installing ${need[*]} from Debian's archive"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# iperf3's package asks whether to start a daemon at boot: no, and no prompt.
echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections 2>/dev/null || true
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
