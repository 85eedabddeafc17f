"""A client ends cleanly: on EOF at its terminal it closes the connection (FIN) and exits 0; when the
server closes, it exits instead of looping; when nothing listens, it exits non-zero. Within 2 s."""

from __future__ import annotations

import pytest

from harness.checks import wire_problem
from harness.client import EXIT_LIMIT, line_of, run_client
from harness.wire.tcp import teardown_problem

pytestmark = pytest.mark.judges("client")


@pytest.mark.behaviour("client: ends on EOF")
@pytest.mark.needs("client: sends lines")
def test_eof_closes_the_connection_and_exits_0(client_host, client_spec, scripted_server):
    server = scripted_server("echo")
    session = run_client(client_host, client_spec, [line_of(15, 41)], server=server, eof=True)
    result = session.result
    assert result["exit"] == 0 and result["exit_after"] <= EXIT_LIMIT, (
        f"after EOF (^D) at its terminal the client should exit 0 within {EXIT_LIMIT:g} s: "
        f"it {session.status()}\n{session.evidence()}"
    )
    ending = server.ending()
    assert ending == "eof", (
        f"the client exited but the server never saw its connection end with a FIN (it saw "
        f"{'a reset' if ending == 'reset' else 'nothing'} within {EXIT_LIMIT:g} s)\n{session.evidence()}"
    )
    on_wire = wire_problem(server.capture, server.peer_port(), teardown_problem)
    assert on_wire is None, f"{on_wire}\n{session.evidence()}"


@pytest.mark.behaviour("client: server closes")
@pytest.mark.needs("client: sends lines")
def test_client_exits_when_the_server_closes(client_host, client_spec, scripted_server):
    # The server echoes the first line and closes; the next line finds the connection gone.
    server = scripted_server("close-after-echo")
    session = run_client(client_host, client_spec, [line_of(12, 51), line_of(12, 52)], server=server, eof=False)
    assert session.result["exit"] is not None, (
        f"the server closed the connection after its first echo: the client should notice and exit within "
        f"{EXIT_LIMIT:g} s of the next line, not loop; it is {session.status()} and printed "
        f"{session.result['printed']} bytes in all\n{session.evidence()}"
    )


@pytest.mark.behaviour("client: refused")
@pytest.mark.needs("client: connects")  # a client that cannot run exits non-zero too: that is no verdict
def test_refused_connection_exits_non_zero(client_host, client_spec, backend, refused_address):
    session = run_client(client_host, client_spec, [], at=refused_address, eof=False)
    result = session.result
    assert result["exit"] not in (None, 0) and result["exited_at"] <= EXIT_LIMIT, (
        f"nothing listens on {refused_address[0]}:{refused_address[1]}: the client should exit non-zero within "
        f"{EXIT_LIMIT:g} s; it {session.status()}\n{session.evidence()}"
    )
