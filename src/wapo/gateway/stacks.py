"""Errors of agents published with a source map (``wapo publish`` of a TS file or project) shown
with their original positions: ``at f (Qm...js:40:11 -> src/index.ts:7:9)``, in the run's logs,
the ``--debug`` answer and the terminal line. The map is found through the bundle's last line
(store/sourcemaps.py) and read from the store off the event loop, once per CID."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from ..agent.sourcemap import SourceMap, SourceMapError, map_stack
from ..store.sourcemaps import load_source_map, map_reference

MAX_MAPS = 64


class StackMapper:
    """The decoded maps of recently failing CIDs (a CID's map never changes)."""

    def __init__(self, store) -> None:
        self._store = store
        self._cache: OrderedDict[str, SourceMap | None] = OrderedDict()

    async def _map(self, cid: str, code: str) -> SourceMap | None:
        if cid in self._cache:
            self._cache.move_to_end(cid)
            return self._cache[cid]
        decoded = None
        if map_reference(code) is not None:
            raw = await asyncio.to_thread(load_source_map, self._store, code)
            if raw is not None:
                try:
                    decoded = SourceMap(raw)
                except SourceMapError:
                    decoded = None
        self._cache[cid] = decoded
        if len(self._cache) > MAX_MAPS:
            self._cache.popitem(last=False)
        return decoded

    async def map(self, cid: str, code: str, text: str) -> str:
        """``text`` with the positions of ``<cid>.js`` followed by their original ones (if mapped)."""
        source_map = await self._map(cid, code)
        return text if source_map is None else map_stack(text, source_map, f"{cid}.js")
