"""Comparing echoes and wording the difference: the evidence a failure report leads with."""

from __future__ import annotations

import pytest

from harness.evidence import describe_echo
from harness.remote.probe import compare, first_difference, make_payload


@pytest.mark.parametrize(
    ("expected", "got", "offset"),
    [
        (b"abc", b"abc", None),
        (b"abc", b"abd", 2),
        (b"abc", b"ab", 2),
        (b"ab", b"abc", 2),
        (b"", b"x", 0),
        (b"x" * 100_000 + b"y", b"x" * 100_000 + b"z", 100_000),
    ],
)
def test_first_difference(expected, got, offset):
    assert first_difference(expected, got) == offset


def test_truncated_echo_says_where_it_stops():
    sent = make_payload({"random": 5000, "seed": 1})
    result = {**compare(sent, sent[:1000]), "connected": True, "end": "eof"}
    text = describe_echo(result)
    assert "sent 5000 bytes, got 1000 back; the server closed the connection (FIN)" in text
    assert "the echo stops at byte 1000: 4000 bytes never came back" in text


def test_changed_byte_shows_both_sides_in_hex():
    result = {**compare(b"Hello\x00World", b"HelloWorld"), "connected": True, "end": "eof"}
    text = describe_echo(result)
    assert "first differing byte at offset 5" in text
    assert "expected @0: 48 65 6c 6c 6f 00 57" in text
    assert "got      @0: 48 65 6c 6c 6f 57 6f" in text


def test_extra_bytes_are_named():
    result = {**compare(b"Hi", b"Hi\n"), "connected": True, "end": "eof"}
    assert "1 unexpected extra bytes from byte 2" in describe_echo(result)


def test_payload_specs_are_reproducible():
    assert make_payload({"random": 64, "seed": 3}) == make_payload({"random": 64, "seed": 3})
    assert make_payload({"hex": "00ff"}) == b"\x00\xff"
    assert make_payload({"text": "ශ්"}) == "ශ්".encode()
