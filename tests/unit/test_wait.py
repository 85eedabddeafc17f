"""The one wait helper: returns what the condition found, names what never happened."""

from __future__ import annotations

import itertools

import pytest

from harness.wait import WaitTimeoutError, until


def test_returns_the_first_true_value_the_condition_gives():
    calls = itertools.count()
    assert until(lambda: next(calls) >= 3 and "ready", timeout=5, what="x", interval=0.001) == "ready"


def test_running_out_of_time_names_what_was_awaited():
    with pytest.raises(WaitTimeoutError, match=r"the server listening on port 8888: not within 0.05 s") as info:
        until(lambda: False, timeout=0.05, what="the server listening on port 8888", interval=(0.001, 0.01))
    assert info.value.what == "the server listening on port 8888" and info.value.timeout == 0.05


def test_an_exception_from_the_condition_ends_the_wait_at_once():
    def gone():
        raise ProcessLookupError("exited before it listened")

    with pytest.raises(ProcessLookupError, match="exited before it listened"):
        until(gone, timeout=60, what="x")
