"""Which process runs a cron tick: a small SQLite ledger in the data directory.

Every worker process (and, sharing the data directory, every gateway on it) schedules every job;
the first to claim a ``(job, tick)`` row runs it and the others see it taken. A job whose previous
run is still marked running is skipped for that tick (the row says so: skipped once, logged once).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from enum import Enum
from pathlib import Path

from ..store.db import create_private_file, make_private_dir

LEDGER_FILE = "cron.sqlite"
KEEP = 7 * 24 * 3600.0  # rows older than this are dropped when a new tick is claimed


# cron_runs columns -> the keys of the rows runs() returns
RUN_FIELDS = {"job": "job", "tick": "tick", "state": "state", "request_id": "requestId", "started": "started",
              "ended": "ended"}


def _latest_runs(fields: dict[str, str], job: str | None, limit: int) -> tuple[str, tuple]:
    """The query (and its arguments) of the newest ``limit`` rows, of one job or of all."""
    where, args = ("WHERE job = ?", (job,)) if job is not None else ("", ())
    return f"SELECT {', '.join(fields)} FROM cron_runs {where} ORDER BY tick DESC LIMIT ?", (*args, limit)


class Claim(Enum):
    RUN = "run"          # this process runs the tick
    SKIP = "skip"        # the previous run of the job is still going: this tick is skipped
    TAKEN = "taken"      # another process claimed this tick already


class CronLedger:
    """Claims of ticks, one short IMMEDIATE transaction each (SQLite serializes the writers)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LEDGER_FILE
        self._lock = threading.Lock()  # one connection, used from worker threads one at a time
        make_private_dir(data_dir)
        create_private_file(self.path)  # 0600, and so its -wal and -shm
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS cron_runs (job TEXT NOT NULL, tick REAL NOT NULL, "
                           "state TEXT NOT NULL, request_id TEXT, started REAL, ended REAL, "
                           "PRIMARY KEY (job, tick))")

    def claim(self, job: str, tick: float, request_id: str, stale_after: float) -> tuple[Claim, str | None]:
        """Claim ``tick`` of ``job``; with SKIP, the request id of the run still in progress.

        A run marked running for longer than ``stale_after`` seconds (its process died) no longer
        blocks the job."""
        with self._lock:
            return self._claim(job, tick, request_id, stale_after)

    def _claim(self, job: str, tick: float, request_id: str, stale_after: float) -> tuple[Claim, str | None]:
        now = time.time()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT 1 FROM cron_runs WHERE job = ? AND tick = ?", (job, tick)).fetchone():
                conn.execute("COMMIT")
                return Claim.TAKEN, None
            running = conn.execute("SELECT request_id FROM cron_runs WHERE job = ? AND state = 'running' "
                                   "AND started > ? ORDER BY started DESC LIMIT 1",
                                   (job, now - stale_after)).fetchone()
            state = "skipped" if running else "running"
            conn.execute("INSERT INTO cron_runs (job, tick, state, request_id, started) VALUES (?, ?, ?, ?, ?)",
                         (job, tick, state, request_id, now))
            conn.execute("DELETE FROM cron_runs WHERE tick < ?", (now - KEEP,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return (Claim.SKIP, running[0]) if running else (Claim.RUN, None)

    def finish(self, job: str, tick: float, state: str) -> None:
        """Mark a claimed run ended (``state``: ok, error)."""
        with self._lock:
            self._conn.execute("UPDATE cron_runs SET state = ?, ended = ? WHERE job = ? AND tick = ?",
                               (state, time.time(), job, tick))

    def runs(self, job: str | None = None, limit: int = 100) -> list[dict]:
        """The latest rows, newest first (for `wapo cron list` and the dashboard)."""
        query, args = _latest_runs(RUN_FIELDS, job, limit)
        with self._lock:
            rows = self._conn.execute(query, args).fetchall()
        return [dict(zip(RUN_FIELDS.values(), row)) for row in rows]

    def close(self) -> None:
        self._conn.close()


class PgCronLedger:
    """The same ledger in a cluster's PostgreSQL store (``cron_runs``), so one node of the cluster
    runs each tick, whichever node's data directory it is: every node schedules every job, the
    first ``INSERT`` of a ``(job, tick)`` wins (the primary key settles a race), the others see
    it taken."""

    def __init__(self, store) -> None:
        self.store = store

    def claim(self, job: str, tick: float, request_id: str, stale_after: float) -> tuple[Claim, str | None]:
        now = time.time()
        with self.store._write() as conn:
            if conn.execute("SELECT 1 FROM cron_runs WHERE job = ? AND tick = ?", (job, tick)).fetchone():
                return Claim.TAKEN, None
            running = conn.execute("SELECT request_id FROM cron_runs WHERE job = ? AND state = 'running' "
                                   "AND started > ? ORDER BY started DESC LIMIT 1",
                                   (job, now - stale_after)).fetchone()
            state = "skipped" if running else "running"
            inserted = conn.execute(
                "INSERT INTO cron_runs (job, tick, state, request_id, started, node) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (job, tick) DO NOTHING", (job, tick, state, request_id, now, self.store.node)).rowcount
            if not inserted:
                return Claim.TAKEN, None  # another node claimed it between our look and our insert
            conn.execute("DELETE FROM cron_runs WHERE tick < ?", (now - KEEP,))
        return (Claim.SKIP, running[0]) if running else (Claim.RUN, None)

    def finish(self, job: str, tick: float, state: str) -> None:
        with self.store._write() as conn:
            conn.execute("UPDATE cron_runs SET state = ?, ended = ? WHERE job = ? AND tick = ?",
                         (state, time.time(), job, tick))

    def runs(self, job: str | None = None, limit: int = 100) -> list[dict]:
        fields = {**RUN_FIELDS, "node": "node"}
        query, args = _latest_runs(fields, job, limit)
        rows = self.store._conn().execute(query, args).fetchall()
        return [dict(zip(fields.values(), row)) for row in rows]

    def close(self) -> None:
        pass  # the store is the gateway's
