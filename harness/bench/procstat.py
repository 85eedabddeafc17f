"""What the kernel says about a server's processes: memory (VmRSS, VmHWM, Pss) and CPU time.

A server is started as a session leader, so the processes it forks (socat and ncat fork one per
connection) are exactly those whose session id is its pid.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str]:
    """Fields 3 on of /proc/PID/stat; the command name (field 2) may hold spaces, so split after ')'."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def session(leader: int) -> list[int]:
    """The leader and every live process of its session (setsid: session id == leader's pid)."""
    pids = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if len(fields) > 3 and fields[3] == str(leader) and fields[0] != "Z":
                pids.append(int(entry.name))
    return sorted(pids)


def _status_kb(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _pss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in (PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


@dataclass(frozen=True)
class Memory:
    """A server's memory at one moment: RSS summed over its processes (shared pages counted in each),
    Pss (shared pages divided among their sharers, so the sum is what the server really holds)."""

    rss_mb: float
    pss_mb: float
    processes: int


def memory(leader: int) -> Memory:
    pids = session(leader) or [leader]
    rss = sum(_status_kb(pid, "VmRSS") for pid in pids)
    pss = sum(_pss_kb(pid) for pid in pids)
    return Memory(rss / 1024, pss / 1024, len(pids))


def peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of RSS since it started (VmHWM)."""
    return _status_kb(pid, "VmHWM") / 1024


_TICK = os.sysconf("SC_CLK_TCK")


def _runtime_seconds(pid: int, fields: list[str]) -> float:
    """A live process's CPU time: /proc/PID/schedstat's nanoseconds where there is one (a forking
    server's hundred children each run less than a clock tick per window), else utime + stime."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((PROC / str(pid) / "schedstat").read_text().split()[0]) / 1e9
    return (int(fields[11]) + int(fields[12])) / _TICK


def cpu_seconds(leader: int) -> float:
    """CPU time of the session so far: live processes' own, plus what the leader reaped from children
    that already exited (cutime, cstime), so a forking server's finished connections count too."""
    total = 0.0
    for pid in session(leader) or [leader]:
        fields = _stat_fields(pid)
        if len(fields) > 14:
            total += _runtime_seconds(pid, fields)
            if pid == leader:
                total += (int(fields[13]) + int(fields[14])) / _TICK  # cutime, cstime
    return total
