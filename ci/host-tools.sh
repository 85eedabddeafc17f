#!/usr/bin/env bash
# The tools the suite runs on this machine itself: tcpdump (wire capture on loopback), iproute2
# (ss, for the server side of the backlog checks), a C compiler (--impl c), the OpenSSH client
# (the ssh backend against its stand-in Pi). Idempotent.
set -euo pipefail

need=()
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
command -v ss >/dev/null 2>&1 || need+=(iproute2)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
if [ "${#need[@]}" -eq 0 ]; then
    echo "ci: host tools present (tcpdump, ss, cc)"
    exit 0
fi
echo "ci: installing ${need[*]} from Debian's archive"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
