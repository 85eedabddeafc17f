"""Compile the reference C programs once per content, as the lab would: ``cc -Wall -Wextra -O2``."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import echo
from harness.errors import BackendUnavailableError

CFLAGS = ("-Wall", "-Wextra", "-O2")
SOURCES = Path(echo.__file__).resolve().parent


def source(role: str) -> Path:
    return SOURCES / f"{role}.c"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "echolab" / "c"


def compile_program(role: str, cc: str | None = None) -> Path:
    """The binary for ``echo/<role>.c``, built on first use and reused while the source is unchanged.

    Parallel workers may race to build it: each compiles to a private name and renames it into
    place, which is atomic, so nobody ever runs a half-written binary.
    """
    compiler = cc or os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        raise BackendUnavailableError(
            f"no C compiler ({compiler}) on this machine for --impl c: install one (apt-get install gcc) "
            "or use --impl python"
        )
    src = source(role)
    digest = hashlib.sha256(src.read_bytes() + " ".join((compiler, *CFLAGS)).encode()).hexdigest()[:16]
    target = cache_dir() / f"{role}-{digest}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(prefix=f".{role}-", dir=target.parent)
    os.close(fd)
    try:
        done = subprocess.run([compiler, *CFLAGS, "-o", scratch, str(src)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BackendUnavailableError(f"{compiler} could not build {src}: {done.stderr.strip().splitlines()[-1:]}")
        os.replace(scratch, target)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
    return target
