"""A client connects: started with the server's address (or with none: the lab's hard-coded
127.0.0.1:8888), it connects to the server by the time it has sent its first line. A client that
cannot run (a wrong command, a missing file, a crash at start) is caught here, with what it said,
and nothing else of it is judged: no other check blames a behaviour it never got to show."""

from __future__ import annotations

import pytest

from harness.client import connect_problem, line_of, run_client

pytestmark = [pytest.mark.behaviour("client: connects"), pytest.mark.judges("client")]


def test_the_client_connects_to_the_server(client_host, client_spec, scripted_server):
    server = scripted_server("echo")
    # Judged by what the server saw: the client is not waited for once its input has ended.
    session = run_client(client_host, client_spec, [line_of(11, 61)], server=server, until_printed=[])
    problem = connect_problem(session)
    assert problem is None, f"{problem}\n{session.evidence()}"
