"""One way to wait: poll a condition until it holds or a deadline passes (tenacity does the polling).

Every readiness wait and poll in the harness goes through ``until``: it names what it waits for, so
a wait that runs out says what never happened, and how long it was given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential, wait_fixed

from harness.errors import HarnessError

T = TypeVar("T")


class WaitTimeoutError(HarnessError):
    """``until`` ran out of time; ``what`` names what never happened."""

    def __init__(self, what: str, timeout: float) -> None:
        super().__init__(f"{what}: not within {timeout:g} s")
        self.what = what
        self.timeout = timeout


def until(
    condition: Callable[[], T],
    *,
    timeout: float,
    what: str,
    interval: float | tuple[float, float] = (0.002, 0.02),
) -> T:
    """Call ``condition`` until it returns something true, and return that.

    ``interval`` is a fixed pause, or (first, most) for pauses that double from ``first`` up to
    ``most``: a readiness poll that is cheap starts fast, and backs off if it takes a while. An
    exception from ``condition`` ends the wait at once (it is how a condition says "never").
    WaitTimeoutError after ``timeout`` seconds.
    """
    pause = (
        wait_fixed(interval) if isinstance(interval, (int, float)) else wait_exponential(interval[0], max=interval[1])
    )
    retrying = Retrying(stop=stop_after_delay(timeout), wait=pause, retry=retry_if_result(lambda got: not got))
    try:
        return retrying(condition)
    except RetryError:
        raise WaitTimeoutError(what, timeout) from None
