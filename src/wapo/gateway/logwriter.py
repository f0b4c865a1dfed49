"""Run logs written with group commit: each request waits for its logs to be durable, but the
requests of the same moment share one SQLite transaction (one commit instead of one each)."""

from __future__ import annotations

import asyncio
import logging

from ..store import Store

log = logging.getLogger("wapo.gateway")


class LogWriter:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[tuple[str, str, list]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._flushing: asyncio.Task | None = None

    async def write(self, cid: str, request_id: str, entries: list) -> None:
        """Return once the records are committed (or the commit failed: logged, not raised)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((cid, request_id, entries))
        self._waiters.append(done)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        await asyncio.shield(done)

    async def _flush(self) -> None:
        while self._pending:
            batch, waiters = self._pending, self._waiters
            self._pending, self._waiters = [], []
            try:
                await asyncio.to_thread(self._store.append_log_batch, batch)
            except Exception:
                log.exception("could not store the logs of %d run(s)", len(batch))
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def close(self) -> None:
        if self._flushing is not None:
            await self._flushing
