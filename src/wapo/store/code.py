"""Code blobs, stored once under the CIDv0 of their content.

The id is computed here, never taken from the caller: a blob can only ever be
found under the id of its own bytes, so a remote gateway (or a bug) cannot
make us run other code than the CID names.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Any, Callable

from .cid import compute_cid, parse_cid

__all__ = ["CIDMismatch", "CodeMixin"]


class CIDMismatch(ValueError):
    """Content does not hash to the CID it was fetched under."""


class CodeMixin:
    """Store methods for code blobs (mixed into :class:`wapo.store.Store`)."""

    _conn: Callable[[], Any]
    _write: Callable[[], AbstractContextManager[Any]]

    def put_code(self, data: bytes, expected_cid: str | None = None) -> str:
        """Store ``data`` (once) and return its CIDv0.

        With ``expected_cid`` (v0 or v1) the content is checked first and
        :class:`CIDMismatch` raised if it is not what that CID names, so
        fetched code is verified before it is stored.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"code must be bytes, not {type(data).__name__}")
        data = bytes(data)
        cid = compute_cid(data)
        if expected_cid is not None and parse_cid(expected_cid).v0 != cid:
            raise CIDMismatch(f"content hashes to {cid}, not {expected_cid}")
        with self._write() as conn:
            conn.execute("INSERT INTO code (cid, size, data, created) VALUES (?, ?, ?, ?) ON CONFLICT (cid) DO NOTHING",
                         (cid, len(data), data, time.time()))
        return cid

    def get_code(self, cid: str) -> bytes | None:
        """The code stored under ``cid`` (v0 or v1), or None; InvalidCID if malformed."""
        row = self._conn().execute("SELECT data FROM code WHERE cid = ?", (parse_cid(cid).v0,)).fetchone()
        return None if row is None else bytes(row[0])

    def has_code(self, cid: str) -> bool:
        """Whether code for ``cid`` (v0 or v1) is stored, without reading it."""
        row = self._conn().execute("SELECT 1 FROM code WHERE cid = ?", (parse_cid(cid).v0,)).fetchone()
        return row is not None
