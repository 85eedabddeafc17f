"""A client prints each reply whole and once: prompts and labels around it are its own business, and
so is printing it in pieces as it arrives; no byte of an older reply, no reply twice."""

from __future__ import annotations

import pytest

from harness.client import line_of, printed_problem, run_client

pytestmark = [
    pytest.mark.behaviour("client: prints replies"),
    pytest.mark.judges("client"),
    pytest.mark.needs("client: sends lines"),
]


def assert_printed(session, server) -> None:
    received = server.received()
    replies = [received.get(number, b"") for number in range(1, len(session.lines) + 1)]
    problem = printed_problem(session, replies)
    assert problem is None, f"{problem}\n{session.evidence()}"


# The scripted server echoes each line: once the client has printed every line (and gone quiet),
# it is not waited for any longer (how it ends is judged by "client: ends on EOF").


def test_each_reply_is_printed_once(client_host, client_spec, scripted_server):
    server = scripted_server("echo")
    lines = [line_of(24, 11), line_of(48, 12), line_of(9, 13)]
    session = run_client(client_host, client_spec, lines, server=server, until_printed=lines)
    assert_printed(session, server)


def test_a_reply_in_two_parts_is_printed_whole(client_host, client_spec, scripted_server):
    # The echo comes back in two parts 0.3 s apart: one recv() per line prints half of it.
    server = scripted_server("split")
    lines = [line_of(40, 21), line_of(120, 22)]
    session = run_client(client_host, client_spec, lines, server=server, settle=0.6, until_printed=lines)
    assert_printed(session, server)


def test_a_shorter_line_after_a_longer_one_prints_no_old_bytes(client_host, client_spec, scripted_server):
    # A reply buffer never cleared (or never NUL-terminated) prints the older reply's tail.
    server = scripted_server("echo")
    lines = [line_of(1000, 31), line_of(20, 32)]
    session = run_client(client_host, client_spec, lines, server=server, until_printed=lines)
    assert_printed(session, server)
