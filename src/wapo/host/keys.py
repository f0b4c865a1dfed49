"""The node ("worker") key: an ed25519 key kept in the data directory.

There is no TEE here, so the key is only as safe as the data directory; it
seeds what guests get from it, always per app (docs/design.md, "Hardening (issue 13)"): their
derived secrets (``derive_secret``) and their signing key (``sign`` / ``worker_pubkey``), an
ed25519 key derived from the node key and the app address, so no app can sign for another one or
for the node itself.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..paths import default_data_dir

KEY_FILE = "node_key"
MAX_CACHED_APP_KEYS = 256


class NodeKey:
    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("a node key seed is 32 bytes")
        self._seed = seed
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._app_keys: dict[bytes, NodeKey] = {}

    @classmethod
    def load_or_create(cls, data_dir: Path) -> "NodeKey":
        path = Path(data_dir) / KEY_FILE
        if not path.exists():
            _create_key_file(path)
        seed = path.read_bytes()
        if len(seed) != 32:
            raise ValueError(f"{path} is corrupt ({len(seed)} bytes, expected 32); move it away to make a new key")
        return cls(seed)

    def sign(self, message: bytes) -> bytes:
        """Sign with the node's own key (never on behalf of a guest: guests get ``app_key``)."""
        return self._key.sign(message)

    def app_key(self, app_address: bytes) -> "NodeKey":
        """The signing key of one app on this node: an ed25519 key whose seed is derived from the
        node key and the app address (what the ``sign`` ocall signs with and ``worker_pubkey``
        returns). Stable per (node, app); two apps never share one."""
        key = self._app_keys.get(app_address)
        if key is None:
            seed = hmac.new(self._seed, b"wapo-app-signing-key\0" + app_address, hashlib.sha512).digest()[:32]
            key = NodeKey(seed)
            if len(self._app_keys) >= MAX_CACHED_APP_KEYS:
                self._app_keys.pop(next(iter(self._app_keys)))
            self._app_keys[app_address] = key
        return key

    def derive_secret(self, app_address: bytes, path: bytes) -> bytes:
        """64 bytes that depend on this node, the app and the path, and on nothing a guest controls alone."""
        return hmac.new(self._seed, b"wapo-derive-secret\0" + app_address + path, hashlib.sha512).digest()


def _create_key_file(path: Path) -> None:
    """Write 32 random bytes to ``path``, mode 0600 (whatever the umask), in a directory made 0700.

    Atomic (a temp file hard-linked into place): processes starting at once agree on one key.
    """
    from ..store.db import make_private_dir

    make_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, os.urandom(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process made it first: use its key
    finally:
        os.unlink(tmp)


_cluster_node_key: NodeKey | None = None


def use_cluster_seed(seed: bytes | None) -> None:
    """Make every guest of this process derive from ``seed`` (the cluster key's node seed) instead
    of the data directory's ``node_key``; None goes back to the file.

    Why: nodes sharing a database must give an app the same ``deriveSecret`` and ``sign`` key
    whichever node runs it (docs/cluster.md)."""
    global _cluster_node_key
    _cluster_node_key = None if seed is None else NodeKey(seed)


def node_key(data_dir: Path | None = None) -> NodeKey:
    if _cluster_node_key is not None:
        return _cluster_node_key
    return _file_node_key(data_dir)


@lru_cache(maxsize=8)
def _file_node_key(data_dir: Path | None = None) -> NodeKey:
    return NodeKey.load_or_create(data_dir or default_data_dir())
