"""Vaults: secrets handed to an agent when a request names the vault's key.

A vault belongs to the CID it was created for: its key is public (it travels
in URLs as ``?key=``), so a key that worked for any CID would hand the secrets
to whatever code the caller names. The token is the read credential for the
owner; only its sha256 is stored.

Data is encrypted at rest with AES-256-GCM under a 32-byte key kept in the
data directory (``vault.key``, mode 0600). Each ciphertext has its own random
96-bit nonce and associated data naming the vault key, its CID and the field,
so a ciphertext copied to another row or field fails to decrypt.

Inheritance: ``inherit`` names a parent vault (same CID) whose data is deep
merged under the new data. Creating a child needs the parent's token
(``inherit_token``): the parent's key is public, and a child's merged data
reaches the agent, so without this proof anyone could create a child of a
vault they do not own, add fields of their own, and run the agent with the
owner's secrets under their control. Two ciphertexts are kept per vault: the
vault's own data (what :meth:`get_vault` returns) and the merged data (what
the agent receives, one decryption per run). ``get_vault`` deliberately does
not return the merged data (a child token is not a read credential for the
parent's secrets).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import time
import warnings
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .cid import parse_cid

__all__ = [
    "VaultError", "VaultNotFound", "VaultForbidden", "VaultUnauthorized", "VaultKeyError", "VaultMixin",
    "deep_merge", "load_vault_key", "MAX_VAULT_BYTES",
]

MAX_VAULT_BYTES = 1 << 20
_KEY_RE = re.compile(r"[0-9a-f]{16}\Z")
_NONCE = 12


class VaultError(Exception):
    """Base of vault errors."""


class VaultNotFound(VaultError, LookupError):
    """No vault with this key (or the token does not match)."""


class VaultForbidden(VaultError, PermissionError):
    """The vault exists but belongs to another CID."""


class VaultUnauthorized(VaultError, PermissionError):
    """Inheriting a vault needs its token, which was missing or wrong."""


class VaultKeyError(RuntimeError):
    """The encryption key file is unusable; the store refuses to start."""


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged on top of ``base``: nested objects merge, anything else is replaced."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_vault_key(data_dir: Path) -> bytes:
    """Read ``vault.key``, creating it (32 random bytes, mode 0600) if absent.

    Creation is atomic (write a temp file, then hard-link it into place), so
    two processes starting at once agree on one key and never see a partial
    file. An existing file of the wrong size is refused: silently replacing
    it would make every stored vault unreadable.
    """
    path = data_dir / "vault.key"
    try:
        return _load_or_create(data_dir, path)
    except OSError as exc:
        raise VaultKeyError(f"cannot read or create the vault key {path}: {exc}") from exc


def _load_or_create(data_dir: Path, path: Path) -> bytes:
    if not path.exists():
        tmp = data_dir / f".vault.key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)  # exactly, whatever the umask
            os.write(fd, secrets.token_bytes(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race; use its key
        finally:
            os.unlink(tmp)
        try:
            dfd = os.open(data_dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
    st = path.stat()
    if st.st_size != 32:
        raise VaultKeyError(f"{path} must hold exactly 32 bytes, it holds {st.st_size}: refusing to start "
                            "(restore the original key file; deleting it makes existing vaults unreadable)")
    if stat.S_IMODE(st.st_mode) & 0o077:
        warnings.warn(f"{path} is readable by other users (mode {stat.S_IMODE(st.st_mode):o}); chmod 600 it",
                      stacklevel=3)
    return path.read_bytes()


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _aad(key: str, cid: str, field: str) -> bytes:
    return f"wapo-vault-v1\0{field}\0{key}\0{cid}".encode()


class VaultMixin:
    """Store methods for vaults (mixed into :class:`wapo.store.Store`)."""

    _conn: Callable[[], Any]
    _write: Callable[[], AbstractContextManager[Any]]
    _aead: AESGCM

    def _seal(self, obj: Any, key: str, cid: str, field: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        plain = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
        return nonce + self._aead.encrypt(nonce, plain, _aad(key, cid, field))

    def _open(self, blob: bytes, key: str, cid: str, field: str) -> Any:
        blob = bytes(blob)
        plain = self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], _aad(key, cid, field))
        return json.loads(plain)

    def create_vault(self, cid: str, data: dict[str, Any], inherit: str | None = None,
                     inherit_token: str | None = None) -> tuple[str, str]:
        """Create a vault for ``cid`` and return ``(key, token)`` (16 lowercase hex each).

        ``inherit`` names a parent vault of the same CID whose data is deep
        merged under ``data``; ``inherit_token`` is the parent's token, the
        proof that the caller owns it: VaultNotFound if the parent does not
        exist, VaultUnauthorized if the token is missing or wrong,
        VaultForbidden if it belongs to another CID. ValueError if ``data`` is
        not a JSON object or is too large; InvalidCID for a malformed CID.
        """
        cid = parse_cid(cid).v0
        if not isinstance(data, dict):
            raise ValueError("vault data must be a JSON object")
        try:
            encoded = json.dumps(data, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"vault data must be JSON-serializable: {exc}") from None
        if len(encoded) > MAX_VAULT_BYTES:
            raise ValueError(f"vault data is larger than {MAX_VAULT_BYTES} bytes")
        data = json.loads(encoded)  # a private copy with JSON types only
        if inherit is not None and not isinstance(inherit, str):
            raise ValueError("inherit must be a vault key string")
        if inherit_token is not None and not isinstance(inherit_token, str):
            raise ValueError("inherit_token must be a vault token string")
        while True:
            key, token = secrets.token_hex(8), secrets.token_hex(8)
            with self._write() as conn:
                merged = data
                if inherit is not None:
                    parent_cid, parent_merged = self._merged(conn, inherit, token=inherit_token)
                    if parent_cid != cid:
                        raise VaultForbidden(f"vault {inherit} belongs to another CID")
                    merged = deep_merge(parent_merged, data)
                inserted = conn.execute(
                    "INSERT INTO vaults (key, cid, token_hash, inherit, data, merged, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                    (key, cid, _token_hash(token), inherit, self._seal(data, key, cid, "data"),
                     self._seal(merged, key, cid, "merged"), time.time())).rowcount
            if inserted != 1:
                continue  # 64-bit key collision: draw again
            return key, token

    _NO_TOKEN = object()

    def _vault_row(self, conn: Any, key: str) -> tuple | None:
        """``(cid, merged, token_hash)`` of vault ``key`` (a shared backend may answer from a cache)."""
        return conn.execute("SELECT cid, merged, token_hash FROM vaults WHERE key = ?", (key,)).fetchone()

    def _merged(self, conn: Any, key: str, *, token: Any = _NO_TOKEN) -> tuple[str, dict[str, Any]]:
        """The CID and merged data of vault ``key``; with ``token=``, only if it is the vault's token."""
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise VaultNotFound("no such vault")
        row = self._vault_row(conn, key)
        if row is None:
            raise VaultNotFound("no such vault")
        if token is not self._NO_TOKEN and (
                not isinstance(token, str) or not hmac.compare_digest(bytes(row[2]), _token_hash(token))):
            raise VaultUnauthorized(f"inheriting vault {key} needs its token")
        return row[0], self._open(row[1], key, row[0], "merged")

    def get_vault(self, key: str, token: str) -> dict[str, Any]:
        """``{"data", "inherit"}`` of a vault: its own data, not the inherited part.

        A wrong token is reported exactly like an unknown key (VaultNotFound),
        so the answer does not tell which keys exist.
        """
        if not isinstance(key, str) or not _KEY_RE.match(key) or not isinstance(token, str):
            raise VaultNotFound("no such vault")
        row = self._conn().execute("SELECT cid, token_hash, inherit, data FROM vaults WHERE key = ?",
                                   (key,)).fetchone()
        if row is None or not hmac.compare_digest(bytes(row[1]), _token_hash(token)):
            raise VaultNotFound("no such vault")
        return {"data": self._open(row[3], key, row[0], "data"), "inherit": row[2]}

    def vault_index(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The vaults' keys, CIDs, parents and creation times, newest first: never their data (the
        operator's dashboard lists them)."""
        rows = self._conn().execute("SELECT key, cid, inherit, created FROM vaults ORDER BY created DESC LIMIT ?",
                                    (limit,)).fetchall()
        return [{"key": k, "cid": c, "inherit": i, "created": t} for k, c, i, t in rows]

    def secrets_for(self, cid: str, key: str) -> dict[str, Any]:
        """The secrets an agent run for ``cid`` receives with ``?key=<key>`` (merged data).

        VaultNotFound for an unknown key, VaultForbidden when the vault
        belongs to another CID.
        """
        cid = parse_cid(cid).v0
        vault_cid, merged = self._merged(self._conn(), key)
        if vault_cid != cid:
            raise VaultForbidden(f"vault {key} does not belong to {cid}")
        return merged
