"""The run's options, parsed and validated once from the pytest command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.servercmd import ServerCommand

IMPLS = ("python", "c")
MODES = ("iterative", "concurrent")


@dataclass(frozen=True)
class Options:
    backends: tuple[str, ...] = ("local",)
    impls: tuple[str, ...] = ("python",)
    server_cmd: ServerCommand | None = None
    server_mode: str = "iterative"
    ready_timeout: float = 10.0
    rootdir: Path = Path()
