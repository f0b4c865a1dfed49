"""Every agent run in one table the dashboard reads: CID, request id, answer status, duration and
the limit it hit. A SQLite file of its own in the data directory (``runs.sqlite``), so that every
worker process writes to it and any of them answers the dashboard for the whole service.

Writes are batched (a flush a fraction of a second after the first pending run, off the event
loop); requests never wait for them. Rows older than ``KEEP`` are dropped.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger("wapo.gateway")

RUNS_FILE = "runs.sqlite"
KEEP = 24 * 3600.0
FLUSH_DELAY = 0.1


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (0..1) of sorted values, None for none."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, int(round(q * len(sorted_values) + 0.5)) - 1))
    return sorted_values[rank]


class RunLog:
    def __init__(self, data_dir: Path) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(Path(data_dir) / RUNS_FILE, timeout=30, isolation_level=None,
                                     check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS runs (time REAL NOT NULL, cid TEXT NOT NULL, "
                           "request_id TEXT NOT NULL, status INTEGER NOT NULL, duration REAL NOT NULL, "
                           "error_kind TEXT, trigger TEXT NOT NULL)")
        self._conn.execute("CREATE INDEX IF NOT EXISTS runs_cid_time ON runs (cid, time)")
        self._conn.execute("CREATE INDEX IF NOT EXISTS runs_time ON runs (time)")
        self._pending: list[tuple] = []
        self._flushing: asyncio.Task | None = None
        self._flushes = 0

    # --- writing ------------------------------------------------------------------------------

    def record(self, cid: str, request_id: str, status: int, duration: float, error_kind: str | None = None,
               trigger: str = "request") -> None:
        """Queue one run (written within FLUSH_DELAY, or at close)."""
        self._pending.append((time.time(), cid, request_id, status, duration, error_kind, trigger))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_DELAY)
        while self._pending:
            rows, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._write, rows)
            except Exception:
                log.exception("could not record %d run(s) for the dashboard", len(rows))

    def _write(self, rows: list[tuple]) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            self._flushes += 1
            if self._flushes % 100 == 1:
                self._conn.execute("DELETE FROM runs WHERE time < ?", (time.time() - KEEP,))
            self._conn.execute("COMMIT")

    async def close(self) -> None:
        if self._flushing is not None:
            await self._flushing
        with self._lock:
            self._conn.close()

    # --- reading (blocking: call through asyncio.to_thread) ------------------------------------

    def _rows(self, query: str, args: tuple) -> list[tuple]:
        with self._lock:
            return self._conn.execute(query, args).fetchall()

    def agents(self, since: float) -> list[dict]:
        """Per CID since ``since``: runs, errors, error rate, p50/p99 (ms), limits hit by kind."""
        by_cid: dict[str, dict] = {}
        for cid, status, duration, kind, last in self._rows(
                "SELECT cid, status, duration, error_kind, time FROM runs WHERE time >= ? ORDER BY time", (since,)):
            entry = by_cid.setdefault(cid, {"cid": cid, "requests": 0, "errors": 0, "durations": [], "limits": {},
                                            "lastRun": last})
            entry["requests"] += 1
            entry["errors"] += status >= 500
            entry["durations"].append(duration)
            entry["lastRun"] = last
            if kind and kind.endswith("_limit"):
                name = kind.removesuffix("_limit")
                entry["limits"][name] = entry["limits"].get(name, 0) + 1
        out = []
        for entry in by_cid.values():
            durations = sorted(entry.pop("durations"))
            entry["errorRate"] = entry["errors"] / entry["requests"]
            entry["p50Ms"] = round(percentile(durations, 0.5) * 1000, 1)
            entry["p99Ms"] = round(percentile(durations, 0.99) * 1000, 1)
            out.append(entry)
        return sorted(out, key=lambda e: -e["requests"])

    def runs(self, cid: str, limit: int = 50) -> list[dict]:
        """The latest runs of ``cid``, newest first."""
        rows = self._rows("SELECT time, request_id, status, duration, error_kind, trigger FROM runs WHERE cid = ? "
                          "ORDER BY time DESC LIMIT ?", (cid, limit))
        return [{"time": t, "requestId": rid, "status": status, "durationMs": round(d * 1000, 1), "errorKind": kind,
                 "trigger": trigger} for t, rid, status, d, kind, trigger in rows]

    def series(self, cid: str, since: float, step: float = 60.0) -> list[dict]:
        """Requests, errors and p50 latency of ``cid`` per ``step`` seconds since ``since`` (for the chart)."""
        buckets: dict[int, list] = {}
        for t, status, d in self._rows("SELECT time, status, duration FROM runs WHERE cid = ? AND time >= ?",
                                       (cid, since)):
            bucket = buckets.setdefault(int((t - since) // step), [0, 0, []])
            bucket[0] += 1
            bucket[1] += status >= 500
            bucket[2].append(d)
        n = int((time.time() - since) // step) + 1
        out = []
        for i in range(n):
            count, errors, durations = buckets.get(i, [0, 0, []])
            p50 = percentile(sorted(durations), 0.5)
            out.append({"start": since + i * step, "requests": count, "errors": errors,
                        "p50Ms": round(p50 * 1000, 1) if p50 is not None else None})
        return out
