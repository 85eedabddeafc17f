"""Judging a client's terminal output without its wording: where the replies stand, and whether any
reply bytes stand anywhere else."""

from __future__ import annotations

from harness.client import Session, line_of, printed_problem, sent_problem

LONG, SHORT = line_of(60, 1).encode(), line_of(12, 2).encode()


def session(printed: bytes, lines: list[str] | None = None) -> Session:
    chunks = [[0.1 * i, printed[i : i + 7].hex()] for i in range(0, len(printed), 7)]  # arrives in pieces
    return Session(["client"], lines or [], True, {"chunks": chunks, "exit": 0, "exit_after": 0.01})


def test_any_prompts_and_labels_around_the_replies_are_fine():
    for out in (
        b"Enter message : Server reply :\n" + LONG + b"\nEnter message : Server reply :\n" + SHORT + b"\n",
        b"> " + LONG + b"\n> " + SHORT + b"\n> bye\n",
        LONG + SHORT,  # nothing at all around them
        b"Echo: [" + LONG + b"]\nEcho: [" + SHORT + b"]\n",
    ):
        assert printed_problem(session(out), [LONG, SHORT]) is None, out


def test_the_newline_the_server_echoed_back_is_not_part_of_the_reply():
    assert printed_problem(session(b"reply: " + LONG + b"\n"), [LONG + b"\n"]) is None


def test_half_a_reply_is_marked_where_it_stops():
    half = len(LONG) // 2
    problem = printed_problem(session(b"reply: " + LONG[:half] + b"\nEnter message : "), [LONG])
    assert problem is not None and f"its first {half} bytes are printed at output byte 7" in problem
    assert ">>> b'\\nEnter message : '" in problem


def test_the_tail_of_an_older_reply_after_a_shorter_one_is_found():
    out = b"reply: " + LONG + b"\nreply: " + SHORT + LONG[len(SHORT) :] + b"\n"
    problem = printed_problem(session(out), [LONG, SHORT])
    assert problem is not None and "reply bytes printed where no reply belongs (after the reply to line 2)" in problem


def test_a_reply_printed_twice_is_found():
    problem = printed_problem(session(b"> " + SHORT + b"\n" + SHORT + b"\n"), [SHORT])
    assert problem is not None and "after the reply to line 1" in problem


def test_a_line_that_reached_the_server_cut_is_named_with_the_character_where_it_differs():
    lines = ["hello big world", "second"]
    assert sent_problem(session(b"", lines), {1: b"hello big world\n", 2: b"second"}) is None
    problem = sent_problem(session(b"", lines), {1: b"hello", 2: b"second"})
    assert problem is not None and problem.startswith("line 1 (15 characters) did not reach the server whole")
    assert "first difference at character 5" in problem
