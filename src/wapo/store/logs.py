"""Logs of agent runs, kept per CID and read back newest first.

Records are ``(cid, request_id, time, level, message)``. Levels are the
console levels (``trace debug info log warn error``) plus the framing records
the caller writes around each run: ``START`` (message ``Request: GET /ipfs/...``),
``END`` (``Request: Duration: N ms``) and ``REPORT``. In the text format
START/END records print as ``START <message>`` / ``END <message>``.

Retention is enforced on write, cheaply: every ``prune_every`` records written
for a CID (or every eighth of ``max_per_cid``, if more) its oldest records
beyond ``max_per_cid`` are deleted, and every ``prune_every`` records overall
those older than ``max_age`` seconds are. So a CID may briefly hold up to
``max(prune_every, max_per_cid // 8) - 1`` records over its quota. Why the
eighth: a prune reads the CID's whole quota (10,000 index entries by default),
so pruning every 256 records made each record pay for reading 40.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from .cid import InvalidCID, parse_cid

__all__ = ["LogRecord", "LogMixin", "LogRetention", "format_text", "LEVELS", "MAX_MESSAGE"]

CONSOLE_LEVELS = ("trace", "debug", "info", "log", "warn", "error")
FRAMING_LEVELS = ("START", "END", "REPORT")
LEVELS = CONSOLE_LEVELS + FRAMING_LEVELS
MAX_MESSAGE = 64 * 1024
MAX_PAGE = 100
MAX_LIMIT = 100
_TEXT_LEVEL = {"error": "ERROR", "warn": "WARN", "info": "INFO", "log": "INFO", "debug": "INFO",
               "trace": "INFO", "START": "REPORT", "END": "REPORT", "REPORT": "REPORT"}
_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")


@dataclass(frozen=True)
class LogRecord:
    """One stored log line."""

    id: int
    cid: str
    request_id: str
    time: float
    level: str
    message: str
    node: str = ""  # the gateway node that wrote it ("" on a single node)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (time as an ISO 8601 UTC string)."""
        return {"id": self.id, "cid": self.cid, "request_id": self.request_id, "time": iso_time(self.time),
                "level": self.level, "message": self.message, "node": self.node}


@dataclass
class LogRetention:
    """How many log records to keep: per CID, by age (seconds), checked every N writes."""

    max_per_cid: int = 10_000
    max_age: float | None = 7 * 24 * 3600
    prune_every: int = 256


def iso_time(t: float) -> str:
    """``2024-05-01T12:00:00.123Z``."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def normalize_level(level: str) -> str:
    """Console levels lower case, framing levels upper case; ValueError for others."""
    if isinstance(level, str):
        if level.lower() in CONSOLE_LEVELS:
            return level.lower()
        if level.upper() in FRAMING_LEVELS:
            return level.upper()
    raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LEVELS)}")


def log_key(cid: str) -> str:
    """The id logs are kept under: a CID normalized to v0, or a short plain name (e.g. ``local``).

    Why names: local development runs have no CID but still want logs.
    """
    try:
        return parse_cid(cid).v0
    except InvalidCID:
        if isinstance(cid, str) and _NAME_RE.match(cid) and not cid.startswith(("Qm", "b")):
            return cid
        raise


def format_text(records: Iterable[LogRecord]) -> str:
    """Lines ``ISO-time [request id] [REPORT|INFO|WARN|ERROR] message``, one per record."""
    lines = []
    for r in records:
        message = f"{r.level} {r.message}" if r.level in ("START", "END") else r.message
        lines.append(f"{iso_time(r.time)} [{r.request_id}] [{_TEXT_LEVEL.get(r.level, 'INFO')}] {message}")
    return "".join(line + "\n" for line in lines)


def _check_int(name: str, value: Any, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ValueError(f"{name} must be an integer from 1 to {high}, got {value!r}")
    return value


class LogMixin:
    """Store methods for logs (mixed into :class:`wapo.store.Store`)."""

    _conn: Callable[[], Any]
    _write: Callable[[], AbstractContextManager[Any]]
    retention: LogRetention
    _log_lock: threading.Lock
    _log_writes: Counter[str]
    _log_total: int
    _log_due: set[str | None]
    node: str

    def _insert_logs(self, conn: Any, rows: list[tuple], ids: bool = True) -> list[int]:
        """Insert rows ``(cid, request_id, time, level, message, node)``; their ids in order (with
        ``ids`` false a backend may return ``[]`` and write the rows more cheaply).

        SQLite runs in-process, so one statement per row costs no round trip (a server backend
        overrides this with one statement for the batch)."""
        return [conn.execute("INSERT INTO logs (cid, request_id, time, level, message, node)"
                             " VALUES (?, ?, ?, ?, ?, ?)", row).lastrowid for row in rows]

    def _log_write(self) -> AbstractContextManager[Any]:
        """The transaction log lines are written in (a server backend may make it cheaper)."""
        return self._write()

    def _retention_turn(self, conn: Any) -> bool:
        """Whether this process may prune now (a shared backend lets one node at a time)."""
        return True

    def append_log(self, cid: str, request_id: str, level: str, message: str, time: float | None = None) -> int:
        """Append one record; returns its id (ids grow with insertion order)."""
        return self.append_logs(cid, request_id, [(level, message, time)])[0]

    def append_logs(self, cid: str, request_id: str,
                    entries: Iterable[tuple[str, str] | tuple[str, str, float | None]]) -> list[int]:
        """Append a run's records ``(level, message[, time])`` in one transaction; returns their ids."""
        return self.append_log_batch([(cid, request_id, entries)])

    def append_log_batch(self, runs: Iterable[tuple[str, str, Iterable[tuple]]], *, ids: bool = True,
                         prune: bool = True) -> list[int]:
        """Append the records of several runs ``(cid, request_id, entries)`` in one transaction;
        their ids (with ``ids=False``, for the gateway's writer, which never reads them, a server
        backend writes with COPY and returns ``[]``). With ``prune=False`` the retention these
        writes make due is left to :meth:`prune_due`.

        Why: a busy gateway commits the logs of many requests at once (group commit), and
        acknowledges them before it prunes (a prune of a full CID reads its whole quota)."""
        now = _now()
        rows = []
        for cid, request_id, entries in runs:
            key = log_key(cid)
            if not isinstance(request_id, str) or not request_id or len(request_id) > 128:
                raise ValueError("request_id must be a non-empty string of at most 128 characters")
            for entry in entries:
                level, message = entry[0], entry[1]
                t = entry[2] if len(entry) > 2 else None
                if not isinstance(message, str):
                    message = str(message)
                if len(message) > MAX_MESSAGE:
                    message = message[:MAX_MESSAGE] + " ...[truncated]"
                rows.append((key, request_id, now if t is None else float(t), normalize_level(level), message,
                             self.node))
        if not rows:
            return []
        with self._log_write() as conn:
            written_ids = self._insert_logs(conn, rows, ids)
        self._count_log_writes(Counter(row[0] for row in rows))
        if prune:
            self.prune_due()
        return written_ids

    def _count_log_writes(self, written: Counter[str]) -> None:
        every = max(1, self.retention.prune_every)
        every_cid = max(every, (self.retention.max_per_cid or 0) // 8)
        with self._log_lock:
            for key, n in written.items():
                self._log_writes[key] += n
                if self._log_writes[key] >= every_cid:
                    del self._log_writes[key]
                    self._log_due.add(key)
            self._log_total += sum(written.values())
            if self._log_total >= every:
                self._log_total = 0
                self._log_due.add(None)  # None: the prune by age

    @property
    def retention_due(self) -> bool:
        """Whether writes made a prune due that :meth:`prune_due` has not applied yet."""
        return bool(self._log_due)

    def prune_due(self) -> int:
        """Apply the retention that the writes so far made due (see the module's docstring);
        returns the number of records deleted."""
        with self._log_lock:
            due, self._log_due = self._log_due, set()
        deleted = sum(self._prune_count(key) for key in due if key is not None)
        if None in due:
            deleted += self._prune_age()
        return deleted

    def _prune_count(self, key: str) -> int:
        keep = self.retention.max_per_cid
        if not keep or keep < 0:
            return 0
        with self._write() as conn:
            if not self._retention_turn(conn):
                return 0
            return conn.execute(
                "DELETE FROM logs WHERE cid = ? AND id <= "
                "(SELECT id FROM logs WHERE cid = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (key, key, keep)).rowcount

    def _prune_age(self, now: float | None = None) -> int:
        if not self.retention.max_age:
            return 0
        cutoff = (_now() if now is None else now) - self.retention.max_age
        with self._write() as conn:
            if not self._retention_turn(conn):
                return 0
            return conn.execute("DELETE FROM logs WHERE time < ?", (cutoff,)).rowcount

    def prune_logs(self, now: float | None = None) -> int:
        """Apply retention to every CID now; returns the number of records deleted."""
        deleted = self._prune_age(now)
        keys = [r[0] for r in self._conn().execute("SELECT DISTINCT cid FROM logs").fetchall()]
        for key in keys:
            deleted += self._prune_count(key)
        return deleted

    def query_logs(self, cid: str, request_id: str | None = None, page: int = 1,
                   limit: int = 100) -> list[LogRecord]:
        """Records of ``cid`` (optionally one request), newest first, ``limit`` per ``page``.

        ``page`` and ``limit`` must be integers in 1..100 (ValueError otherwise).
        """
        _check_int("page", page, MAX_PAGE)
        _check_int("limit", limit, MAX_LIMIT)
        key = log_key(cid)
        sql = "SELECT id, cid, request_id, time, level, message, node FROM logs WHERE cid = ?"
        args: list[Any] = [key]
        if request_id is not None:
            sql += " AND request_id = ?"
            args.append(request_id)
        sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
        args += [limit, (page - 1) * limit]
        return [LogRecord(*row) for row in self._conn().execute(sql, args).fetchall()]


def _now() -> float:
    return time.time()
