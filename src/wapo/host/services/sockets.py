"""TCP sockets for scripts (``WapoSockets.connect``): host services over ``wapo.host.net``.

The connection machinery is the raw-guest TCP code's (``wapo.host.net.sockets``): the same
per-run ``NetState`` (address policy checked after DNS, socket count, read and write buffer
caps shared with tcp_connect), the same asyncio ``Connection`` protocol. Only the guest-facing
shape differs: services instead of ocalls, and two resources per socket so JS can wait for
reading and for writing at the same time (a resource has one waiter):

    tcp.connect   JSON {hostname, port, tls}  ->  u32 socket id + u32 writer id; a denied
                  literal address or a bad name/port throws TypeError at once
    tcp.opened    u32 socket id  ->  JSON {remoteAddress, localAddress} once the watched
                  socket is ready; a failed connection (denied after DNS, refused, TLS, timeout)
                  throws TypeError with the reason
    tcp.read      u32 socket id  ->  0 + bytes, 1 (end of stream) or 2 (nothing yet: watch the
                  socket, then read again); a broken connection throws TypeError
    tcp.write     u32 socket id + chunk (<= 256 KiB)  ->  1 byte: 0 write more, 1 watch the
                  writer first (above the stream's or the run's unsent-bytes cap)
    tcp.shutdown  u32 socket id  ->  empty: half-close after the buffered bytes (TLS: close_notify)

``host.close`` of the socket frees the socket at once (unsent bytes get ``NetLimits.linger``
seconds); closing the writer alone changes nothing on the connection.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import struct
from typing import TYPE_CHECKING

from ..abi import ErrorCode, OcallError
from ..net.args import check_host, check_port, ip_literal
from ..net.tcp import Connection, NetState, net_state
from ..resources import Resource
from .registry import ServiceError, add_resources, resource_getter, service

if TYPE_CHECKING:
    from ..state import GuestState

READ_MAX = 256 * 1024  # bytes handed to the guest per tcp.read
WRITE_MAX = 256 * 1024  # bytes the guest passes per tcp.write (JS splits bigger chunks)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OcallError):
        text = str(exc)
        return text.split(": ", 1)[1] if ": " in text else text
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate is not valid ({exc.verify_message or exc.reason})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc})"
    if isinstance(exc, OSError):
        if exc.errno:  # asyncio's "Connect call failed (...)" hides the errno's text
            return os.strerror(exc.errno)
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


def _sockname(addr) -> str:
    if not addr:
        return ""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ScriptSocket(Resource):
    """One socket of a script. Ready (for watch): connected/failed while connecting, then
    something to read (bytes, end of stream or an error)."""

    kind = "TCP socket"

    def __init__(self, net: NetState, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        super().__init__()
        self.net = net
        self.host = host
        self.port = port
        self.tls = tls
        self.conn: Connection | None = None
        self.error: str | None = None  # why the connection failed
        self.writer: SocketWriter | None = None
        self._held = True
        self._shut = False
        self._recheck: asyncio.TimerHandle | None = None
        self._closed = False
        self.task: asyncio.Task | None = net.loop.create_task(self._connect())
        self.task.add_done_callback(self._connected)

    async def _connect(self) -> Connection:
        limits = self.net.limits
        async with asyncio.timeout(limits.connect_timeout):
            loop = self.net.loop
            last: BaseException | None = None
            for address in await self.net.resolve(self.host, self.port):
                conn = Connection(self.net, tls=self.tls is not None)
                try:
                    if self.tls is not None:
                        await loop.create_connection(lambda: conn, address, self.port, ssl=self.tls,
                                                     server_hostname=self.host.strip("[]"),
                                                     ssl_handshake_timeout=limits.connect_timeout)
                    else:
                        await loop.create_connection(lambda: conn, address, self.port)
                    return conn
                except OSError as exc:  # ssl.SSLError is an OSError too
                    conn.drop()
                    last = exc
            raise last or OSError(f"{self.host} resolves to no address")

    def _connected(self, task: asyncio.Task) -> None:
        self.task = None
        if self._closed:  # closed while connecting: a connection made meanwhile is dropped
            if not task.cancelled() and task.exception() is None:
                task.result().drop()
            return
        if task.cancelled():
            self.error = self.error or "cancelled"
        elif task.exception() is not None:
            self.error = _reason(task.exception())  # type: ignore[arg-type]
            self.net.log("debug", f"connect {self.host}:{self.port}: {self.error}")
        else:
            self.conn = task.result()
            self.conn.owner = self  # type: ignore[assignment]
        self._notify()
        self.wake_writer()

    # --- Connection's owner interface ---
    def wake_reader(self) -> None:
        self._notify()

    def wake_writer(self) -> None:
        self._recheck = None
        if self.writer is not None:
            self.writer._notify()

    # --- readiness ---
    def _readable(self) -> bool:
        if self.task is not None:
            return False
        conn = self.conn
        return conn is None or bool(conn.buf) or conn.eof or conn.error is not None

    def poll_ready(self, task: int, waker: int) -> None:
        if not self._readable():
            self._park(task, waker)

    def writable(self) -> bool:
        """True when a write would be welcome (or would fail: the guest must not wait forever)."""
        conn = self.conn
        if self.task is not None:
            return False
        if conn is None or conn.closed or conn.transport is None or conn.transport.is_closing():
            return True
        if conn.writing_paused:
            return False
        if self.net.write_buffered() >= self.net.limits.write_buffer:
            # no event tells when another stream drained: look again soon
            if self._recheck is None:
                self._recheck = self.net.loop.call_later(0.01, self.wake_writer)
            return False
        return True

    # --- the guest's calls ---
    def opened(self) -> bytes:
        if self.task is not None:
            raise ServiceError("Error", "tcp.opened before the socket was ready (watch it first)")
        if self.conn is None:
            raise ServiceError("TypeError", f"connect to {self.host}:{self.port} failed: {self.error}")
        transport = self.conn.transport
        info = {"remoteAddress": "", "localAddress": ""}
        if transport is not None:
            info["remoteAddress"] = _sockname(transport.get_extra_info("peername"))
            info["localAddress"] = _sockname(transport.get_extra_info("sockname"))
        return json.dumps(info).encode()

    def read(self) -> bytes:
        if self.task is not None:
            return b"\2"
        conn = self.conn
        if conn is None:
            raise ServiceError("TypeError", f"connect to {self.host}:{self.port} failed: {self.error}")
        if conn.buf:
            return b"\0" + conn.take(READ_MAX)
        if conn.error is not None:
            raise ServiceError("TypeError", f"the connection failed: {_reason(conn.error)}")
        if conn.eof:
            return b"\1"
        return b"\2"

    def write(self, data: bytes) -> bytes:
        conn = self.conn
        if self.task is not None:
            raise ServiceError("Error", "tcp.write before the socket was opened")
        if conn is None:
            raise ServiceError("TypeError", f"connect to {self.host}:{self.port} failed: {self.error}")
        if self._shut:
            raise ServiceError("TypeError", "the socket was closed for writing")
        if conn.closed or conn.transport is None or conn.transport.is_closing():
            why = f": {_reason(conn.error)}" if conn.error is not None else ""
            raise ServiceError("TypeError", f"the connection is closed{why}")
        if len(data) > WRITE_MAX:
            raise ServiceError("RangeError", f"tcp.write takes at most {WRITE_MAX} bytes at once")
        if data:
            conn.transport.write(data)
        return b"\0" if self.writable() else b"\1"

    def shutdown(self) -> None:
        if not self._shut and self.conn is not None:
            self.conn.half_close()
        self._shut = True

    def close(self) -> None:
        super().close()
        self._closed = True
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
        if self.conn is not None:
            self.conn.drop()
        if self.writer is not None:
            self.writer.sock = None
            self.writer = None
        if self._held:
            self._held = False
            self.net.release()


class SocketWriter(Resource):
    """The writing side of a ScriptSocket: ready when the guest may write (again)."""

    kind = "TCP socket writer"

    def __init__(self, sock: ScriptSocket) -> None:
        super().__init__()
        self.sock: ScriptSocket | None = sock
        sock.writer = self

    def poll_ready(self, task: int, waker: int) -> None:
        if self.sock is not None and not self.sock.writable():
            self._park(task, waker)

    def close(self) -> None:
        super().close()
        if self.sock is not None:
            self.sock.writer = None
            self.sock = None


_get = resource_getter(ScriptSocket, "socket", "socket")


@service("tcp.connect")
def connect(st: GuestState, payload: bytes) -> bytes:
    try:
        req = json.loads(payload)
        host, port, tls = req["hostname"], req["port"], bool(req.get("tls"))
        if not isinstance(host, str) or not isinstance(port, int) or isinstance(port, bool):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise ServiceError("TypeError", "tcp.connect: malformed request") from None
    try:
        check_host(host)
        if not 1 <= port <= 65535:
            raise OcallError(ErrorCode.INVALID_PARAMETER, f"port {port} is not 1..65535")
        check_port(port)
    except OcallError as exc:
        raise ServiceError("TypeError", f"connect: {_reason(exc)}") from None
    net = net_state(st)
    literal = ip_literal(host)
    try:
        if literal is not None:
            net.check(literal, host)  # a denied literal address fails now
        ctx = net.client_context() if tls else None
        net.acquire()
    except OcallError as exc:
        raise ServiceError("TypeError", f"connect to {host}:{port} failed: {_reason(exc)}") from None
    try:
        sock = ScriptSocket(net, host, port, ctx)
    except BaseException:
        net.release()
        raise
    try:
        sid, wid = add_resources(st, sock, SocketWriter(sock))  # at the limit the socket is closed (slot freed)
    except OcallError as exc:
        raise ServiceError("TypeError", f"connect failed: {_reason(exc)}") from None
    return struct.pack("<II", sid, wid)


@service("tcp.opened")
def opened(st: GuestState, payload: bytes) -> bytes:
    return _get(st, payload).opened()


@service("tcp.read")
def read(st: GuestState, payload: bytes) -> bytes:
    return _get(st, payload).read()


@service("tcp.write")
def write(st: GuestState, payload: bytes) -> bytes:
    return _get(st, payload).write(payload[4:])


@service("tcp.shutdown")
def shutdown(st: GuestState, payload: bytes) -> bytes:
    _get(st, payload).shutdown()
    return b""
