"""Source maps of published bundles, kept beside the code and keyed by the bundle's CID.

Files (``<data dir>/sourcemaps/<CIDv0>.map``), not a table: a map is only read when an agent
fails, is written once by ``wapo publish``, and is as immutable as the code it belongs to."""

from __future__ import annotations

import os
from pathlib import Path

from .cid import parse_cid

FOLDER = "sourcemaps"


class SourceMaps:
    """The source maps of one data directory."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.folder = Path(data_dir) / FOLDER

    def _path(self, cid: str) -> Path:
        return self.folder / f"{parse_cid(cid).v0}.map"

    def put(self, cid: str, data: bytes) -> Path:
        """Store the map of ``cid`` (atomically: a reader sees the old map or the new one)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(cid)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path

    def get(self, cid: str) -> bytes | None:
        """The map of ``cid``, or None if it was published without one."""
        try:
            return self._path(cid).read_bytes()
        except (OSError, ValueError):
            return None
