"""Long-running apps in the shared PostgreSQL store, and which node runs each one.

The records have the interface of :class:`~wapo.store.apps.AppRecords` (the data directory's
``apps.json``), so the gateway's supervisor runs either. Ownership is a lease per app in
``app_leases``: a node renews its leases and takes the free or expired ones in one statement
(``claim``); the row lock of ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` makes two nodes
claiming at once agree on one owner. Expiry is judged by the database's clock, so the nodes'
clocks do not matter. A node that cannot renew stops its apps before its leases can expire
(the gateway's ``apps/cluster.py``), so an app never runs on two nodes for long.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from .apps import AppRecord, new_record
from .pg import PgStore

__all__ = ["PgAppRecords", "Lease"]

_NOW = "EXTRACT(EPOCH FROM clock_timestamp())"
_FIELDS = "id, kind, file, sha256, on_demand, listen, stopped, deployed_at"


class Lease(NamedTuple):
    node: str  # the owner's name (X-Wapo-App-Node)
    url: str  # where the other nodes reach it
    expires_in: float  # seconds, by the database's clock


class PgAppRecords:
    def __init__(self, store: PgStore) -> None:
        self.store = store
        self.path = f"{store.description} (table apps)"  # for messages, as AppRecords.path

    # --- the records, as AppRecords ----------------------------------------------------------
    def load(self) -> dict[str, AppRecord]:
        rows = self.store._conn().execute(f"SELECT {_FIELDS} FROM apps ORDER BY id").fetchall()
        return {row[0]: AppRecord(*row) for row in rows}

    def mtime(self) -> int:
        """A number that changes whenever a record does (a sequence, bumped by every write)."""
        return self.store._conn().execute("SELECT last_value + (CASE WHEN is_called THEN 1 ELSE 0 END) "
                                          "FROM apps_version").fetchone()[0]

    def deploy(self, source: Path, app_id: str | None = None, *, on_demand: bool = False,
               listen: int | None = None) -> AppRecord:
        record, code = new_record(source, app_id, on_demand=on_demand, listen=listen)
        with self.store._write() as conn:
            conn.execute(
                f"INSERT INTO apps ({_FIELDS}, code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "kind = EXCLUDED.kind, file = EXCLUDED.file, sha256 = EXCLUDED.sha256, on_demand = EXCLUDED.on_demand,"
                " listen = EXCLUDED.listen, stopped = EXCLUDED.stopped, deployed_at = EXCLUDED.deployed_at,"
                " code = EXCLUDED.code",
                (record.id, record.kind, record.file, record.sha256, record.on_demand, record.listen, record.stopped,
                 record.deployed_at, code))
            conn.execute("SELECT nextval('apps_version')")
        return record

    def remove(self, app_id: str) -> bool:
        with self.store._write() as conn:
            removed = conn.execute("DELETE FROM apps WHERE id = ?", (app_id,)).rowcount
            conn.execute("DELETE FROM app_leases WHERE app_id = ?", (app_id,))
            conn.execute("SELECT nextval('apps_version')")
        return removed == 1

    def set_stopped(self, app_id: str, stopped: bool) -> None:
        with self.store._write() as conn:
            if conn.execute("UPDATE apps SET stopped = ? WHERE id = ? AND stopped <> ?",
                            (stopped, app_id, stopped)).rowcount:
                conn.execute("SELECT nextval('apps_version')")

    def code(self, record: AppRecord) -> bytes:
        row = self.store._conn().execute("SELECT code FROM apps WHERE id = ?", (record.id,)).fetchone()
        if row is None:
            raise FileNotFoundError(f"app {record.id} is no longer deployed")
        return bytes(row[0])

    # --- ownership ---------------------------------------------------------------------------
    def claim(self, node: str, instance: str, url: str, ttl: float) -> set[str]:
        """Renew this node's leases and take every app without a live owner; the ids it owns now."""
        with self.store._write() as conn:
            conn.execute("DELETE FROM app_leases WHERE app_id NOT IN (SELECT id FROM apps)")
            rows = conn.execute(
                f"INSERT INTO app_leases (app_id, node, instance, url, expires) SELECT id, ?, ?, ?, {_NOW} + ? "
                "FROM apps ON CONFLICT (app_id) DO UPDATE SET node = EXCLUDED.node, instance = EXCLUDED.instance, "
                "url = EXCLUDED.url, expires = EXCLUDED.expires "
                f"WHERE app_leases.instance = EXCLUDED.instance OR app_leases.expires < {_NOW} RETURNING app_id",
                (node, instance, url, ttl)).fetchall()
        return {r[0] for r in rows}

    def leases(self) -> dict[str, Lease]:
        """Every app's owner (apps without a live lease are absent)."""
        rows = self.store._conn().execute(
            f"SELECT app_id, node, url, expires - {_NOW} FROM app_leases WHERE expires > {_NOW}").fetchall()
        return {r[0]: Lease(r[1], r[2], r[3]) for r in rows}

    def release(self, instance: str) -> None:
        """Give up this node's leases (a clean shutdown: the others take over at their next claim)."""
        with self.store._write() as conn:
            conn.execute("DELETE FROM app_leases WHERE instance = ?", (instance,))
