"""Failure messages that carry the evidence: expected versus got, offsets, the server's last words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def hexdump(data_hex: str, start: int) -> str:
    data = bytes.fromhex(data_hex)
    shown = " ".join(f"{b:02x}" for b in data)
    return f"@{start}: {shown} |{''.join(chr(b) if 32 <= b < 127 else '.' for b in data)}|"


def describe_end(end: str, idle: float | None = None) -> str:
    waited = f"for {idle:.2g} s (the idle limit for this target)" if idle else "in time"
    return {
        "eof": "the server closed the connection (FIN)",
        "reset": "the server reset the connection (RST)",
        "timeout": f"nothing more arrived {waited}",
        "differs": "reading stopped at the first wrong byte",
        "open": "the connection was still open",
    }.get(end, f"the connection failed: {end}")


def describe_echo(result: Mapping[str, Any]) -> str:
    """Why an exchange's echo is not the bytes that were sent, in one paragraph."""
    if not result.get("connected", True):
        return f"could not connect: {result.get('error')}"
    expected, got = result["expected_len"], result["received_len"]
    offset = result["first_diff"]
    lines = [
        f"sent {expected} bytes, got {got} back; {describe_end(result.get('end', 'open'), result.get('idle_limit'))}"
    ]
    if result.get("write_error"):
        lines.append(f"writing to the server failed: {result['write_error']}")
    if offset is not None:
        if offset >= got:
            lines.append(f"the echo stops at byte {offset}: {expected - offset} bytes never came back")
        elif offset >= expected:
            lines.append(f"{got - expected} unexpected extra bytes from byte {offset}")
        else:
            lines.append(f"first differing byte at offset {offset}")
        start = result["context_start"]
        lines.append(f"  expected {hexdump(result['expected_at'], start)}")
        lines.append(f"  got      {hexdump(result['got_at'], start)}")
    return "\n".join(lines)


def tail_block(title: str, lines: Sequence[str]) -> str:
    if not lines:
        return f"{title}: (nothing)"
    return f"{title}:\n" + "\n".join(f"  | {line}" for line in lines)


def headline(report: Any) -> str:
    """The first line of a failure: what the check found, without pytest's framing."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr or "")
    for prefix in ("AssertionError: ", "Failed: "):
        text = text.removeprefix(prefix)
    return next((line.strip() for line in text.splitlines() if line.strip()), "failed")


def evidence_of(error: BaseException) -> str:
    """A failed check's message without what pytest's assertion rewriting appends to it (the
    ``assert ...`` line and the two-space indent of continuation lines)."""
    text = str(error)
    head, sep, tail = text.rpartition("\nassert ")
    if sep and "\n" not in tail.strip():
        text = head
    first, *rest = text.split("\n")
    return "\n".join([first, *(line[2:] if line.startswith("  ") else line for line in rest)])
