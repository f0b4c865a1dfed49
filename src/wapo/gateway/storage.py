"""The gateway's store: the data directory's SQLite, or a PostgreSQL database shared with other
nodes (``database_url`` + ``cluster_key_file``). One function, so ``wapo serve``, each worker and
the tests open it the same way."""

from __future__ import annotations

from ..host.keys import use_cluster_seed
from ..paths import default_data_dir
from ..store import AnyStore, ClusterKey, LogRetention, open_store
from .config import GatewayConfig


def open_gateway_store(config: GatewayConfig) -> AnyStore:
    """Open the configured store (running migrations if needed) and make this process's guests derive
    their secrets from the cluster key when there is a database. Raises StoreError or
    ClusterKeyError (MissingClusterKey, ClusterKeyMismatch) with a message for the operator."""
    retention = LogRetention(max_per_cid=config.log_max_per_cid, max_age=config.log_max_age or None)
    if config.database_url:
        key = ClusterKey.load(config.cluster_key_file) if config.cluster_key_file else None
        store = open_store(config.database_url, cluster_key=key, node=config.node, log_retention=retention,
                           vault_cache=True)
        use_cluster_seed(key.node_seed if key is not None else None)
        return store
    use_cluster_seed(None)
    return open_store(config.data_dir or default_data_dir(), node=config.node, log_retention=retention)
