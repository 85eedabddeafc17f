"""The terminal driver (harness/remote/drive.py) waits EXIT_LIMIT for a client to exit after its
input ends; a test that does not judge how the client ends ("until_printed") stops waiting once
the client has printed each text it waits for and gone quiet. A client that ignores EOF then costs
that test a moment instead of the whole limit; one that has not printed them is waited for in full."""

from __future__ import annotations

import sys

from harness.remote import drive

# Echoes one line, then ignores EOF (the lab's broken "while (1)" loop) until killed.
IGNORES_EOF = [sys.executable, "-c", "import sys, time; print('reply:', input(), flush=True); time.sleep(60)"]


def run(until_printed: list[str] | None) -> dict:
    return drive.drive(
        {
            "argv": IGNORES_EOF,
            "lines": ["hello there"],
            "settle": 0.2,
            "first_wait": 1.0,
            "reply_wait": 1.0,
            "exit_wait": 2.0,
            "until_printed": [text.encode().hex() for text in until_printed] if until_printed is not None else None,
        }
    )


def printed(result: dict) -> bytes:
    return b"".join(bytes.fromhex(chunk[1]) for chunk in result["chunks"])


def test_a_client_that_printed_what_was_waited_for_is_stopped_once_quiet() -> None:
    result = run(["hello there"])
    assert result["still_running"] and result["exit"] is None
    assert result["stopped_early"] is not None and result["stopped_early"] < 1.0, result["stopped_early"]
    assert b"reply: hello there" in printed(result)


def test_a_client_that_did_not_print_it_is_waited_for_in_full() -> None:
    result = run(["a reply it never prints"])
    assert result["still_running"] and result["stopped_early"] is None


def test_without_until_printed_the_exit_is_waited_for_in_full() -> None:
    result = run(None)
    assert result["still_running"] and result["stopped_early"] is None
