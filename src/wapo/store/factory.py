"""``open_store``: the one place that chooses the backend, so callers never name one.

A ``postgresql://`` (or ``postgres://``) URL opens the shared PostgreSQL store, which needs the
cluster key; anything else is a data directory for the embedded SQLite store, which never loads
the PostgreSQL driver.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Union

from .cluster import ClusterKey, ClusterKeyError
from .db import Store
from .logs import LogRetention

__all__ = ["open_store", "AnyStore", "MissingClusterKey"]

if TYPE_CHECKING:
    from .pg import PgStore

AnyStore = Union[Store, "PgStore"]  # pg.py's driver is imported only when a URL is given


class MissingClusterKey(ClusterKeyError):
    """A database URL was given without a cluster key."""


def open_store(target: str | os.PathLike[str], *, cluster_key: ClusterKey | None = None, node: str = "",
               log_retention: LogRetention | None = None, vault_cache: bool = False) -> AnyStore:
    """The store at ``target``: a PostgreSQL URL or a data directory.

    A URL without ``cluster_key`` is refused (MissingClusterKey): keys made per node would seal
    vaults and derive secrets that the other nodes cannot reproduce. ``vault_cache`` (PostgreSQL
    only; long-running processes such as the gateway) keeps vault rows, dropped on every change
    through LISTEN/NOTIFY."""
    from .pg import is_database_url
    if is_database_url(target):
        if cluster_key is None:
            raise MissingClusterKey(
                "a database URL needs a cluster key, shared by every node: make one with `wapo cluster init "
                "KEYFILE`, copy it to each node and pass --cluster-key KEYFILE (or WAPO_CLUSTER_KEY_FILE, or "
                "[cluster] key_file in the config file)")
        from .pg import PgStore
        return PgStore(str(target), cluster_key, node=node, log_retention=log_retention, vault_cache=vault_cache)
    return Store(Path(target), log_retention=log_retention, node=node)
