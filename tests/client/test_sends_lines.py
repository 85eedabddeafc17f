"""A client sends each line typed at its terminal whole: its text, spaces included, before it waits
for the echo (with or without the newline), up to the longest line a terminal takes (4 KiB)."""

from __future__ import annotations

import pytest

from harness.client import line_of, run_client, sent_problem

pytestmark = [
    pytest.mark.behaviour("client: sends lines"),
    pytest.mark.judges("client"),
    pytest.mark.needs("client: connects"),
]


def test_each_line_typed_reaches_the_server_whole(client_host, client_spec, scripted_server):
    # "gather": the server echoes a line only 0.3 s after its first byte, so what it has by then
    # is what the client sent in one go; a client that sends part and waits is caught.
    server = scripted_server("gather")
    lines = [line_of(11, 1), line_of(60, 2), line_of(250, 3)]
    session = run_client(client_host, client_spec, lines, server=server, until_printed=[])
    problem = sent_problem(session, server.first_reads())
    assert problem is None, f"{problem}\n{session.evidence()}"


def test_a_line_of_4_kib_reaches_the_server_whole(client_host, client_spec, scripted_server):
    # 4095 characters and the newline: the most a terminal holds of one line (N_TTY_BUF_SIZE).
    server = scripted_server("gather")
    session = run_client(client_host, client_spec, [line_of(4095, 4)], server=server, until_printed=[])
    problem = sent_problem(session, server.first_reads())
    assert problem is None, f"{problem}\n{session.evidence()}"
