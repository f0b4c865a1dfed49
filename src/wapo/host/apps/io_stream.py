"""The body stream of an incoming HTTP request (the ``io_stream`` of a channel-4 ``HttpRequest``).

One resource, two directions:

    request body   the host feeds it from an async iterator; the guest reads it with
                   ``poll_read`` (Ok(0) = the body is complete)
    response body  the guest writes it with ``poll_write`` and ends it with ``poll_shutdown``;
                   the host reads it with ``async for chunk in stream.response_body()``

Bounds: at most ``buffer`` bytes of request body wait for the guest (the feeder stops pulling
from the client above that, so TCP pushes back) and at most ``buffer`` bytes of response body
wait for the host (``poll_write`` answers Pending above that). A ``close`` by the guest after
``poll_shutdown``, or without it while the instance runs, ends the response body normally; the
instance ending (crash, limit, exit) with the body unfinished aborts it: the host's iterator
raises ``BodyAborted``, so a truncated answer is never passed off as complete. If the host stops
reading (the client left) it calls ``host_abort``: the guest's next write or read answers IoError.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import AsyncIterator, Callable

from ..abi import ErrorCode, OcallError
from ..resources import Resource

DEFAULT_BUFFER = 256 * 1024
MAX_WAITERS = 1024  # distinct (task, waker) pairs watching one request for its caller going away


class BodyAborted(Exception):
    """The response body ended before the guest finished it (the instance ended, or the host gave up)."""


class IoStream(Resource):
    kind = "http body stream"

    def __init__(self, request_body: AsyncIterator[bytes] | None = None, *, buffer: int = DEFAULT_BUFFER,
                 instance_done: Callable[[], bool] | None = None) -> None:
        super().__init__()
        self._buffer = buffer
        self._instance_done = instance_done or (lambda: False)
        self._read_waiter: tuple[int, int] | None = None
        self._write_waiter: tuple[int, int] | None = None
        # request body (host -> guest)
        self._in = bytearray()
        self._in_eof = request_body is None
        self._in_error: str | None = None
        self._room = asyncio.Event()
        self._feeder: asyncio.Task | None = None
        # response body (guest -> host)
        self._out: deque[bytes] = deque()
        self._out_size = 0
        self._out_done = False
        self._out_error: str | None = None
        self._out_event = asyncio.Event()
        self._host_gone = False
        self._gone_waiters: dict[tuple[int, int], None] = {}  # each (task, waker) once, at most MAX_WAITERS
        self.closed = False
        self.bytes_written = 0
        if request_body is not None:
            self._feeder = asyncio.get_running_loop().create_task(self._feed(request_body))

    # --- wakers ---------------------------------------------------------------------------------
    def _wake_reader(self) -> None:
        waiter, self._read_waiter = self._read_waiter, None
        if waiter is not None and self._wake is not None:
            self._wake(*waiter)

    def _wake_writer(self) -> None:
        waiter, self._write_waiter = self._write_waiter, None
        if waiter is not None and self._wake is not None:
            self._wake(*waiter)

    # --- the request body -----------------------------------------------------------------------
    async def _feed(self, body: AsyncIterator[bytes]) -> None:
        try:
            async for chunk in body:
                if self.closed or self._host_gone:
                    return
                if not chunk:
                    continue
                self._in += chunk
                self._wake_reader()
                while len(self._in) >= self._buffer and not self.closed:
                    self._room.clear()
                    await self._room.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client's body failed (disconnect, too large): the guest sees IoError
            self._in_error = f"the request body failed: {exc}"
            self._wake_reader()
            return
        self._in_eof = True
        self._wake_reader()

    def poll_read(self, task: int, waker: int, size: int) -> bytes:
        if self._in:
            data = bytes(self._in[:size])
            del self._in[:size]
            self._room.set()
            return data
        if self._in_error is not None:
            raise OcallError(ErrorCode.IO_ERROR, self._in_error)
        if self._in_eof or size == 0:
            return b""
        self._read_waiter = (task, waker)
        raise OcallError(ErrorCode.PENDING)

    # --- the response body ----------------------------------------------------------------------
    def poll_write(self, task: int, waker: int, data: bytes) -> int:
        if self._host_gone:
            raise OcallError(ErrorCode.IO_ERROR, "the caller went away")
        if self._out_done:
            raise OcallError(ErrorCode.IO_ERROR, "written after poll_shutdown")
        if not data:
            return 0
        room = self._buffer - self._out_size
        if room <= 0:
            self._write_waiter = (task, waker)
            raise OcallError(ErrorCode.PENDING)
        data = bytes(data[:room])
        self._out.append(data)
        self._out_size += len(data)
        self.bytes_written += len(data)
        self._out_event.set()
        return len(data)

    def poll_shutdown(self, task: int, waker: int) -> None:
        if not self._out_done:
            self._out_done = True
            self._out_event.set()

    async def response_body(self) -> AsyncIterator[bytes]:
        """The response body as the guest writes it; raises ``BodyAborted`` if it is cut short."""
        while True:
            if self._out:
                chunk = self._out.popleft()
                self._out_size -= len(chunk)
                self._wake_writer()
                yield chunk
                continue
            if self._out_error is not None:
                raise BodyAborted(self._out_error)
            if self._out_done:
                return
            self._out_event.clear()
            await self._out_event.wait()

    def watch_gone(self, task: int, waker: int) -> None:
        """Pending until the host gives up on this exchange (its client went away): ``host_abort``."""
        if self._host_gone:
            return
        if len(self._gone_waiters) >= MAX_WAITERS and (task, waker) not in self._gone_waiters:
            raise OcallError(ErrorCode.RESOURCE_LIMITED, f"{MAX_WAITERS} wakers already wait for this request")
        self._gone_waiters[(task, waker)] = None
        raise OcallError(ErrorCode.PENDING)

    def host_abort(self) -> None:
        """The host stops reading the response (and sending the request body)."""
        if not self._host_gone:
            waiters, self._gone_waiters = list(self._gone_waiters), {}
            for waiter in waiters:
                if self._wake is not None:
                    self._wake(*waiter)
        self._host_gone = True
        self._out.clear()
        self._out_size = 0
        if self._in_error is None and not self._in_eof:
            self._in_error = "the caller went away"
        if self._feeder is not None:
            self._feeder.cancel()
        self._room.set()
        self._wake_reader()
        self._wake_writer()

    # --- lifetime -------------------------------------------------------------------------------
    def close(self) -> None:
        super().close()
        if self.closed:
            return
        self.closed = True
        self._read_waiter = self._write_waiter = None
        self._gone_waiters = {}
        if self._feeder is not None and not self._feeder.done():
            self._feeder.cancel()
        self._room.set()
        if not self._out_done:
            if self._instance_done():
                self._out_error = "the app ended before finishing the response body"
            self._out_done = True
        self._out_event.set()
