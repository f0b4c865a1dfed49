"""Run logs written with group commit: each request waits for its logs to be durable, but the
requests of the same moment share one transaction (one commit instead of one each). Retention
(``prune_every`` records) runs after the acknowledgement, in its own task: no request waits for
a prune, which reads a full CID's whole quota (milliseconds on PostgreSQL).

When the store is unavailable (a shared database that went away), requests stop waiting: their
logs are kept in memory, up to ``max_buffered`` lines (the oldest runs are dropped beyond, and
counted), and written by a retry loop as soon as the database answers again.

The commits run on a thread of the writer's own (``_Committer``), not through
``asyncio.to_thread``: a write queues its run and wakes the thread only if it is parked; the
thread commits everything queued, tells the loop once per batch (one ``call_soon_threadsafe``
for all the batch's requests) and takes the next batch at once if more came meanwhile, with no
round trip through the loop and no executor hand-off per batch (docs/design.md, issue 12,
follow-up 2)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque

from ..store import AnyStore, StoreUnavailable

log = logging.getLogger("wapo.gateway")

MAX_BUFFERED_LINES = 100_000
RETRY_EVERY = 1.0


class LogWriter:
    def __init__(self, store: AnyStore, *, max_buffered: int = MAX_BUFFERED_LINES,
                 retry_every: float = RETRY_EVERY) -> None:
        self._store = store
        self._committer = _Committer(store, self._committed)
        self._in_flight = 0                      # writes queued or being committed
        self._drained: asyncio.Future[None] | None = None  # close() waits on it for the last commit
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
        self._in_flight += 1
        self._committer.put((cid, request_id, entries), done)
        await asyncio.shield(done)

    def _committed(self, batch: list, waiters: list, unavailable: BaseException | None) -> None:
        """On the loop's thread, once per batch: acknowledge its writes (kept for the retry loop if
        the database was unavailable), then let the retention they made due run."""
        if unavailable is not None:
            log.warning("the database is unavailable; keeping run logs in memory until it returns: %s", unavailable)
            self._keep(batch)
            self._start_retrying()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._in_flight -= len(waiters)
        if not self._in_flight and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
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
        if self._in_flight:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained
        self._committer.stop()
        if self._pruning is not None:
            await self._pruning
        if self._store.retention_due:  # (made due while the last prune ran)
            await self._prune()
        if self._retrying is not None and not self._retrying.done():
            self._retrying.cancel()
            if self._backlog and not await self._write_backlog():
                log.error("the database is still unavailable: %d buffered log line(s) are lost",
                          self._backlog_lines)


class _Committer:
    """The writer's thread: commits every queued run in one transaction, delivers the batch's
    outcome to its loop in one call, and parks only when nothing is queued (started on first use)."""

    def __init__(self, store: AnyStore, committed) -> None:
        self._store = store
        self._committed = committed              # LogWriter._committed, called on the writes' loop
        self._lock = threading.Lock()
        self._queue: list[tuple[tuple[str, str, list], asyncio.Future[None]]] = []
        self._park = threading.Lock()            # held while the thread is parked; put() releases it
        self._park.acquire()
        self._parked = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    def put(self, run: tuple[str, str, list], done: asyncio.Future[None]) -> None:
        with self._lock:
            self._queue.append((run, done))
            self._stopping = False
            wake, self._parked = self._parked, False
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="wapo-logwriter", daemon=True)
                self._thread.start()
        if wake:
            self._park.release()

    def stop(self) -> None:
        """End the thread once the queue is empty (a later put starts another)."""
        with self._lock:
            self._stopping = True
            wake, self._parked = self._parked, False
        if wake:
            self._park.release()

    def _work(self) -> None:
        while True:
            with self._lock:
                queued, self._queue = self._queue, []
                if not queued:
                    if self._stopping:
                        self._thread = None
                        return
                    self._parked = True
            if not queued:
                self._park.acquire()
                continue
            batch = [run for run, _ in queued]
            unavailable: BaseException | None = None
            try:
                self._store.append_log_batch(batch, ids=False, prune=False)
            except StoreUnavailable as exc:
                unavailable = exc
            except Exception:
                log.exception("could not store the logs of %d run(s)", len(batch))
            by_loop: dict[asyncio.AbstractEventLoop, tuple[list, list]] = {}
            for run, done in queued:
                runs, waiters = by_loop.setdefault(done.get_loop(), ([], []))
                runs.append(run)
                waiters.append(done)
            for loop, (runs, waiters) in by_loop.items():
                try:
                    loop.call_soon_threadsafe(self._committed, runs, waiters, unavailable)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    pass
            queued = batch = by_loop = None  # type: ignore[assignment]
