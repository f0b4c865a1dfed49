"""The store layer: code by IPFS CID, vaults and run logs in one data directory.

It knows nothing of wasm, JavaScript or HTTP (see docs/design.md, "Layers").
"""

from .cid import CID, CidBuilder, InvalidCID, cidv1, compute_cid, parse_cid, verify
from .code import CIDMismatch
from .cluster import ClusterKey, ClusterKeyError, ClusterKeyMismatch, write_cluster_key
from .db import Store, StoreError, StoreUnavailable
from .factory import AnyStore, MissingClusterKey, open_store
from .logs import LEVELS, LogRecord, LogRetention, format_text
from .vaults import VaultError, VaultForbidden, VaultKeyError, VaultNotFound, VaultUnauthorized, deep_merge

__all__ = [
    "Store", "StoreError", "StoreUnavailable", "AnyStore", "open_store",
    "ClusterKey", "ClusterKeyError", "ClusterKeyMismatch", "MissingClusterKey", "write_cluster_key",
    "CID", "CidBuilder", "InvalidCID", "CIDMismatch", "compute_cid", "parse_cid", "cidv1", "verify",
    "VaultError", "VaultNotFound", "VaultForbidden", "VaultUnauthorized", "VaultKeyError", "deep_merge",
    "LogRecord", "LogRetention", "LEVELS", "format_text",
]
