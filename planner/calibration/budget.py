"""The probes' time budget: a deadline on an injectable clock, so no test depends on the machine's speed."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Budget", "monotonic_clock"]


def monotonic_clock() -> float:
    """Seconds on the system's monotonic clock (the probe's default clock)."""
    return time.monotonic()


class Budget:
    """The probe's time budget, counted from before the models load (loading is part of the run)."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.deadline = clock() + seconds

    def left(self) -> float:
        return self.deadline - self.clock()

    def affords(self, seconds: float, until: float | None = None) -> bool:
        """True when a step expected to take ``seconds`` ends before the deadline (and ``until``)."""
        end = min(self.deadline, until) if until is not None else self.deadline
        return self.clock() + seconds <= end
