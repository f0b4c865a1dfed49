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

from ..store.db import create_private_file, make_private_dir

log = logging.getLogger("wapo.gateway")

RUNS_FILE = "runs.sqlite"
KEEP = 24 * 3600.0
FLUSH_DELAY = 0.1
LIVE_AFTER = 0.5  # a run going longer than this publishes its console lines as they come
LIVE_KEEP = 600.0  # live lines are for the tail only: the store keeps the run's logs


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (0..1) of sorted values, None for none."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, int(round(q * len(sorted_values) + 0.5)) - 1))
    return sorted_values[rank]


class RunLog:
    def __init__(self, data_dir: Path) -> None:
        self._lock = threading.Lock()
        make_private_dir(data_dir)  # (a node of a cluster may have no data directory yet)
        create_private_file(Path(data_dir) / RUNS_FILE)  # 0600, and so its -wal and -shm
        self._conn = sqlite3.connect(Path(data_dir) / RUNS_FILE, timeout=30, isolation_level=None,
                                     check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS runs (time REAL NOT NULL, cid TEXT NOT NULL, "
                           "request_id TEXT NOT NULL, status INTEGER NOT NULL, duration REAL NOT NULL, "
                           "error_kind TEXT, trigger TEXT NOT NULL)")
        self._conn.execute("CREATE INDEX IF NOT EXISTS runs_cid_time ON runs (cid, time)")
        self._conn.execute("CREATE INDEX IF NOT EXISTS runs_time ON runs (time)")
        self._conn.execute("CREATE TABLE IF NOT EXISTS live_lines (id INTEGER PRIMARY KEY, cid TEXT NOT NULL, "
                           "request_id TEXT NOT NULL, time REAL NOT NULL, level TEXT NOT NULL, message TEXT NOT NULL)")
        self._pending: list[tuple] = []
        self._pending_lines: list[tuple] = []
        self._flushing: asyncio.Task | None = None
        self._flushes = 0

    # --- writing ------------------------------------------------------------------------------

    def record(self, cid: str, request_id: str, status: int, duration: float, error_kind: str | None = None,
               trigger: str = "request") -> None:
        """Queue one run (written within FLUSH_DELAY, or at close)."""
        self._pending.append((time.time(), cid, request_id, status, duration, error_kind, trigger))
        self._flush_later()

    def publish_line(self, cid: str, request_id: str, t: float, level: str, message: str) -> None:
        """Queue a console line of a run in progress for the live tail (see ``LiveLines``)."""
        self._pending_lines.append((cid, request_id, t, level, message[:4096]))
        self._flush_later()

    def _flush_later(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_DELAY)
        while self._pending or self._pending_lines:
            rows, self._pending = self._pending, []
            lines, self._pending_lines = self._pending_lines, []
            try:
                await asyncio.to_thread(self._write, rows, lines)
            except Exception:
                log.exception("could not record %d run(s) for the dashboard", len(rows))

    def _write(self, rows: list[tuple], lines: list[tuple] = ()) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            self._conn.executemany("INSERT INTO live_lines (cid, request_id, time, level, message) "
                                   "VALUES (?, ?, ?, ?, ?)", lines)
            self._flushes += 1
            if self._flushes % 100 == 1:
                now = time.time()
                self._conn.execute("DELETE FROM runs WHERE time < ?", (now - KEEP,))
                self._conn.execute("DELETE FROM live_lines WHERE time < ?", (now - LIVE_KEEP,))
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

    def live_lines(self, cid: str, after: int) -> list[dict]:
        """Console lines of runs in progress published after the line id ``after`` (-1: the last id only)."""
        if after < 0:
            return [{"id": self._rows("SELECT coalesce(max(id), 0) FROM live_lines", ())[0][0]}]
        rows = self._rows("SELECT id, request_id, time, level, message FROM live_lines WHERE cid = ? AND id > ? "
                          "ORDER BY id LIMIT 500", (cid, after))
        return [{"id": i, "request_id": rid, "time": t, "level": level, "message": m} for i, rid, t, level, m in rows]

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


class LiveLines:
    """The ``on_log`` of a run: once the run has lasted ``LIVE_AFTER`` seconds its console lines
    (those before too) are published for the dashboard's live tail as they come, so a long run (a
    stream, a slow job) shows them within a second, not when it ends and its logs are stored.
    Short runs cost a list append per line."""

    def __init__(self, run_log: RunLog, cid: str, request_id: str) -> None:
        self._run_log, self._cid, self._request_id = run_log, cid, request_id
        self._buffer: list | None = []
        self._timer = asyncio.get_running_loop().call_later(LIVE_AFTER, self._go_live)

    def __call__(self, record) -> None:  # a host LogRecord
        if self._buffer is None:
            self._run_log.publish_line(self._cid, self._request_id, record.time, record.level, record.message)
        else:
            self._buffer.append(record)

    def _go_live(self) -> None:
        buffered, self._buffer = self._buffer or [], None
        for record in buffered:
            self(record)

    def close(self) -> None:
        """The run ended: its logs go to the store; nothing more to publish."""
        self._timer.cancel()
        self._buffer = []
