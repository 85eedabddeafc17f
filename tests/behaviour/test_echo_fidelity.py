"""Echo fidelity (RFC 862): whatever the client sends comes back, byte for byte, as one stream."""

from __future__ import annotations

import pytest

from harness.checks import (
    echo_problem,
    echoed_exactly,
    exchange,
    failure,
    payload,
    random_bytes,
    raw,
    text,
    wire_problem,
)
from harness.wire.tcp import handshake_problem

pytestmark = pytest.mark.behaviour("echo fidelity")


def assert_echoed(client_host, server, messages, what, **options):
    """The echo is byte-exact at the socket, and on the wire: handshake, then each side's segments
    carrying exactly those bytes, every one acknowledged."""
    result = exchange(client_host, server, *messages, **options)
    problem = echo_problem(result)
    assert problem is None, failure(f"{what}: {problem}", server)
    on_wire = wire_problem(server.capture, result["local_port"], handshake_problem, echoed_exactly(payload(*messages)))
    assert on_wire is None, failure(f"{what}: {on_wire}", server)


def test_echoes_the_labs_hello_sri_lanka(client_host, echo_server):
    assert_echoed(client_host, echo_server, [text("HelloSriLanka")], "'HelloSriLanka' was not echoed")


def test_echoes_every_byte_value_including_nul(client_host, echo_server):
    every_byte = [raw(bytes(range(256)) * 4)]
    assert_echoed(client_host, echo_server, every_byte, "bytes 0-255 (NUL, CR, LF, 0xff...) not echoed as sent")


def test_echoes_utf8_text_unchanged(client_host, echo_server):
    utf8 = [text("ශ්‍රී ලංකාව, இலங்கை, Ελλάδα, 日本語, emoji 🦜\r\n")]
    assert_echoed(client_host, echo_server, utf8, "UTF-8 text not echoed as sent")


def test_echoes_a_mebibyte_while_reading_concurrently(client_host, echo_server):
    # Writing 1 MiB before reading any of it would fill both sides' buffers and deadlock; the probe
    # writes from one thread while it reads in another, as a well-behaved client must.
    mebibyte = [random_bytes(1 << 20, seed=1)]
    assert_echoed(client_host, echo_server, mebibyte, "1 MiB of random bytes not echoed", lockstep=False, timeout=20.0)


def test_echoes_many_messages_on_one_connection(client_host, echo_server):
    messages = [random_bytes(size, seed=size) for size in range(1, 3000, 37)]
    assert_echoed(client_host, echo_server, messages, f"{len(messages)} messages on one connection")


def test_echo_is_a_stream_not_messages(client_host, echo_server):
    # Writes of odd sizes with Nagle off: the server sees other boundaries than we wrote and may
    # reply in other pieces; only the concatenated stream is compared (RFC 862 has no framing).
    sizes = [1, 7, 1460, 3, 65536, 2, 999, 4096]
    stream = [random_bytes(300_000, seed=2)]
    what = f"stream written in pieces of {sizes} bytes"
    assert_echoed(client_host, echo_server, stream, what, lockstep=False, write_sizes=sizes, timeout=20.0)
