"""The lab's interactive client, driven through its stdin and stdout like a student at the keyboard."""

from __future__ import annotations

import pytest

# The lab client prints each echo, then waits for the server's FIN when it leaves.
pytestmark = [pytest.mark.behaviour("lab client"), pytest.mark.needs("echo fidelity", "half-close")]


def run_client(client_host, lab_client, server, stdin: bytes):
    return client_host.run(
        [*lab_client, "--host", server.address, "--port", str(server.port)], input=stdin, timeout=30.0
    )


def test_lab_client_prompts_and_prints_each_reply(client_host, lab_client, echo_server):
    done = run_client(client_host, lab_client, echo_server, b"HelloSriLanka\nsecond message\n")
    out = done.stdout.decode("utf-8", "replace")
    expected = (
        "Socket created\nConnected\n"
        "Enter message : Server reply :\nHelloSriLanka\n"
        "Enter message : Server reply :\nsecond message\n"
        "Enter message : \n"
    )
    assert done.returncode == 0 and out == expected, (
        f"lab client session: exit {done.returncode}\nexpected stdout {expected!r}\ngot      {out!r}\n"
        f"stderr {done.stderr.decode('utf-8', 'replace')!r}\n{echo_server.evidence()}"
    )


def test_lab_client_exits_cleanly_on_eof(client_host, lab_client, echo_server):
    done = run_client(client_host, lab_client, echo_server, b"")
    assert done.returncode == 0, (
        f"EOF on stdin right after connecting: expected exit 0, got {done.returncode}; "
        f"stderr {done.stderr.decode('utf-8', 'replace')!r}\n{echo_server.evidence()}"
    )
