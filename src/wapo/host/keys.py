"""The node ("worker") key: an ed25519 key kept in the data directory.

There is no TEE here, so the key is only as safe as the data directory; it
signs for guests (``sign``) and seeds their derived secrets (``derive_secret``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..paths import default_data_dir

KEY_FILE = "node_key"


class NodeKey:
    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("a node key seed is 32 bytes")
        self._seed = seed
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def load_or_create(cls, data_dir: Path) -> "NodeKey":
        path = Path(data_dir) / KEY_FILE
        if path.exists():
            seed = path.read_bytes()
            if len(seed) != 32:
                raise ValueError(f"{path} is corrupt ({len(seed)} bytes, expected 32); move it away to make a new key")
            return cls(seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        seed = os.urandom(32)
        # a private temp file hard-linked into place: processes starting at once (gateway workers)
        # agree on one key, and none ever reads a partial file
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{os.urandom(4).hex()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(seed)
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, path)
        except FileExistsError:
            return cls.load_or_create(data_dir)  # another process won the race: use its key
        finally:
            tmp.unlink(missing_ok=True)
        return cls(seed)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def derive_secret(self, app_address: bytes, path: bytes) -> bytes:
        """64 bytes that depend on this node, the app and the path, and on nothing a guest controls alone."""
        return hmac.new(self._seed, b"wapo-derive-secret\0" + app_address + path, hashlib.sha512).digest()


@lru_cache(maxsize=8)
def node_key(data_dir: Path | None = None) -> NodeKey:
    return NodeKey.load_or_create(data_dir or default_data_dir())
