"""Pre-initialized guests: whole-module snapshots (``capture``, written with ``wasm``) and
per-agent memory images on top of one (``image``)."""

from .capture import GLOBAL_EXPORT_PREFIX, cached_snapshot, capture, data_ranges, rewrite, snapshot
from .wasm import PAGE, SEC_DATACOUNT, SEC_START, Module, SnapshotError, parse

__all__ = ["GLOBAL_EXPORT_PREFIX", "PAGE", "SEC_DATACOUNT", "SEC_START", "Module", "SnapshotError", "cached_snapshot",
           "capture", "data_ranges", "parse", "rewrite", "snapshot"]
