"""Put --net conditions on an SSH host (a Pi) for as long as the harness's session lasts.

Run as root by the ssh backend in an SSH session of its own: ``sudo -n python3 shape.py SPEC``.
SPEC is JSON, ``{"dev": "eth0", "steps": [[PART, COMMAND, UNDO], ...]}``: each COMMAND (an argv
list: tc, iptables) puts on one piece of the condition PART (``loss=5%``), and UNDO (or null, where
an earlier step's undo takes it off too) takes it off. This script applies them in order and says
on stdout, in one JSON line, ``{"ok": true}`` or why not: a missing tool, a root qdisc it could not
give back, or the first command that failed (everything applied before it is undone first). Then
it waits: at end of stdin (the run is over, or the harness died and its connection closed) and on
SIGTERM, SIGHUP or SIGINT it undoes everything in reverse order and exits, so nothing it applied
outlives the run. Standard library only, Python 3.9+.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
from typing import Any, Dict, List, Optional

#: What a device's root qdisc is when nobody set one: deleting ours gives it back.
DEFAULT_QDISCS = ("noqueue", "pfifo_fast", "fq_codel", "mq", "fq")
#: sudo's secure_path, in case the login's PATH lacks the sbin directories (Debian's does).
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Stop(Exception):
    """A signal asked this script to take everything off and end."""


def say(answer: Dict[str, Any]) -> None:
    """One JSON line on stdout; the harness may be gone already, which is no reason to stop."""
    try:
        sys.stdout.write(json.dumps({**answer, "kernel": platform.release()}) + "\n")
        sys.stdout.flush()
    except OSError:
        pass


def run(argv: List[str]) -> Optional[str]:
    """None if ``argv`` succeeded, else what it said (its last lines)."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    said = " ".join(line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip())
    return said[-300:] or f"exit status {done.returncode}"


def root_qdisc(dev: str) -> str:
    out = subprocess.run(["tc", "qdisc", "show", "dev", dev, "root"], capture_output=True, text=True, check=False)
    words = out.stdout.split()
    return words[1] if len(words) > 1 and words[0] == "qdisc" else out.stdout.strip() or out.stderr.strip()


def refusal(dev: str, steps: List[List[Any]]) -> Optional[Dict[str, Any]]:
    """Why nothing may be applied at all, before anything is: a missing tool, a qdisc of someone else's."""
    for tool in dict.fromkeys(step[1][0] for step in steps):
        if shutil.which(tool) is None:
            return {"missing": tool}
    if any(step[1][0] == "tc" for step in steps):
        kind = root_qdisc(dev)
        if kind not in DEFAULT_QDISCS:
            return {"qdisc": kind, "dev": dev}
    return None


def undo(undos: List[List[str]]) -> List[str]:
    """Run each undo, the last applied first, every one even if another fails; what failed."""
    failed = []
    while undos:
        argv = undos.pop()
        said = run(argv)
        if said is not None:
            failed.append(f"{' '.join(argv)}: {said}")
    return failed


def stop(signum: int, frame: Any) -> None:
    raise Stop(signal.Signals(signum).name)


def main(argv: List[str]) -> int:
    os.environ["PATH"] = PATH
    spec = json.loads(argv[0])
    dev, steps = spec["dev"], spec["steps"]
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, stop)
    refused = refusal(dev, steps)
    if refused is not None:
        say(refused)
        return 1
    undos: List[List[str]] = []
    try:
        for part, command, reverse in steps:
            said = run(command)
            if said is not None:
                undo(undos)
                say({"failed": part, "command": command, "said": said})
                return 1
            if reverse:
                undos.append(reverse)
        say({"ok": True})
        while sys.stdin.buffer.read(4096):  # nothing is sent: this returns at end of stdin
            pass
    except Stop:
        pass
    finally:
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)  # the undo runs to its end
        failed = undo(undos)
    say({"undone": not failed, "failed_undo": failed})
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
