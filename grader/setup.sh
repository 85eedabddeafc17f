#!/usr/bin/env bash
# Gradescope's autograder setup (gradescope-autograders.readthedocs.io, "Autograder Specifications"):
# run once, as root, when the autograder image is built, with this zip unpacked in /autograder/source.
# Installs what the suite runs on: Python, tcpdump (the wire checks capture loopback), ss, a C
# compiler for the submission, and echolab (echolab/ in the zip: grader/build_zip.py puts it there).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3 python3-venv tcpdump iproute2 gcc libc6-dev >/dev/null
rm -rf /var/lib/apt/lists/*
python3 -m venv /autograder/venv
if [ -d /autograder/source/wheels ]; then  # build_zip.py --wheels: everything is in the zip
    /autograder/venv/bin/pip install --quiet --no-index --find-links /autograder/source/wheels echolab pytest-timeout
else
    /autograder/venv/bin/pip install --quiet --disable-pip-version-check /autograder/source/echolab pytest-timeout
fi
