"""Long-running apps in the shared PostgreSQL store, and which node runs each one.

The records have the interface of :class:`~wapo.store.apps.AppRecords` (the data directory's
``apps.json``), so the gateway's supervisor runs either. Ownership is a lease per app in
``app_leases``: a node renews its leases and takes free or expired ones up to its share in one
transaction (``claim``; live nodes are those with a recent row in ``cluster_nodes``); the row lock
of ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` makes two nodes claiming at once agree on one
owner. Expiry is judged by the database's clock, so the nodes'
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
        """Renew this node's leases, then take apps without a live owner up to this node's share
        (the deployed apps over the live nodes, rounded up); the ids it owns now.

        Why a share: apps deployed while several nodes are up spread over them. Nothing is taken
        from a live owner to balance (that would restart the app), so apps that a lone first node
        took stay there until it dies or they are deployed again."""
        with self.store._write() as conn:
            conn.execute(f"INSERT INTO cluster_nodes (instance, node, url, seen) VALUES (?, ?, ?, {_NOW}) "
                         f"ON CONFLICT (instance) DO UPDATE SET seen = {_NOW}", (instance, node, url))
            conn.execute(f"DELETE FROM cluster_nodes WHERE seen < {_NOW} - 3600")
            conn.execute("DELETE FROM app_leases WHERE app_id NOT IN (SELECT id FROM apps)")
            owned = {r[0] for r in conn.execute(
                f"UPDATE app_leases SET expires = {_NOW} + ?, node = ?, url = ? WHERE instance = ? RETURNING app_id",
                (ttl, node, url, instance)).fetchall()}
            live, total = conn.execute(
                f"SELECT (SELECT COUNT(*) FROM cluster_nodes WHERE seen > {_NOW} - ?), (SELECT COUNT(*) FROM apps)",
                (ttl,)).fetchone()
            share = -(-total // max(1, live))
            if len(owned) < share:
                owned |= {r[0] for r in conn.execute(
                    f"INSERT INTO app_leases (app_id, node, instance, url, expires) SELECT id, ?, ?, ?, {_NOW} + ? "
                    "FROM apps WHERE NOT EXISTS (SELECT 1 FROM app_leases l WHERE l.app_id = apps.id AND "
                    f"l.expires >= {_NOW}) ORDER BY id LIMIT ? "
                    "ON CONFLICT (app_id) DO UPDATE SET node = EXCLUDED.node, instance = EXCLUDED.instance, "
                    "url = EXCLUDED.url, expires = EXCLUDED.expires "
                    f"WHERE app_leases.instance = EXCLUDED.instance OR app_leases.expires < {_NOW} RETURNING app_id",
                    (node, instance, url, ttl, share - len(owned))).fetchall()}
        return owned

    def leases(self) -> dict[str, Lease]:
        """Every app's owner (apps without a live lease are absent)."""
        rows = self.store._conn().execute(
            f"SELECT app_id, node, url, expires - {_NOW} FROM app_leases WHERE expires > {_NOW}").fetchall()
        return {r[0]: Lease(r[1], r[2], r[3]) for r in rows}

    def release(self, instance: str) -> None:
        """Give up this node's leases (a clean shutdown: the others take over at their next claim)."""
        with self.store._write() as conn:
            conn.execute("DELETE FROM app_leases WHERE instance = ?", (instance,))
            conn.execute("DELETE FROM cluster_nodes WHERE instance = ?", (instance,))

    def nodes(self) -> list[tuple[str, str, float]]:
        """``(node, url, seconds since its last claim)`` of the nodes seen within the last hour."""
        return [tuple(r) for r in self.store._conn().execute(
            f"SELECT node, url, {_NOW} - seen FROM cluster_nodes ORDER BY node").fetchall()]
