"""Run one program on a remote host for the harness, tied to the SSH session that started it.

The SSH backend copies this file to the Pi and starts every long-running program through it:
``python3 supervise.py PROGRAM [ARGS...]``. The program gets its own process group, stdin from
/dev/null, and this process's stdout for its stdout and stderr (the session streams it back).
On stderr this process reports ``echolab-supervise pid N`` once the program runs and
``echolab-supervise exit STATUS`` when it ended (negative: killed by that signal, as in Python).

Each line read on stdin names a signal (``SIGTERM``) for the program's whole group. End of stdin
means the harness is done or gone (the connection dropped, the run was killed): the group is killed.
Either way nothing the program started outlives the session. Standard library only, Python 3.9+.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from typing import List

TAG = "echolab-supervise"


def report(what: str) -> None:
    sys.stderr.write(f"{TAG} {what}\n")
    sys.stderr.flush()


def kill_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(pgid, signum)


def relay_signals(pgid: int) -> None:
    for line in sys.stdin:
        name = line.strip()
        if name:
            kill_group(pgid, getattr(signal, name, signal.SIGKILL))
    kill_group(pgid, signal.SIGKILL)


def main(argv: List[str]) -> int:
    if not argv:
        report("exit 2")
        return 2
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        print(f"{TAG}: cannot run {argv[0]}: {exc.strerror or exc}", flush=True)
        report("exit 127")
        return 0
    report(f"pid {child.pid}")
    threading.Thread(target=relay_signals, args=(child.pid,), daemon=True).start()
    status = child.wait()
    kill_group(child.pid, signal.SIGKILL)  # whatever the program left in its group goes too
    report(f"exit {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
