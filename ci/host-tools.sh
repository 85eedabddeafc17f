#!/usr/bin/env bash
# The tools the suite and the bench run on this machine itself, from Debian's archive. Idempotent.
#   tcpdump        wire capture on loopback
#   iproute2       ss, for the server side of the backlog checks
#   gcc            --impl c, and the bench's load generator
#   openssh-client the ssh backend against its stand-in Pi
#   socat ncat iperf3   what `make bench` compares the echo servers with
#   chromium       the browser tests/report opens the HTML report in (driven by Playwright)
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have tcpdump || need+=(tcpdump)
have ss || need+=(iproute2)
have cc || need+=(gcc libc6-dev)
have ssh || need+=(openssh-client)
have socat || need+=(socat)
have ncat || need+=(ncat)
have iperf3 || need+=(iperf3)
have chromium || need+=(chromium fonts-liberation)  # its fonts are only recommended
if [ "${#need[@]}" -eq 0 ]; then
    echo "ci: host tools present (tcpdump, ss, cc, ssh, socat, ncat, iperf3, chromium)"
    exit 0
fi
echo "ci: installing ${need[*]} from Debian's archive"
export DEBIAN_FRONTEND=noninteractive
# iperf3's package asks whether to start a daemon at boot: no, and no prompt.
echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections 2>/dev/null || true
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
