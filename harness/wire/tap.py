"""A test's packet captures: a slice of the host's tcpdump per server it starts (tcpdump tried again
for the next test if it could not start), and the failing test's tables and kept pcaps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.backends.base import Host
from harness.errors import CaptureUnavailableError
from harness.options import Options
from harness.wire.capture import Capture, NoCapture

PCAPS = "pcaps"  # under the rootdir: where a failing test's captures are kept


class Wire:
    """A test's packet captures, one per watched port on the server host. With capture off,
    ``watch`` returns None and the wire checks are left out; when tcpdump fails it returns a
    ``NoCapture`` (tried again for the next test, never given up on for the session)."""

    def __init__(self, host: Host, enabled: bool) -> None:
        self.host = host
        self.enabled = enabled
        self.captures: list[Capture] = []

    def watch(self, port: int, host: Host | None = None) -> Capture | NoCapture | None:
        """Capture ``port`` on the server host (or on ``host``) from now on."""
        if not self.enabled:
            return None
        try:
            capture = (host or self.host).start_capture(port)
        except CaptureUnavailableError as exc:
            return NoCapture(port, f"no packet capture of port {port}: {exc}")
        self.captures.append(capture)
        return capture

    def stop(self) -> None:
        for capture in self.captures:
            capture.stop()

    def lost(self) -> str | None:
        """What the judged captures lost, from tcpdump's closing statistics; None if nothing."""
        losses = [capture.loss() for capture in self.captures if capture.judged]
        said = [loss for loss in losses if loss is not None]
        return "; ".join(said) if said else None

    def keep(self, directory: Path, name: str) -> list[Path]:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
        return [
            capture.saved or capture.save(directory / f"{stem}-{i}.pcap") for i, capture in enumerate(self.captures, 1)
        ]

    def report(self, options: Options, name: str) -> str:
        """Every capture as a packet table, and where its pcap was kept (open it in Wireshark):
        in --keep-pcaps DIR, else in pcaps/ under the rootdir."""
        directory = options.keep_pcaps or options.rootdir / PCAPS
        blocks = []
        for capture, path in zip(self.captures, self.keep(directory, name)):
            blocks.append(f"capture of port {capture.port}, kept at {path} (open it in Wireshark):\n{capture.table()}")
        return "\n\n".join(blocks)


WIRE = pytest.StashKey[Wire]()  # a test item's captures, for its report
