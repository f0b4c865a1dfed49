"""Randomness, HMAC, hashes and derived secrets for WebCrypto and the ``Wapo`` namespace.

Every byte of randomness comes from the host OS (``os.urandom``); a guest
never seeds anything itself. Payload layouts are binary and documented per
service (a name, NUL, then the data), so the guest side needs no codec.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import os
import struct
from typing import TYPE_CHECKING

from .registry import ServiceError, service

if TYPE_CHECKING:
    from ..state import GuestState

MAX_RANDOM = 65536  # the WebCrypto quota of getRandomValues
MAX_DERIVE_SALT = 256  # as the derive_secret ocall's path

_HMAC_HASHES = {"SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


@service("random", inline=True, quick=True)
def random(st: GuestState, payload: bytes) -> bytes:
    """payload: u32 little-endian count (<= 65536) -> that many bytes from the OS."""
    if len(payload) != 4:
        raise ServiceError("TypeError", "random: expected a u32 byte count")
    (count,) = struct.unpack("<I", payload)
    if count > MAX_RANDOM:
        raise ServiceError("QuotaExceededError", f"at most {MAX_RANDOM} random bytes per call, asked for {count}")
    return os.urandom(count)


def _split_name(payload: bytes, what: str) -> tuple[str, bytes]:
    name, sep, rest = payload.partition(b"\0")
    if not sep:
        raise ServiceError("TypeError", f"{what}: expected an algorithm name, NUL, then data")
    return name.decode("utf-8", "replace"), rest


@service("hmac", inline=True, quick=True)
def hmac_sign(st: GuestState, payload: bytes) -> bytes:
    """payload: hash name (SHA-1/256/384/512), NUL, u32 LE key length, key, message -> the MAC."""
    name, rest = _split_name(payload, "hmac")
    algorithm = _HMAC_HASHES.get(name.upper())
    if algorithm is None:
        raise ServiceError("NotSupportedError", f"unsupported HMAC hash {name!r}")
    if len(rest) < 4:
        raise ServiceError("TypeError", "hmac: missing the key length")
    (key_len,) = struct.unpack_from("<I", rest)
    if 4 + key_len > len(rest):
        raise ServiceError("TypeError", "hmac: the key is shorter than its length says")
    key, message = rest[4:4 + key_len], rest[4 + key_len:]
    return _hmac.new(key, message, algorithm).digest()


def _keccak256(data: bytes) -> bytes:
    from Crypto.Hash import keccak  # pycryptodome: hashlib's sha3_256 is not Ethereum's keccak

    return keccak.new(digest_bits=256, data=data).digest()


def warm_up() -> None:
    """Load what the first keccak256 would (0.1-0.4 s, holding the GIL: a server does it before
    it serves, not in some guest's step; the CLI's commands never pay it)."""
    _keccak256(b"")


_HASHES = {
    "sha256": lambda data: hashlib.sha256(data).digest(),
    # for node:crypto's createHash/createHmac in bundles (wapo's shim), which must be synchronous
    "sha1": lambda data: hashlib.sha1(data).digest(),
    "sha224": lambda data: hashlib.sha224(data).digest(),
    "sha384": lambda data: hashlib.sha384(data).digest(),
    "sha512": lambda data: hashlib.sha512(data).digest(),
    "md5": lambda data: hashlib.md5(data).digest(),
    "keccak256": _keccak256,
    "blake2b128": lambda data: hashlib.blake2b(data, digest_size=16).digest(),
    "blake2b256": lambda data: hashlib.blake2b(data, digest_size=32).digest(),
    "blake2b512": lambda data: hashlib.blake2b(data, digest_size=64).digest(),
}


@service("hash", inline=True, quick=True)
def hash_(st: GuestState, payload: bytes) -> bytes:
    """payload: algorithm (sha256 keccak256 blake2b128 blake2b256 blake2b512 sha1 sha224 sha384 sha512
    md5), NUL, data -> digest."""
    name, data = _split_name(payload, "hash")
    fn = _HASHES.get(name.lower().replace("-", "").replace("_", ""))
    if fn is None:
        raise ServiceError("TypeError", f"unsupported hash algorithm {name!r}; use one of {', '.join(_HASHES)}")
    return fn(data)


@service("deriveSecret", inline=True, quick=True)
def derive_secret(st: GuestState, payload: bytes) -> bytes:
    """payload: salt (<= 256 bytes) -> 64 bytes from the node key, the app address and the salt
    (the same secret as the derive_secret ocall with that path)."""
    if len(payload) > MAX_DERIVE_SALT:
        raise ServiceError("RangeError", f"the salt is at most {MAX_DERIVE_SALT} bytes, got {len(payload)}")
    return st.node_key().derive_secret(st.app_address, payload)
