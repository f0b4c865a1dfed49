"""A token bucket per client address (``POST /vaults``): ``rate`` requests per minute, bursts up to ``rate``.

Per process: with ``--workers N`` each worker keeps its own buckets, so a client may reach up to N
times the rate. Idle buckets (full again) are dropped when the table grows, so memory stays
bounded by the number of clients active within about a minute.
"""

from __future__ import annotations

import math
import time

__all__ = ["RateLimiter"]

_PRUNE_AT = 10_000


class RateLimiter:
    def __init__(self, per_minute: float, clock=time.monotonic) -> None:
        self.per_second = per_minute / 60.0
        self.capacity = max(1.0, float(per_minute))
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when)

    @property
    def enabled(self) -> bool:
        return self.per_second > 0

    def take(self, client: str) -> float:
        """0 if ``client`` may go on (one token is taken), else the seconds until it may."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        tokens, then = self._buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - then) * self.per_second)
        if tokens >= 1.0:
            if len(self._buckets) >= _PRUNE_AT and client not in self._buckets:
                self._prune(now)
            self._buckets[client] = (tokens - 1.0, now)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1.0 - tokens) / self.per_second

    def _prune(self, now: float) -> None:
        full = [c for c, (t, then) in self._buckets.items() if t + (now - then) * self.per_second >= self.capacity]
        for client in full:
            del self._buckets[client]

    @staticmethod
    def retry_after(seconds: float) -> str:
        return str(max(1, math.ceil(seconds)))
