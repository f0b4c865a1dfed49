"""A token bucket per client address (``POST /vaults``): ``rate`` requests per minute, bursts up to ``rate``.

With a data directory the buckets live in ``<data>/vault_rate.sqlite``, so the processes of
``wapo serve --workers N`` share them (kept in each process, a client spreading its connections
over the workers reached N times the rate). A cluster's nodes each keep their own file: the rate is
per node. Buckets that are full again are pruned once the table grows, so the table stays bounded
by the clients active within about a minute.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable

from ..store.db import create_private_file, make_private_dir

__all__ = ["RateLimiter", "RATE_FILE"]

RATE_FILE = "vault_rate.sqlite"
_PRUNE_AT = 10_000


class RateLimiter:
    def __init__(self, per_minute: float, data_dir: Path | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_minute / 60.0
        self.capacity = max(1.0, float(per_minute))
        self._clock = clock  # CLOCK_MONOTONIC is one clock for every process of the machine
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when), without a file
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        if data_dir is not None and self.enabled:
            self._db = _open(Path(data_dir) / RATE_FILE)

    @property
    def enabled(self) -> bool:
        return self.per_second > 0

    def take(self, client: str) -> float:
        """0 if ``client`` may go on (one token is taken), else the seconds until it may. With a file
        this is a short SQLite transaction: call it off the event loop."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        if self._db is None:
            return self._take(self._buckets, client, now)
        with self._lock:
            return self._take_shared(self._db, client, now)

    def _refill(self, tokens: float, then: float, now: float) -> float:
        return min(self.capacity, tokens + max(0.0, now - then) * self.per_second)

    def _take(self, buckets: dict[str, tuple[float, float]], client: str, now: float) -> float:
        tokens = self._refill(*buckets.get(client, (self.capacity, now)), now)
        if tokens >= 1.0:
            if len(buckets) >= _PRUNE_AT and client not in buckets:
                for full in [c for c, (t, then) in buckets.items() if self._refill(t, then, now) >= self.capacity]:
                    del buckets[full]
            buckets[client] = (tokens - 1.0, now)
            return 0.0
        buckets[client] = (tokens, now)
        return (1.0 - tokens) / self.per_second

    def _take_shared(self, db: sqlite3.Connection, client: str, now: float) -> float:
        db.execute("BEGIN IMMEDIATE")  # one process at a time reads and writes a bucket
        try:
            row = db.execute("SELECT tokens, at FROM buckets WHERE client = ?", (client,)).fetchone()
            tokens = self._refill(*(row or (self.capacity, now)), now)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.per_second
            if not wait:
                tokens -= 1.0
                if row is None and db.execute("SELECT count(*) FROM buckets").fetchone()[0] >= _PRUNE_AT:
                    # full again: tokens + (now - at) * rate >= capacity
                    db.execute("DELETE FROM buckets WHERE tokens + (? - at) * ? >= ?",
                               (now, self.per_second, self.capacity))
            db.execute("INSERT INTO buckets (client, tokens, at) VALUES (?, ?, ?) ON CONFLICT (client) "
                       "DO UPDATE SET tokens = excluded.tokens, at = excluded.at", (client, tokens, now))
            db.execute("COMMIT")
            return wait
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @staticmethod
    def retry_after(seconds: float) -> str:
        return str(max(1, math.ceil(seconds)))


def _open(path: Path) -> sqlite3.Connection:
    make_private_dir(path.parent)
    create_private_file(path)  # 0600, and so its -wal and -shm
    db = sqlite3.connect(path, timeout=5, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")  # buckets are worth nothing after a crash: they refill
    db.execute("CREATE TABLE IF NOT EXISTS buckets (client TEXT PRIMARY KEY, tokens REAL NOT NULL, "
               "at REAL NOT NULL)")
    return db
