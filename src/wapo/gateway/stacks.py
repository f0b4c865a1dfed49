"""Errors of agents published with a source map (``wapo publish`` of a TS file or project) shown
with their original positions: ``at f (Qm...js:40:11 -> src/index.ts:7:9)``, in the run's logs,
the ``--debug`` answer and the terminal line."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from ..agent.sourcemap import SourceMap, SourceMapError, map_stack
from ..store.sourcemaps import SourceMaps

MAX_MAPS = 64


class StackMapper:
    """The decoded maps of recently failing CIDs (a CID's map never changes)."""

    def __init__(self, data_dir: Path) -> None:
        self._maps = SourceMaps(data_dir)
        self._cache: OrderedDict[str, SourceMap | None] = OrderedDict()

    def _map(self, cid: str) -> SourceMap | None:
        if cid in self._cache:
            self._cache.move_to_end(cid)
            return self._cache[cid]
        raw = self._maps.get(cid)
        decoded = None
        if raw is not None:
            try:
                decoded = SourceMap(raw)
            except SourceMapError:
                decoded = None
        self._cache[cid] = decoded
        if len(self._cache) > MAX_MAPS:
            self._cache.popitem(last=False)
        return decoded

    def map(self, cid: str, text: str) -> str:
        """``text`` with the positions of ``<cid>.js`` followed by their original ones (if mapped)."""
        source_map = self._map(cid)
        return text if source_map is None else map_stack(text, source_map, f"{cid}.js")
