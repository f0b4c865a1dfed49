"""The cluster key: one secret file shared by every node of a cluster on one database.

Why: vault data is sealed with a key, and ``deriveSecret``/``sign`` derive from a node key. When
several nodes share a database they must all derive the same, so with ``--database`` those keys
come from this file (written by ``wapo cluster init``), never from a key made per node. The
database keeps a *check value* of the key (an HMAC of a fixed label), not the key, so a node
started with another key is refused at start instead of failing one request at a time.

File format: 64 lowercase hex digits (32 random bytes) and a newline, mode 0600, so it travels
as text (a Kubernetes Secret, a compose secret, scp).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ClusterKey", "ClusterKeyError", "ClusterKeyMismatch", "write_cluster_key"]

_LABEL_CHECK = b"wapo-cluster-key-check-v1"
_LABEL_VAULT = b"wapo-cluster-vault-key-v1"
_LABEL_NODE = b"wapo-cluster-node-seed-v1"
_LABEL_INTERNAL = b"wapo-cluster-internal-auth-v1"


class ClusterKeyError(RuntimeError):
    """The cluster key file is missing, unreadable or malformed (the message says how to fix it)."""


class ClusterKeyMismatch(ClusterKeyError):
    """The key is not the one the database was set up with: the node refuses to start."""


@dataclass(frozen=True)
class ClusterKey:
    """32 secret bytes and the keys derived from them (each for one purpose, by HMAC-SHA256)."""

    secret: bytes
    path: Path | None = None

    def __post_init__(self) -> None:
        if len(self.secret) != 32:
            raise ClusterKeyError("a cluster key is 32 bytes")

    def _derive(self, label: bytes) -> bytes:
        return hmac.new(self.secret, label, hashlib.sha256).digest()

    @property
    def check_value(self) -> bytes:
        """What the database stores to recognise this key (it does not reveal the key)."""
        return self._derive(_LABEL_CHECK)

    @property
    def vault_key(self) -> bytes:
        """The AES-256-GCM key of vault data on this cluster."""
        return self._derive(_LABEL_VAULT)

    @property
    def node_seed(self) -> bytes:
        """The ed25519 seed every node uses for ``deriveSecret`` and ``sign`` (instead of ``node_key``)."""
        return self._derive(_LABEL_NODE)

    @property
    def internal_token(self) -> str:
        """A bearer token for routes only other nodes may call."""
        return self._derive(_LABEL_INTERNAL).hex()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "ClusterKey":
        path = Path(path)
        try:
            text = path.read_text(encoding="ascii").strip()
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            raise ClusterKeyError(f"cluster key file {path} does not exist: make one with `wapo cluster init {path}` "
                                  "and copy it to every node") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ClusterKeyError(f"cannot read cluster key file {path}: {exc}") from None
        try:
            secret = bytes.fromhex(text)
        except ValueError:
            secret = b""
        if len(secret) != 32:
            raise ClusterKeyError(f"{path} is not a cluster key (expected 64 hex digits as written by "
                                  "`wapo cluster init`)")
        if mode & 0o077:
            warnings.warn(f"cluster key {path} is readable by other users (mode {mode:o}); chmod 600 it",
                          stacklevel=2)
        return cls(secret, path)


def write_cluster_key(path: str | os.PathLike[str]) -> ClusterKey:
    """Write a new random key to ``path`` (mode 0600); ClusterKeyError if the file exists.

    Why refuse: overwriting the key of a running cluster would make every vault unreadable."""
    path = Path(path)
    secret = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ClusterKeyError(f"{path} already exists: refusing to overwrite a cluster key (every vault of a "
                              "cluster is sealed with it); remove it first if you really mean a new cluster") from None
    except OSError as exc:
        raise ClusterKeyError(f"cannot create {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (secret.hex() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return ClusterKey(secret, path)
