"""The client suite must catch a broken client and never fail a correct one: the suite runs (a
pytest inside this pytest) against student clients with one classic bug each, and against correct
ones written differently, on the local backend and on docker (from an image of their own)."""

from __future__ import annotations

import pytest

from .conftest import ClientSuite

pytestmark = pytest.mark.slow_harness

CONNECTS, SENDS, PRINTS, EOF, CLOSES, REFUSED = (
    "client: connects",
    "client: sends lines",
    "client: prints replies",
    "client: ends on EOF",
    "client: server closes",
    "client: refused",
)
AFTER_SENDING = {PRINTS, EOF, CLOSES}  # what types a line and so needs lines sent whole

# client -> (the one behaviour BROKEN, the behaviours not judged because they need it, evidence)
BROKEN_CLIENTS = {
    "tutorial": (SENDS, AFTER_SENDING, "did not reach the server whole"),
    "first_word.py": (SENDS, AFTER_SENDING, "did not reach the server whole"),
    "short_buffer": (SENDS, AFTER_SENDING, "line 1 (4095 characters) did not reach the server whole"),
    "single_recv": (PRINTS, set(), "the reply to line 1 (40 bytes"),
    "stale_buffer": (PRINTS, set(), "reply bytes printed where no reply belongs (after the reply to line 2)"),
    "ignores_eof": (EOF, set(), "still running 2 s after its input ended"),
    "loops_after_close": (CLOSES, set(), "the server closed the connection after its first echo"),
    "exit0_refused.py": (REFUSED, set(), "exited with status 0"),
    "port_as_text.py": (
        CONNECTS,
        {SENDS, REFUSED} | AFTER_SENDING,
        "the client never connected to the server at ",
    ),
}


@pytest.mark.parametrize("client", list(BROKEN_CLIENTS))
def test_the_verdict_names_exactly_the_broken_client_behaviour(client_suite: ClientSuite, client: str) -> None:
    broken, dependents, evidence = BROKEN_CLIENTS[client]
    run = client_suite.run(client)
    assert run.status == 1, f"the client suite should fail against '{client}' with exit 1: {run}"
    assert run.broken == {broken}, f"'{client}' should be BROKEN in {broken!r} alone, not {run.broken}: {run}"
    assert run.not_judged == dependents, f"not judged should be {dependents}, got {run.not_judged}: {run}"
    assert run.last_line == f"VERDICT: FAIL - broken: {broken}", str(run)
    assert evidence in run.report, f"expected the evidence {evidence!r}: {run}"
    assert "typed at its terminal" in run.report and "the client printed" in run.report, str(run)


@pytest.mark.parametrize("client", ["sends_newline", "pieces_select.py", "getline_loop", "slow_start.py"])
def test_correct_clients_written_differently_pass(client_suite: ClientSuite, client: str) -> None:
    run = client_suite.run(client)
    assert run.status == 0 and run.last_line == "VERDICT: PASS - every behaviour was judged and holds", str(run)
    assert run.seconds < 60, f"a correct client's suite should take seconds: {run}"


def test_a_client_with_the_labs_hard_coded_address_is_served_on_its_own_host(client_suite: ClientSuite) -> None:
    # The reference client with no --host/--port connects to 127.0.0.1:8888 of its own host.
    run = client_suite.run("", command="python3 -m echo.client")
    assert run.status == 0 and run.last_line.startswith("VERDICT: PASS"), str(run)


def test_a_server_and_a_client_judged_in_one_run(built_clients) -> None:
    # --server-cmd and --client-cmd together: the server suite judges the server, the client suite
    # the client (against the scripted servers), and the verdict names both programs' defects.
    from .conftest import BROKEN, ROOT, run_pytest

    server = f"python3 {BROKEN} no-fin --port {{port}} --backlog {{backlog}}"
    client = f"python3 {built_clients}/exit0_refused.py {{host}} {{port}}"
    run = run_pytest(
        [
            str(ROOT / "tests" / "behaviour"),
            str(ROOT / "tests" / "client"),
            "--server-cmd",
            server,
            "--client-cmd",
            client,
        ]
    )
    assert run.status == 1 and run.broken == {"half-close", REFUSED}, str(run)
    assert f"--server-cmd {server!r} and --client-cmd {client!r}" in run.report, str(run)
