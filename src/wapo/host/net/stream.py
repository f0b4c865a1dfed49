"""A connected TCP (or TLS) byte stream: the asyncio protocol that buffers it (``Connection``) and
the guest resource that reads and writes it (``TcpStream``), both under the run's ``NetState``."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..abi import ErrorCode, OcallError
from ..resources import Resource

if TYPE_CHECKING:
    pass

log = logging.getLogger("wapo.host.net")

from .quota import NetState


# --- the connection (asyncio side) -----------------------------------------------------------

class Connection(asyncio.Protocol):
    """Buffers and flags of one socket; wakes the stream resource that owns it."""

    def __init__(self, net: NetState, tls: bool) -> None:
        self.net = net
        self.tls = tls
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.eof = False
        self.closed = False
        self.error: BaseException | None = None
        self.reading_paused = False
        self.writing_paused = False
        self.owner: TcpStream | None = None

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.net.conns.add(self)
        limit = self.net.limits.stream_write_buffer
        transport.set_write_buffer_limits(high=limit, low=limit // 4)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.net.read_buffered += len(data)
        lim = self.net.limits
        if len(self.buf) >= lim.stream_read_buffer or self.net.read_buffered >= lim.read_buffer:
            self.pause_reading()
        if self.owner is not None:
            self.owner.wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        if self.owner is not None:
            self.owner.wake_reader()
        return not self.tls  # keep a TCP socket open for writing (half-close); TLS cannot

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is not None and not self.eof:
            self.error = exc
        self.eof = True
        self.net.conns.discard(self)
        self.net.paused.discard(self)
        if self.owner is not None:
            self.owner.wake_reader()
            self.owner.wake_writer()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.owner is not None:
            self.owner.wake_writer()

    # flow control of reads
    def pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = True
            self.net.paused.add(self)
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused:
            self.reading_paused = False
            self.net.paused.discard(self)
            if self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def half_close(self) -> None:
        """No more bytes from us: EOF after what is still buffered (TLS over asyncio has no
        half-close, so there it is close_notify, and the stream ends)."""
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            return
        if not self.tls and transport.can_write_eof():
            transport.write_eof()
        else:
            transport.close()

    def take(self, size: int) -> bytes:
        n = min(size, len(self.buf))
        if n == len(self.buf):
            data = bytes(self.buf)
            self.buf.clear()
        else:
            with memoryview(self.buf) as view:
                data = bytes(view[:n])
            del self.buf[:n]
        self.net.consumed(n)
        if self.reading_paused and len(self.buf) < self.net.limits.stream_read_buffer // 2 \
                and self.net.read_buffered < self.net.limits.read_buffer:
            self.resume_reading()
        return data

    def drop(self) -> None:
        """The guest let go of this connection: free its buffers, close (flushing briefly), forget it."""
        self.owner = None
        if self.buf:
            n = len(self.buf)
            self.buf = bytearray()
            self.net.consumed(n)
        self.net.paused.discard(self)
        transport = self.transport
        if transport is None or self.closed:
            return
        pending = transport.get_write_buffer_size()
        transport.close()
        if pending:
            self.net.loop.call_later(self.net.limits.linger, transport.abort)
        self.net.conns.discard(self)


# --- resources ---------------------------------------------------------------------------------

class TcpStream(Resource):
    """A connected TCP (or TLS) stream."""

    kind = "TCP stream"

    def __init__(self, net: NetState, conn: Connection) -> None:
        super().__init__()
        self.net = net
        self.conn = conn
        conn.owner = self
        self._reader: tuple[int, int] | None = None
        self._writer: tuple[int, int] | None = None
        self._recheck: asyncio.TimerHandle | None = None
        self._shut = False
        self._held = True  # one of the instance's socket slots

    def _fire(self, which: str) -> None:
        waiter = getattr(self, which)
        if waiter is not None and self._wake is not None:
            setattr(self, which, None)
            self._wake(*waiter)

    def wake_reader(self) -> None:
        self._fire("_reader")

    def wake_writer(self) -> None:
        self._recheck = None
        self._fire("_writer")

    def poll_read(self, task: int, waker: int, size: int) -> bytes:
        conn = self.conn
        if conn.buf:
            return conn.take(size) if size else b""
        if conn.error is not None:
            raise OcallError(ErrorCode.IO_ERROR, f"connection failed: {conn.error}")
        if conn.eof or size == 0:
            return b""
        self._reader = (task, waker)
        raise OcallError(ErrorCode.PENDING)

    def poll_ready(self, task: int, waker: int) -> None:
        conn = self.conn
        if conn.buf or conn.eof or conn.error is not None:
            return
        self._reader = (task, waker)
        raise OcallError(ErrorCode.PENDING)

    def poll_write(self, task: int, waker: int, data: bytes) -> int:
        conn = self.conn
        if self._shut:
            raise OcallError(ErrorCode.IO_ERROR, "the stream was shut down for writing")
        if conn.closed or conn.transport is None or conn.transport.is_closing():
            raise OcallError(ErrorCode.IO_ERROR, f"the connection is closed{f': {conn.error}' if conn.error else ''}")
        if not data:
            return 0
        if conn.writing_paused:
            self._writer = (task, waker)  # resume_writing wakes it
            raise OcallError(ErrorCode.PENDING)
        lim = self.net.limits
        room = lim.write_buffer - self.net.write_buffered()
        if room <= 0:
            # the instance cap: no per-stream event tells when another stream drained; look again soon
            self._writer = (task, waker)
            if self._recheck is None:
                self._recheck = self.net.loop.call_later(0.01, self.wake_writer)
            raise OcallError(ErrorCode.PENDING)
        n = min(len(data), lim.stream_write_buffer, room)
        conn.transport.write(data if n == len(data) else data[:n])
        return n

    def poll_shutdown(self, task: int, waker: int) -> None:
        if not self._shut:
            self._shut = True
            self.conn.half_close()

    def close(self) -> None:
        super().close()
        self._reader = self._writer = None
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None
        self.conn.drop()
        if self._held:
            self._held = False
            self.net.release()
