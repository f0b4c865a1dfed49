"""The PostgreSQL store: the same methods as the SQLite :class:`~wapo.store.Store`, on a database
any number of gateway nodes share (docs/cluster.md).

Driver: psycopg 3 with psycopg_pool's thread-safe ``ConnectionPool`` (docs/design.md, "A shared
PostgreSQL store"). The store's interface is synchronous and the gateway calls it through
``asyncio.to_thread``, exactly as it calls the SQLite store, so the code of the mixins
(``code.py``, ``vaults.py``, ``logs.py``) runs unchanged here: their SQL is written in the common
subset (``?`` placeholders are turned into ``%s``).

Failure: every wait is bounded (connecting, taking a connection from the pool, each statement),
and a database that cannot be reached raises :class:`~wapo.store.db.StoreUnavailable`, which the
gateway answers with 503. A connection found broken makes the pool check its idle ones, and a
read is tried once more, so a restarted server costs at most one failed write.

Schema changes are versioned migrations, applied at start under a PostgreSQL advisory lock, so
nodes starting together migrate once (each applied version is a row of ``wapo_migrations``).
"""

from __future__ import annotations

import hmac
import json
import re
import threading
import time
from collections import Counter
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .cluster import ClusterKey, ClusterKeyMismatch
from .code import CodeMixin
from .db import LOG_NODE_COLUMN, StoreError, StoreUnavailable, first_schema
from .logs import LogMixin, LogRetention
from .vaults import VaultMixin

__all__ = ["PgStore", "PG_SCHEMA_VERSION", "is_database_url", "redact_url"]

PG_SCHEMA_VERSION = 5

# Migration i (1-based) brings the schema from version i-1 to i: a string of statements separated
# by ";", or a list of statements (when one holds a ";" of its own, as a function body does).
_MIGRATIONS: list[str | list[str]] = [
    first_schema(integer="BIGINT", real="DOUBLE PRECISION", blob="BYTEA",
                 row_id="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"),
    LOG_NODE_COLUMN,
    # 3: every change of a vault row is announced, so the nodes' vault caches drop it (pgcache.py)
    [
        """
        CREATE FUNCTION wapo_vault_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                PERFORM pg_notify('wapo_vaults', TG_TABLE_SCHEMA || ':*');
            ELSE
                PERFORM pg_notify('wapo_vaults', TG_TABLE_SCHEMA || ':' || OLD.key);
            END IF;
            RETURN NULL;
        END $$
        """,
        "CREATE TRIGGER vaults_changed AFTER UPDATE OR DELETE ON vaults FOR EACH ROW "
        "EXECUTE FUNCTION wapo_vault_changed()",
        "CREATE TRIGGER vaults_truncated AFTER TRUNCATE ON vaults FOR EACH STATEMENT "
        "EXECUTE FUNCTION wapo_vault_changed()",
    ],
    # 4: long-running apps, shared by the nodes; each owned by one node at a time (pgapps.py)
    """
    CREATE TABLE apps (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        file TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        on_demand BOOLEAN NOT NULL,
        listen INTEGER,
        stopped BOOLEAN NOT NULL,
        deployed_at DOUBLE PRECISION NOT NULL,
        code BYTEA NOT NULL
    );
    CREATE SEQUENCE apps_version;
    CREATE TABLE app_leases (
        app_id TEXT PRIMARY KEY,
        node TEXT NOT NULL,
        instance TEXT NOT NULL,
        url TEXT NOT NULL,
        expires DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE cluster_nodes (
        instance TEXT PRIMARY KEY,
        node TEXT NOT NULL,
        url TEXT NOT NULL,
        seen DOUBLE PRECISION NOT NULL
    )
    """,
    # 5: the cron ledger of a cluster: one node runs each tick (gateway/cronledger.py)
    """
    CREATE TABLE cron_runs (
        job TEXT NOT NULL,
        tick DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL,
        request_id TEXT,
        started DOUBLE PRECISION,
        ended DOUBLE PRECISION,
        node TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (job, tick)
    )
    """,
]
assert len(_MIGRATIONS) == PG_SCHEMA_VERSION

_LOCK_MIGRATE = "hashtext(current_schema() || '/wapo-migrate')"
_LOCK_RETENTION = "hashtext(current_schema() || '/wapo-retention')"
_COPY_LOGS = "COPY logs (cid, request_id, time, level, message, node) FROM STDIN"
_URL_RE = re.compile(r"postgres(ql)?://", re.IGNORECASE)


def is_database_url(text: object) -> bool:
    """Whether ``text`` names a PostgreSQL database (``postgresql://...`` or ``postgres://...``)."""
    return isinstance(text, str) and bool(_URL_RE.match(text))


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


@lru_cache(maxsize=256)
def _pg_sql(sql: str) -> str:
    return sql.replace("?", "%s")


class _BrokenConnection(StoreUnavailable):
    """A pooled connection failed (the server went away or restarted): another may work."""


class _Result:
    """What the mixins read from a statement: rows fetched at once, and the row count."""

    __slots__ = ("_rows", "rowcount", "_i")

    def __init__(self, rows: list[tuple], rowcount: int) -> None:
        self._rows, self.rowcount, self._i = rows, rowcount, 0

    def fetchone(self) -> tuple | None:
        if self._i >= len(self._rows):
            return None
        self._i += 1
        return self._rows[self._i - 1]

    def fetchall(self) -> list[tuple]:
        rows, self._i = self._rows[self._i:], len(self._rows)
        return rows


class _Tx:
    """One pooled connection, sqlite3-style: ``execute(sql, args)`` with ``?`` placeholders."""

    def __init__(self, conn: Any) -> None:
        self.raw = conn

    def execute(self, sql: str, args: Any = ()) -> _Result:
        cur = self.raw.execute(_pg_sql(sql), args or None)
        rows = cur.fetchall() if cur.description is not None else []
        return _Result(rows, cur.rowcount)


class _Reader:
    """``store._conn()`` of the SQLite store: each statement borrows a connection (autocommit)."""

    def __init__(self, store: "PgStore") -> None:
        self._store = store

    def execute(self, sql: str, args: Any = ()) -> _Result:
        return self._store._read(sql, args)


class PgStore(CodeMixin, VaultMixin, LogMixin):
    """Code by CID, vaults and logs in a PostgreSQL database shared by the nodes of a cluster.

    ``cluster_key`` seals the vaults (every node must hold the same one: a check value in the
    database refuses another); ``node`` is written into each log record.
    """

    def __init__(self, url: str, cluster_key: ClusterKey, *, node: str = "",
                 log_retention: LogRetention | None = None, min_size: int = 1, max_size: int = 10,
                 timeout: float = 3.0, statement_timeout: float = 30.0, vault_cache: bool = False) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool, PoolTimeout

        self._psycopg, self._pool_timeout_error = psycopg, PoolTimeout
        self.url, self.node = url, node
        self.retention = log_retention or LogRetention()
        self._cluster_key = cluster_key
        self._aead = AESGCM(cluster_key.vault_key)
        self._timeout = timeout
        self._log_lock = threading.Lock()
        self._log_writes: Counter[str] = Counter()
        self._log_total = 0
        self._log_due: set[str | None] = set()
        self._closed = False
        self._vault_cache = None
        statement_ms = int(statement_timeout * 1000)
        connect = {"connect_timeout": max(1, int(timeout)), "keepalives": 1, "keepalives_idle": 5,
                   "keepalives_interval": 2, "keepalives_count": 3, "tcp_user_timeout": int(timeout * 1000),
                   "application_name": f"wapo {node}".strip()[:63]}

        def configure(conn: Any) -> None:
            conn.execute(f"SET statement_timeout = {statement_ms}")
            # log batches are single statements outside a transaction and commit without waiting
            # for the WAL flush; every other write is a transaction that asks for it (_write)
            conn.execute("SET synchronous_commit = off")

        self._pool = ConnectionPool(
            url, min_size=min_size, max_size=max_size, timeout=timeout, open=False, configure=configure,
            # a failed connection attempt is not retried in the background (its growing back-off could
            # outlast the outage): the next request that needs a connection makes a new one
            reconnect_timeout=0,
            kwargs={"autocommit": True, **connect})
        try:
            self._pool.open(wait=True, timeout=timeout * 2)
        except Exception as exc:  # noqa: BLE001 (PoolTimeout, bad URL: all say the same to the operator)
            self._pool.close()
            raise StoreUnavailable(f"cannot connect to the database {redact_url(url)} within {timeout * 2:g}s: "
                                   f"{_reason(exc)}; is PostgreSQL running and the URL right?") from None
        try:
            self._migrate()
            self._check_cluster_key()
            if vault_cache:
                from .pgcache import VaultRowCache
                self._vault_cache = VaultRowCache(url, connect)
        except BaseException:
            self.close()
            raise

    # -------------------------------------------------------------- connections

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        if self._closed:
            raise StoreError("store is closed")
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                yield conn
        except self._pool_timeout_error:
            raise StoreUnavailable(f"the database {redact_url(self.url)} did not answer within "
                                   f"{self._timeout:g}s (no connection available)") from None
        except self._psycopg.OperationalError as exc:
            self._check_pool()
            raise _BrokenConnection(f"the database {redact_url(self.url)} is unavailable: {_reason(exc)}") from None

    def _check_pool(self) -> None:
        """After a connection failed: drop the idle connections that are broken too (in the background)."""
        if not self._closed:
            threading.Thread(target=self._pool.check, daemon=True, name="wapo-pg-check").start()

    def _read(self, sql: str, args: Any) -> _Result:
        """One statement; tried again once if the connection it got was broken (a restarted
        server leaves the pool's idle connections dead), not after a timeout."""
        try:
            with self._connection() as conn:
                return _Tx(conn).execute(sql, args)
        except _BrokenConnection:
            pass
        with self._connection() as conn:
            return _Tx(conn).execute(sql, args)

    def _conn(self) -> _Reader:
        """Statements outside a transaction (each borrows a pooled connection)."""
        return _Reader(self)

    @contextmanager
    def _write(self) -> Iterator[_Tx]:
        """A transaction on one pooled connection, committed durably (WAL flushed) when the block exits."""
        with self._connection() as conn:
            with conn.transaction():
                conn.execute("SET LOCAL synchronous_commit = on")
                yield _Tx(conn)

    # -------------------------------------------------------------- schema and key

    def _migrate(self) -> None:
        with self._connection() as conn:
            conn.execute(f"SELECT pg_advisory_lock({_LOCK_MIGRATE})")
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS wapo_migrations (version INTEGER PRIMARY KEY,"
                             " applied_at DOUBLE PRECISION NOT NULL, node TEXT NOT NULL)")
                version = conn.execute("SELECT COALESCE(MAX(version), 0) FROM wapo_migrations").fetchone()[0]
                if version > PG_SCHEMA_VERSION:
                    raise StoreError(f"the database {redact_url(self.url)} has schema version {version}; this wapo "
                                     f"knows up to {PG_SCHEMA_VERSION}: upgrade wapo on this node")
                for target in range(version + 1, PG_SCHEMA_VERSION + 1):
                    migration = _MIGRATIONS[target - 1]
                    statements = migration.split(";") if isinstance(migration, str) else migration
                    with conn.transaction():
                        for statement in statements:
                            if statement.strip():
                                conn.execute(statement)
                        conn.execute("INSERT INTO wapo_migrations (version, applied_at, node) VALUES (%s, %s, %s)",
                                     (target, time.time(), self.node))
            finally:
                conn.execute(f"SELECT pg_advisory_unlock({_LOCK_MIGRATE})")

    def _check_cluster_key(self) -> None:
        """Record the key's check value on first use; refuse a node whose key gives another."""
        check = self._cluster_key.check_value
        with self._write() as conn:
            conn.execute("INSERT INTO meta (name, value) VALUES ('cluster_key_check', ?) ON CONFLICT (name) DO NOTHING",
                         (check,))
            stored = bytes(conn.execute("SELECT value FROM meta WHERE name = 'cluster_key_check'").fetchone()[0])
        if not hmac.compare_digest(stored, check):
            where = f" ({self._cluster_key.path})" if self._cluster_key.path else ""
            raise ClusterKeyMismatch(
                f"the cluster key{where} is not the key the database {redact_url(self.url)} was set up with (its "
                "key check value differs): refusing to start; give this node the same key file as the other "
                "nodes (--cluster-key / WAPO_CLUSTER_KEY_FILE)")

    @property
    def schema_version(self) -> int:
        return self._read("SELECT COALESCE(MAX(version), 0) FROM wapo_migrations", ()).fetchone()[0]

    def readiness(self) -> tuple[bool, str]:
        """(ready, why): the database answers and its schema is the one this code expects."""
        try:
            version = self.schema_version
        except StoreError as exc:
            return False, str(exc)
        if version != PG_SCHEMA_VERSION:
            return False, f"schema version {version}, expected {PG_SCHEMA_VERSION}"
        return True, f"postgresql, schema {version}"

    @property
    def description(self) -> str:
        return redact_url(self.url)

    # -------------------------------------------------------------- hooks of the mixins

    def _vault_row(self, conn: Any, key: str) -> tuple | None:
        """From the vault cache when it is live (pgcache.py), else from the database."""
        cache = self._vault_cache
        if cache is None:
            return super()._vault_row(conn, key)
        row = cache.get(key)
        if row is not None:
            return row
        generation = cache.generation()
        row = super()._vault_row(conn, key)
        if row is not None:
            row = (row[0], bytes(row[1]), bytes(row[2]))
            cache.put(key, row, generation)
        return row

    @contextmanager
    def _log_write(self) -> Iterator[_Tx]:
        """A log batch is one INSERT (atomic by itself), sent outside a transaction: one round trip.
        It commits without waiting for the server's WAL flush (the connections' default,
        ``synchronous_commit = off``): a node that dies loses nothing acknowledged (the server has
        it); only a crash of the database server itself may lose its last fraction of a second of
        log lines, as SQLite's ``synchronous=NORMAL`` may on a power loss. Measured per batch here:
        2.7 ms with BEGIN/INSERT/COMMIT and the flush, 0.6 ms without the flush. Code, vaults and
        the other writes go through :meth:`_write`, which waits for it."""
        with self._connection() as conn:
            yield _Tx(conn)

    def _insert_logs(self, conn: _Tx, rows: list[tuple], ids: bool = True) -> list[int]:
        """The whole batch in one statement: one round trip whatever its size. Without ``ids`` (the
        gateway's writer) a ``COPY``, which costs the server about a third less than the INSERT
        (docs/design.md, "A shared PostgreSQL store"); with them one INSERT, its rows as one JSON
        parameter (half the client CPU of six array parameters, 80 vs 140 us a batch)."""
        if any("\x00" in row[4] for row in rows):  # PostgreSQL text cannot hold NUL
            rows = [row[:4] + (row[4].replace("\x00", "\ufffd"),) + row[5:] for row in rows]
        if not ids:
            with conn.raw.cursor().copy(_COPY_LOGS) as copy:
                for row in rows:
                    copy.write_row(row)
            return []
        ids = [r[0] for r in conn.execute(
            "INSERT INTO logs (cid, request_id, time, level, message, node) SELECT r->>0, r->>1, "
            "(r->>2)::float8, r->>3, r->>4, r->>5 FROM json_array_elements(?::json) r RETURNING id",
            (json.dumps(rows, ensure_ascii=False),)).fetchall()]
        return sorted(ids)  # identity values are drawn in row order

    def _retention_turn(self, conn: _Tx) -> bool:
        """One node prunes at a time; the others skip (the lock ends with the transaction)."""
        return bool(conn.execute(f"SELECT pg_try_advisory_xact_lock({_LOCK_RETENTION})").fetchone()[0])

    # -------------------------------------------------------------- lifetime

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._vault_cache is not None:
                self._vault_cache.close()
            self._pool.close()

    def __enter__(self) -> "PgStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
