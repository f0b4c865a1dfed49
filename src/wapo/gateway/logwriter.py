"""Run logs written with group commit: each request waits for its logs to be durable, but the
requests of the same moment share one transaction (one commit instead of one each). Retention
(``prune_every`` records) runs after the acknowledgement, in its own task: no request waits for
a prune, which reads a full CID's whole quota (milliseconds on PostgreSQL).

When the store is unavailable (a shared database that went away), requests stop waiting: their
logs are kept in memory, up to ``max_buffered`` lines (the oldest runs are dropped beyond, and
counted), and written by a retry loop as soon as the database answers again."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from ..store import AnyStore, StoreUnavailable

log = logging.getLogger("wapo.gateway")

MAX_BUFFERED_LINES = 100_000
RETRY_EVERY = 1.0


class LogWriter:
    def __init__(self, store: AnyStore, *, max_buffered: int = MAX_BUFFERED_LINES,
                 retry_every: float = RETRY_EVERY) -> None:
        self._store = store
        self._pending: list[tuple[str, str, list]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._flushing: asyncio.Task | None = None
        self._backlog: deque[tuple[str, str, list]] = deque()  # runs waiting for the database to return
        self._backlog_lines = 0
        self._max_buffered = max_buffered
        self._retry_every = retry_every
        self._retrying: asyncio.Task | None = None
        self._pruning: asyncio.Task | None = None
        self.dropped_lines = 0  # lines lost because the backlog was full

    @property
    def buffered_lines(self) -> int:
        """Lines held in memory until the database is back."""
        return self._backlog_lines

    async def write(self, cid: str, request_id: str, entries: list) -> None:
        """Return once the records are committed (or the commit failed: logged, not raised); while
        the database is unavailable, at once (the records wait in the backlog)."""
        if self._retrying is not None and not self._retrying.done():
            self._keep([(cid, request_id, entries)])
            return
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
                await asyncio.to_thread(self._store.append_log_batch, batch, ids=False, prune=False)
            except StoreUnavailable as exc:
                log.warning("the database is unavailable; keeping run logs in memory until it returns: %s", exc)
                self._keep(batch)
                self._start_retrying()
            except Exception:
                log.exception("could not store the logs of %d run(s)", len(batch))
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._prune_soon()

    def _prune_soon(self) -> None:
        """Apply the retention the writes made due, in the background (one prune at a time; what
        becomes due meanwhile waits for the next batch)."""
        if self._store.retention_due and (self._pruning is None or self._pruning.done()):
            self._pruning = asyncio.create_task(self._prune())

    async def _prune(self) -> None:
        try:
            await asyncio.to_thread(self._store.prune_due)
        except StoreUnavailable as exc:
            log.debug("log retention skipped, the database is unavailable: %s", exc)
        except Exception:
            log.exception("could not apply the log retention")

    def _keep(self, runs: list[tuple[str, str, list]]) -> None:
        for run in runs:
            self._backlog.append(run)
            self._backlog_lines += len(run[2])
        while self._backlog_lines > self._max_buffered and self._backlog:
            _, _, entries = self._backlog.popleft()
            self._backlog_lines -= len(entries)
            if not self.dropped_lines:
                log.error("the run log backlog is full (%d lines): dropping the oldest runs' logs",
                          self._max_buffered)
            self.dropped_lines += len(entries)

    def _start_retrying(self) -> None:
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.create_task(self._retry())

    async def _retry(self) -> None:
        """Write the backlog, oldest first, once the database answers; until then keep trying."""
        while self._backlog:
            await asyncio.sleep(self._retry_every)
            if await self._write_backlog():
                log.warning("the database is back: run logs written")

    async def _write_backlog(self) -> bool:
        batch = list(self._backlog)
        try:
            await asyncio.to_thread(self._store.append_log_batch, batch, ids=False, prune=False)
        except StoreUnavailable:
            return False
        except Exception:
            log.exception("could not store the logs of %d buffered run(s)", len(batch))
        written = {id(run) for run in batch}
        while self._backlog and id(self._backlog[0]) in written:  # (the oldest may have been dropped meanwhile)
            _, _, entries = self._backlog.popleft()
            self._backlog_lines -= len(entries)
        self._prune_soon()
        return True

    async def close(self) -> None:
        if self._flushing is not None:
            await self._flushing
        if self._pruning is not None:
            await self._pruning
        if self._store.retention_due:  # (made due while the last prune ran)
            await self._prune()
        if self._retrying is not None and not self._retrying.done():
            self._retrying.cancel()
            if self._backlog and not await self._write_backlog():
                log.error("the database is still unavailable: %d buffered log line(s) are lost",
                          self._backlog_lines)
