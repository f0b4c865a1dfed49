"""Message digests for WebCrypto's ``crypto.subtle.digest``."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from .registry import ServiceError, service

if TYPE_CHECKING:
    from ..state import GuestState

_DIGESTS = {"SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


@service("digest", inline=True, quick=True)
def digest(st: GuestState, payload: bytes) -> bytes:
    """payload: algorithm name, NUL, data (the names of WebCrypto's digest)."""
    name, sep, data = payload.partition(b"\0")
    algorithm = _DIGESTS.get(name.decode("ascii", "replace").upper())
    if not sep or algorithm is None:
        raise ServiceError("NotSupportedError", f"unsupported digest algorithm {name.decode('utf-8', 'replace')!r}")
    return hashlib.new(algorithm, data).digest()
