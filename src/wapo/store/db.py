"""The data directory: one SQLite database (code, vaults, logs) plus ``vault.key``.

Durability: the database runs in WAL mode with ``synchronous=NORMAL``. A
commit returns once its frames are written (``write(2)``) to the WAL file, so
they sit in the OS page cache and survive the death of the process, SIGKILL
included; what NORMAL gives up is the fsync at each commit, i.e. the last
transactions may be lost if the machine itself loses power or the kernel
crashes (the database stays consistent either way). ``synchronous="FULL"``
adds that fsync for deployments that want it.

Threads: sqlite3 connections must not be shared between threads, so each
thread gets its own connection (created on first use, closed by
:meth:`Store.close`). The gateway may call any method from a thread pool via
``asyncio.to_thread``. Several processes (gateway workers) may open the same
directory: writers take the lock with ``BEGIN IMMEDIATE`` and wait up to
``busy_timeout`` seconds for each other.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .code import CodeMixin
from .logs import LogMixin, LogRetention
from .vaults import VaultKeyError, VaultMixin, load_vault_key

__all__ = ["Store", "StoreError", "StoreUnavailable", "SCHEMA_VERSION", "DB_NAME", "make_private_dir",
           "create_private_file"]

DB_NAME = "wapo.sqlite3"
SCHEMA_VERSION = 2

def first_schema(*, integer: str, real: str, blob: str, row_id: str) -> str:
    """Schema version 1 in one SQL dialect, given its names of the types (the PostgreSQL store
    makes the same tables)."""
    return f"""
    CREATE TABLE code (
        cid TEXT PRIMARY KEY,
        size {integer} NOT NULL,
        data {blob} NOT NULL,
        created {real} NOT NULL
    );
    CREATE TABLE vaults (
        key TEXT PRIMARY KEY,
        cid TEXT NOT NULL,
        token_hash {blob} NOT NULL,
        inherit TEXT,
        data {blob} NOT NULL,
        merged {blob} NOT NULL,
        created {real} NOT NULL
    );
    CREATE TABLE logs (
        id {row_id},
        cid TEXT NOT NULL,
        request_id TEXT NOT NULL,
        time {real} NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX logs_by_cid ON logs (cid, id);
    CREATE INDEX logs_by_request ON logs (cid, request_id, id);
    CREATE INDEX logs_by_time ON logs (time);
    CREATE TABLE meta (
        name TEXT PRIMARY KEY,
        value {blob} NOT NULL
    )
    """


# 2: the node that ran each run (issue 14: several nodes may share one PostgreSQL store)
LOG_NODE_COLUMN = "ALTER TABLE logs ADD COLUMN node TEXT NOT NULL DEFAULT ''"

# Migration i (1-based) brings the schema from version i-1 to i.
_MIGRATIONS: list[str] = [
    first_schema(integer="INTEGER", real="REAL", blob="BLOB", row_id="INTEGER PRIMARY KEY AUTOINCREMENT"),
    LOG_NODE_COLUMN,
]
assert len(_MIGRATIONS) == SCHEMA_VERSION


class StoreError(RuntimeError):
    """The data directory or database cannot be used."""


class StoreUnavailable(StoreError):
    """The database cannot be reached right now (a shared server is down or too slow): callers
    answer 503 and try again later, rather than wait."""


def make_private_dir(path: str | os.PathLike[str]) -> None:
    """Create ``path`` and its missing parents mode 0700 (whatever the umask); leave existing ones alone.

    Why explicit: ``mkdir(mode=0o700, parents=True)`` gives the parents the umask's default (0755
    typically) and the umask can also take bits away from the owner.
    """
    path = Path(path)
    missing = []
    while not path.is_dir():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # made by another process at the same moment: it chose the mode
        os.chmod(directory, 0o700)


def create_private_file(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` empty with mode 0600 (whatever the umask) unless it exists; True if created."""
    if os.path.lexists(path):
        return False  # (and no write on a read-only data directory)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return True


class Store(CodeMixin, VaultMixin, LogMixin):
    """Code blobs by CID, vaults and logs in one data directory.

    Why one class: the gateway holds a single object; the methods live in
    ``code.py``, ``vaults.py`` and ``logs.py``.
    """

    def __init__(self, data_dir: str | os.PathLike[str], *, synchronous: str = "NORMAL",
                 busy_timeout: float = 30.0, log_retention: LogRetention | None = None, node: str = "") -> None:
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError("synchronous must be NORMAL, FULL or EXTRA (OFF would lose acknowledged writes)")
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_NAME
        self.retention = log_retention or LogRetention()
        self.node = node  # written into each log record (the name of the gateway node)
        self._synchronous = synchronous.upper()
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._closed = False
        self._log_lock = threading.Lock()
        self._log_writes: Counter[str] = Counter()
        self._log_total = 0
        self._log_due: set[str | None] = set()
        try:
            make_private_dir(self.data_dir)
            # SQLite creates the database 0644 but its -wal, -shm and -journal files with the
            # database's own mode: an empty file made 0600 first is a valid empty database
            create_private_file(self.path)
        except OSError as exc:
            raise StoreError(f"cannot create data directory {self.data_dir}: {exc}") from exc
        self._aead = AESGCM(load_vault_key(self.data_dir))
        try:
            self._migrate()
            self._check_vault_key()
        except BaseException:
            self.close()
            raise

    # -------------------------------------------------------------- connections

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 objects are not thread-safe)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        if self._closed:
            raise StoreError("store is closed")
        try:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            mode = self._journal_mode_wal(conn)
            if mode.lower() != "wal":
                conn.close()
                raise StoreError(f"{self.path}: cannot use WAL mode (got {mode!r}); is it on a network filesystem?")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from exc
        self._local.conn, self._local.pid = conn, os.getpid()
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def _journal_mode_wal(self, conn: sqlite3.Connection) -> str:
        """``PRAGMA journal_mode = WAL``, retried for up to ``busy_timeout`` while the database is locked.

        Why: switching a new database (rollback journal) to WAL needs an exclusive lock, and SQLite
        answers "database is locked" at once, without the busy handler, when another process opens
        it at the same moment (several `wapo publish` on a fresh data directory)."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.005 + random.random() * 0.02)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; committed (durably, see module doc) when the block exits."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self._write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            version = 0 if row is None else row[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path} has schema version {version}; this wapo knows up to "
                                 f"{SCHEMA_VERSION}: upgrade wapo")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target - 1].split(";"):
                    if statement.strip():
                        conn.execute(statement)
            if row is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif version != SCHEMA_VERSION:
                conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    def _check_vault_key(self) -> None:
        """Refuse a ``vault.key`` that is not the one the database's vaults were sealed with.

        Why: a lost or swapped key file would otherwise be replaced silently
        and every vault would fail later, one request at a time.
        """
        aad = b"wapo-vault-key-check"
        with self._write() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name = 'vault_key_check'").fetchone()
            if row is None:
                nonce = os.urandom(12)
                conn.execute("INSERT INTO meta (name, value) VALUES ('vault_key_check', ?)",
                             (nonce + self._aead.encrypt(nonce, b"wapo", aad),))
                return
        blob = bytes(row[0])
        try:
            self._aead.decrypt(blob[:12], blob[12:], aad)
        except InvalidTag:
            raise VaultKeyError(f"{self.data_dir / 'vault.key'} is not the key this database was created with: "
                                "refusing to start (restore the original key file)") from None

    def readiness(self) -> tuple[bool, str]:
        """(ready, why): the database answers and its schema is the one this code expects."""
        try:
            version = self.schema_version
        except (sqlite3.Error, StoreError) as exc:
            return False, f"database error: {exc}"
        if version != SCHEMA_VERSION:
            return False, f"schema version {version}, expected {SCHEMA_VERSION}"
        return True, f"sqlite {self.path}, schema {version}"

    @property
    def description(self) -> str:
        """Where the data is, for messages."""
        return str(self.data_dir)

    @property
    def schema_version(self) -> int:
        """The schema version of the open database."""
        return self._conn().execute("SELECT version FROM schema_version").fetchone()[0]

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` result (``"ok"`` when healthy)."""
        return "\n".join(r[0] for r in self._conn().execute("PRAGMA integrity_check").fetchall())

    def close(self) -> None:
        """Close every thread's connection; the store cannot be used afterwards."""
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
