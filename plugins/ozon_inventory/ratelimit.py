"""A request budget per Ozon Client-Id, shared by every client thread of this process.

Ozon limits requests per Client-Id across methods (50/s by default) and per method (``/v1/warehouse
/list``: 1 a minute). The budget spaces requests to a configured rate, and listens to the server:
``Retry-After`` on a 429 pauses every thread of that Client-Id, and ``Ratelimit-Remaining: 0``
pauses them until the next second, so several processes sharing a key back off together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateBudget:
    """A token bucket (``rate`` per ``per`` seconds, bursts of at most ``burst``, 1 by default) with pauses."""

    def __init__(
        self,
        rate: float,
        per: float = 1.0,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if rate <= 0 or per <= 0:
            raise ValueError("a rate budget needs a positive rate and period")
        self.rate = rate / per
        # No bursts by default: with a bucket of c tokens, c + rate requests could fall in one second,
        # and Ozon's window may be a plain per-second count.
        self.capacity = burst if burst is not None else 1.0
        self._tokens = self.capacity
        self._clock, self._sleep = clock, sleep
        self._stamp = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self) -> float:
        """Block until a request may go; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if now < self._paused_until:
                    wait = self._paused_until - now
                elif self._tokens >= 1:
                    self._tokens -= 1
                    self.waited += waited
                    return waited
                else:
                    wait = (1 - self._tokens) / self.rate
            self._sleep(wait)
            waited += wait

    def pause(self, seconds: float) -> None:
        """Let no request of this Client-Id go for ``seconds`` (from a 429's Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            self._tokens = 0.0

    def observe_remaining(self, remaining: int) -> None:
        """React to ``Ratelimit-Remaining``: none left means wait for the next second."""
        if remaining <= 0:
            self.pause(min(1.0, 1.0 / self.rate))


_registry: dict[tuple[str, str], RateBudget] = {}
_registry_lock = threading.Lock()


def budget_for(client_id: str, scope: str, rate: float, per: float = 1.0) -> RateBudget:
    """The process-wide budget of one Client-Id for a scope ("*" = all methods, or a method)."""
    with _registry_lock:
        budget = _registry.get((client_id, scope))
        if budget is None or budget.rate != rate / per:
            budget = _registry[(client_id, scope)] = RateBudget(rate, per)
        return budget
