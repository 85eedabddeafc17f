"""The verdict's logic on its own: root cause BROKEN, collateral failures not judged, PASS only when
everything was judged, whatever order the tests finished in."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from harness.gate import PREFIX, Board, sweep
from harness.verdict import Record, exit_status, judge, lines, rank

ECHO, HALF, BACKLOG, WIRE = "echo fidelity", "half-close", "listen backlog", "wire"


def rec(name: str, behaviour: str, outcome: str = "passed", needs: tuple[str, ...] = (), reason: str = "") -> Record:
    return Record(f"tests/behaviour/x.py::{name}", behaviour, needs, outcome, reason or f"{name} failed")


def one_byte_bug() -> list[Record]:
    """What a server that drops the last byte of each read does to the suite."""
    return [
        rec("test_hello", ECHO, "failed", reason="sent 13 bytes, got 12 back"),
        rec("test_nul", ECHO, "failed"),
        rec("test_half_close", HALF, "failed", needs=(ECHO,)),
        rec("test_backlog", BACKLOG, "failed", needs=(ECHO,)),
        rec("test_overflow", WIRE, "failed", needs=(BACKLOG,)),
        rec("test_capture_works", WIRE),
    ]


def test_collateral_failures_are_not_judged_and_name_what_they_needed():
    verdict = judge(one_byte_bug())
    assert verdict.broken == [ECHO]
    gated = {r.name: r for r in verdict.not_judged}
    assert set(gated) == {"test_half_close", "test_backlog", "test_overflow"}
    assert gated["test_half_close"].gated_by == ECHO
    assert "needs a working echo: echo fidelity is broken" in gated["test_half_close"].reason
    # The backlog was never shown to work: what needs it is not judged either, saying so.
    assert gated["test_overflow"].gated_by == BACKLOG and "was not judged" in gated["test_overflow"].reason
    assert exit_status(verdict) == 1


def test_the_verdict_does_not_depend_on_the_order_tests_finished_in():
    expected = judge(one_byte_bug())
    for seed in range(20):
        records = one_byte_bug()
        random.Random(seed).shuffle(records)
        verdict = judge(records)
        assert verdict.broken == expected.broken
        assert {r.name for r in verdict.not_judged} == {r.name for r in expected.not_judged}


def test_a_failure_whose_needs_hold_is_its_own_behaviours():
    verdict = judge([rec("test_hello", ECHO), rec("test_fin", HALF, "failed", needs=(ECHO,))])
    assert verdict.broken == [HALF] and not verdict.not_judged


def test_a_need_with_a_pass_counts_as_shown_even_if_another_of_its_tests_was_not_judged():
    records = [
        rec("test_hello", ECHO),
        rec("test_big", ECHO, "not judged", reason="tcpdump lost 3 packet(s)"),
        rec("test_fin", HALF, "failed", needs=(ECHO,)),
    ]
    verdict = judge(records)
    assert verdict.broken == [HALF]
    assert verdict.state(ECHO) == "not judged"  # partly judged: never a plain "ok"


def test_pass_needs_every_behaviour_judged_and_holding():
    assert judge([rec("a", ECHO), rec("b", HALF, needs=(ECHO,))]).passed
    unjudged = judge([rec("a", ECHO), rec("b", WIRE, "not judged", reason="no packet capture of port 1: no tcpdump")])
    assert not unjudged.passed and exit_status(unjudged) == 1
    text = [line for line, _ in lines(unjudged, "subject")]
    assert text[-1] == "VERDICT: INCOMPLETE - not judged: wire (see above)"
    assert any("no packet capture of port 1: no tcpdump" in line for line in text)
    assert not judge([]).passed


def test_the_verdict_lines_name_the_root_cause_and_group_what_it_blocked():
    text = [line for line, _ in lines(judge(one_byte_bug()), "the server")]
    assert text[-1] == "VERDICT: FAIL - broken: echo fidelity"
    broken = next(i for i, line in enumerate(text) if line.startswith("  BROKEN"))
    assert "echo fidelity" in text[broken] and "test_hello: sent 13 bytes, got 12 back" in text[broken + 1]
    assert "not judged: half-close, listen backlog (they need a working echo; echo fidelity is broken)" in text


def test_behaviours_that_need_each_other_are_refused():
    with pytest.raises(ValueError, match="need each other"):
        rank([rec("a", ECHO, needs=(HALF,)), rec("b", HALF, needs=(ECHO,))])


def test_rank_puts_needs_first():
    order = rank(one_byte_bug())
    assert order.index(ECHO) < order.index(HALF) and order.index(BACKLOG) < order.index(WIRE)


def test_board_keeps_the_first_evidence_and_is_removed(tmp_path):
    board = Board(tmp_path / "board")
    board.directory.mkdir()
    assert board.broken(ECHO) is None
    board.mark_broken(ECHO, "test_hello: sent 13 bytes, got 12 back")
    board.mark_broken(ECHO, "test_nul: later")
    assert board.broken(ECHO) == "test_hello: sent 13 bytes, got 12 back"
    board.remove()
    assert not board.directory.exists()


def test_boards_of_dead_runs_are_swept_and_live_ones_kept():
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    pid = int(dead.stdout)
    live = Board.create()
    stale = live.directory.with_name(f"{PREFIX}{pid}-stale")
    stale.mkdir()
    try:
        sweep()
        assert not stale.exists() and live.directory.exists()
        assert live.directory.name.startswith(f"{PREFIX}{os.getpid()}-")
    finally:
        live.remove()
