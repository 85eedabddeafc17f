"""The reports' inputs and outputs on disk, checked before anything runs: a report directory and a
results file that can be written, and a weights file that names real behaviours."""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

from harness.errors import ConfigError
from harness.gate import BEHAVIOURS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the workstation's Python is 3.11 or later; tomli is tomllib's backport
    import tomli as tomllib


def writable_dir(value: str | None, option: str) -> Path | None:
    """``value`` as a directory this run can write into (made if missing), or a ConfigError."""
    if value is None:
        return None
    path = Path(value).expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(f"{option} {value}: cannot write there: {exc.strerror or exc}") from None
    return path


def writable_file(value: str | None, option: str) -> Path | None:
    """``value`` as a file whose directory this run can write into, or a ConfigError."""
    if value is None:
        return None
    path = Path(value).expanduser().absolute()
    if path.is_dir():
        raise ConfigError(f"{option} {value}: is a directory, not a file")
    writable_dir(str(path.parent), option)
    return path


def read_weights(path: Path) -> dict[str, float]:
    """Points per behaviour from a TOML table of ``"behaviour" = points``; a ConfigError names
    the first thing wrong: an unreadable file, bad TOML, a behaviour the suites do not judge."""
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--weights {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--weights {path}: not TOML: {exc}") from None
    weights: dict[str, float] = {}
    for name, points in table.items():
        if name not in BEHAVIOURS:
            known = ", ".join(f'"{b}"' for b in BEHAVIOURS)
            raise ConfigError(f'--weights {path}: no behaviour "{name}"; the behaviours are {known}')
        if isinstance(points, bool) or not isinstance(points, (int, float)) or not math.isfinite(points) or points < 0:
            raise ConfigError(f'--weights {path}: "{name}" = {points!r}: points are a number, 0 or more')
        weights[name] = float(points)
    return weights
