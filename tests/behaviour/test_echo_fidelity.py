"""Echo fidelity (RFC 862): whatever the client sends comes back, byte for byte, as one stream."""

from __future__ import annotations

import pytest

from harness.checks import echo_problem, exchange, failure, random_bytes, raw, text

pytestmark = pytest.mark.behaviour("echo fidelity")


def test_echoes_the_labs_hello_sri_lanka(client_host, echo_server):
    result = exchange(client_host, echo_server, text("HelloSriLanka"))
    problem = echo_problem(result)
    assert problem is None, failure(f"'HelloSriLanka' was not echoed: {problem}", echo_server)


def test_echoes_every_byte_value_including_nul(client_host, echo_server):
    result = exchange(client_host, echo_server, raw(bytes(range(256)) * 4))
    problem = echo_problem(result)
    assert problem is None, failure(f"bytes 0-255 (NUL, CR, LF, 0xff...) not echoed as sent: {problem}", echo_server)


def test_echoes_utf8_text_unchanged(client_host, echo_server):
    result = exchange(client_host, echo_server, text("ශ්‍රී ලංකාව, இலங்கை, Ελλάδα, 日本語, emoji 🦜\r\n"))
    problem = echo_problem(result)
    assert problem is None, failure(f"UTF-8 text not echoed as sent: {problem}", echo_server)


def test_echoes_a_mebibyte_while_reading_concurrently(client_host, echo_server):
    # Writing 1 MiB before reading any of it would fill both sides' buffers and deadlock; the probe
    # writes from one thread while it reads in another, as a well-behaved client must.
    result = exchange(client_host, echo_server, random_bytes(1 << 20, seed=1), lockstep=False, timeout=20.0)
    problem = echo_problem(result)
    assert problem is None, failure(f"1 MiB of random bytes not echoed: {problem}", echo_server)


def test_echoes_many_messages_on_one_connection(client_host, echo_server):
    messages = [random_bytes(size, seed=size) for size in range(1, 3000, 37)]
    result = exchange(client_host, echo_server, *messages)
    problem = echo_problem(result)
    assert problem is None, failure(f"{len(messages)} messages on one connection: {problem}", echo_server)


def test_echo_is_a_stream_not_messages(client_host, echo_server):
    # Writes of odd sizes with Nagle off: the server sees other boundaries than we wrote and may
    # reply in other pieces; only the concatenated stream is compared (RFC 862 has no framing).
    sizes = [1, 7, 1460, 3, 65536, 2, 999, 4096]
    result = exchange(
        client_host, echo_server, random_bytes(300_000, seed=2), lockstep=False, write_sizes=sizes, timeout=20.0
    )
    problem = echo_problem(result)
    assert problem is None, failure(f"stream written in pieces of {sizes} bytes: {problem}", echo_server)
