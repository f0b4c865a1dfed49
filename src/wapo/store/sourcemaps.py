"""Source maps of published bundles, kept in the store like code: the map is a blob under its own
CID, and the bundle's last line names it (``//# sourceMappingURL=ipfs://<map CID>``, the standard
comment). So a map travels with its code through every store (the data directory's SQLite, a
cluster's PostgreSQL) and IPFS, needs no table of its own, and the bundle's CID covers it."""

from __future__ import annotations

import re
from typing import Protocol

from .cid import InvalidCID, parse_cid

_REFERENCE = re.compile(rb"\n//# sourceMappingURL=ipfs://([A-Za-z0-9]+)\s*$")


class _CodeStore(Protocol):
    def put_code(self, data: bytes, expected_cid: str | None = None) -> str: ...
    def get_code(self, cid: str) -> bytes | None: ...


def attach_source_map(store: _CodeStore, code: bytes, source_map: bytes) -> bytes:
    """Store ``source_map`` and return ``code`` ending with the comment that names it."""
    map_cid = store.put_code(source_map)
    return code.rstrip(b"\n") + f"\n//# sourceMappingURL=ipfs://{map_cid}\n".encode()


def map_reference(code: bytes | str) -> str | None:
    """The map CID a bundle's last line names, or None."""
    raw = code.encode("utf-8") if isinstance(code, str) else code
    m = _REFERENCE.search(raw[-200:])
    if m is None:
        return None
    try:
        return parse_cid(m.group(1).decode()).v0
    except InvalidCID:
        return None


def load_source_map(store: _CodeStore, code: bytes | str) -> bytes | None:
    """The map a bundle names, from ``store`` (None without one, or if the store lacks it)."""
    ref = map_reference(code)
    return None if ref is None else store.get_code(ref)
