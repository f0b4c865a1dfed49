"""TCP and TLS sockets as guest resources (ocalls 210-214), on asyncio protocols.

Three resource kinds:

    TcpConnecting  what tcp_connect / tcp_connect_tls return: resolution, the policy check
                   and the connection (and TLS handshake) run in an asyncio task; poll_res
                   finishes it and answers the id of a new TcpStream (Pending until then)
    TcpStream      a connected byte stream: poll_read (Ok(0) = end of stream), poll_write
                   (bytes accepted; Pending above the buffer caps), poll_shutdown (half-close)
    TcpListener    what tcp_listen returns: tcp_accept / tcp_accept_no_addr hand out streams
                   (so do they on a name of the shared SNI port, ocall 215: see ``sni.py``)

Policy (the run's ``NetworkPolicy``): every address a name resolves to is checked with the
same ``AddressPolicy`` fetch uses, after resolution, and only addresses that passed are
connected to (a literal address is checked at once: Forbidden from tcp_connect itself; a
name that resolves only to denied addresses: Forbidden from poll_res). tcp_listen binds
only ports inside ``listen_ports`` (else Forbidden). TLS clients trust the system roots
(``ssl.create_default_context()``) plus ``tls_extra_ca``.

Bounds, per instance (``NetLimits``): open sockets (connecting, streams, listeners and an
accept in progress each hold one), bytes received but not yet read by the guest (a stream
stops reading its socket above its own cap or the instance cap, so TCP pushes back on the
peer) and bytes accepted from the guest but not yet sent (poll_write answers Pending above
either cap). Nothing here ever blocks the event loop.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import re
import socket
import ssl
import struct
import tempfile
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..abi import ErrorCode, OcallError
from ..http.policy import DEFAULT_NETWORK, NetworkPolicy
from ..resources import Resource

if TYPE_CHECKING:
    from ..instance import GuestState

log = logging.getLogger("wapo.host.net")

MAX_HOST_NAME = 253
MAX_ENCODED_INPUT = 1 << 20  # an EI argument tuple (a TLS server config carries PEM text)
_HOST_LABELS = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?")


@dataclass(frozen=True)
class NetLimits:
    max_sockets: int = 64                    # sockets open at once per instance
    stream_read_buffer: int = 256 * 1024     # received bytes kept per stream before its socket is paused
    read_buffer: int = 4 * 1024 * 1024       # ... and per instance, all streams together
    stream_write_buffer: int = 256 * 1024    # unsent bytes per stream before poll_write is Pending
    write_buffer: int = 4 * 1024 * 1024      # ... and per instance
    connect_timeout: float = 30.0            # resolution + connection + TLS handshake
    handshake_timeout: float = 15.0          # TLS handshake of an accepted connection
    linger: float = 5.0                      # a closed stream may flush its unsent bytes this long
    backlog: int = 128


LIMITS = NetLimits()  # read when an instance first uses the network (tests may replace it)


def _err(code: ErrorCode, detail: str = "") -> OcallError:
    return OcallError(code, detail)


# --- per-instance state ----------------------------------------------------------------

class NetState:
    """Counters and caches of one instance. Holds no reference to the GuestState (weak only)."""

    def __init__(self, st: GuestState) -> None:
        self.loop: asyncio.AbstractEventLoop = st.loop
        self.policy: NetworkPolicy = getattr(st, "network", None) or DEFAULT_NETWORK
        self.addresses = self.policy.addresses
        self.limits = LIMITS
        self.sockets = 0
        self.read_buffered = 0
        self.conns: set[Connection] = set()
        self.paused: set[Connection] = set()
        self._client_ctx: ssl.SSLContext | None = None
        self._st = weakref.ref(st)

    def log(self, level: str, message: str) -> None:
        st = self._st()
        if st is not None:
            st.add_log(level, message)

    def acquire(self) -> None:
        if self.sockets >= self.limits.max_sockets:
            raise _err(ErrorCode.RESOURCE_LIMITED, f"{self.limits.max_sockets} sockets already open")
        self.sockets += 1

    def release(self) -> None:
        self.sockets -= 1

    def write_buffered(self) -> int:
        total = 0
        for conn in self.conns:
            if conn.transport is not None:
                total += conn.transport.get_write_buffer_size()
        return total

    def consumed(self, n: int) -> None:
        self.read_buffered -= n
        if self.paused and self.read_buffered < self.limits.read_buffer:
            low = self.limits.stream_read_buffer // 2
            for conn in list(self.paused):
                if len(conn.buf) < low:
                    conn.resume_reading()

    def client_context(self) -> ssl.SSLContext:
        if self._client_ctx is None:
            ctx = ssl.create_default_context()
            if self.policy.tls_extra_ca:
                ctx.load_verify_locations(cafile=self.policy.tls_extra_ca)
            self._client_ctx = ctx
        return self._client_ctx

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` the policy allows (checked after resolution), in resolver order."""
        literal = _ip_literal(host)
        if literal is not None:
            self.check(literal, host)
            return [literal]
        infos = await self.loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        allowed: list[str] = []
        denied: str | None = None
        for _family, _type, _proto, _canon, sockaddr in infos:
            address = sockaddr[0]
            why = self.addresses.reason(address)
            if why is None:
                if address not in allowed:
                    allowed.append(address)
            elif denied is None:
                denied = f"{address} of {host} is not allowed ({why})"
        if not allowed:
            if denied is not None:
                raise _err(ErrorCode.FORBIDDEN, denied)
            raise OSError(f"{host} resolves to no address")
        return allowed

    def check(self, address: str, host: str) -> None:
        why = self.addresses.reason(address)
        if why is not None:
            raise _err(ErrorCode.FORBIDDEN, f"address {address} (of {host}) is not allowed ({why})")


_states: "weakref.WeakKeyDictionary[GuestState, NetState]" = weakref.WeakKeyDictionary()


def net_state(st: GuestState) -> NetState:
    net = _states.get(st)
    if net is None:
        net = _states[st] = NetState(st)
    return net


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
            raise _err(ErrorCode.IO_ERROR, f"connection failed: {conn.error}")
        if conn.eof or size == 0:
            return b""
        self._reader = (task, waker)
        raise _err(ErrorCode.PENDING)

    def poll_ready(self, task: int, waker: int) -> None:
        conn = self.conn
        if conn.buf or conn.eof or conn.error is not None:
            return
        self._reader = (task, waker)
        raise _err(ErrorCode.PENDING)

    def poll_write(self, task: int, waker: int, data: bytes) -> int:
        conn = self.conn
        if self._shut:
            raise _err(ErrorCode.IO_ERROR, "the stream was shut down for writing")
        if conn.closed or conn.transport is None or conn.transport.is_closing():
            raise _err(ErrorCode.IO_ERROR, f"the connection is closed{f': {conn.error}' if conn.error else ''}")
        if not data:
            return 0
        if conn.writing_paused:
            self._writer = (task, waker)  # resume_writing wakes it
            raise _err(ErrorCode.PENDING)
        lim = self.net.limits
        room = lim.write_buffer - self.net.write_buffered()
        if room <= 0:
            # the instance cap: no per-stream event tells when another stream drained; look again soon
            self._writer = (task, waker)
            if self._recheck is None:
                self._recheck = self.net.loop.call_later(0.01, self.wake_writer)
            raise _err(ErrorCode.PENDING)
        n = min(len(data), lim.stream_write_buffer, room)
        conn.transport.write(data if n == len(data) else data[:n])
        return n

    def poll_shutdown(self, task: int, waker: int) -> None:
        if self._shut:
            return
        self._shut = True
        conn = self.conn
        transport = conn.transport
        if transport is None or conn.closed or transport.is_closing():
            return
        if not conn.tls and transport.can_write_eof():
            transport.write_eof()  # sent after the bytes still buffered
        else:
            transport.close()  # TLS over asyncio has no half-close: close_notify, then the stream ends

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


def _error_code(exc: BaseException) -> OcallError:
    if isinstance(exc, OcallError):
        return exc
    if isinstance(exc, asyncio.TimeoutError):
        return _err(ErrorCode.IO_ERROR, "timed out")
    return _err(ErrorCode.IO_ERROR, str(exc) or type(exc).__name__)


class TcpConnecting(Resource):
    """A connection in progress; poll_res answers the new stream's id once it is made."""

    kind = "TCP connect"

    def __init__(self, net: NetState, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        super().__init__()
        self.net = net
        self.host = host
        self.port = port
        self._tls = tls
        self._held = True
        self._task: asyncio.Task[Connection] | None = net.loop.create_task(self._run())
        self._task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:
                code = _error_code(exc)
                self.net.log("debug", f"tcp_connect {self.host}:{self.port}: {code}")
        self._notify()

    async def _run(self) -> Connection:
        return await asyncio.wait_for(self._connect(), self.net.limits.connect_timeout)

    async def _connect(self) -> Connection:
        loop = self.net.loop
        last: BaseException | None = None
        for address in await self.net.resolve(self.host, self.port):
            conn = Connection(self.net, tls=self._tls is not None)
            try:
                if self._tls is not None:
                    await loop.create_connection(lambda: conn, address, self.port, ssl=self._tls,
                                                 server_hostname=self.host.strip("[]"),
                                                 ssl_handshake_timeout=self.net.limits.connect_timeout)
                else:
                    await loop.create_connection(lambda: conn, address, self.port)
                return conn
            except OSError as exc:  # ssl.SSLError is an OSError too
                last = exc
        raise last or OSError("no address to connect to")

    def poll_res(self, st: GuestState, task: int, waker: int) -> int:
        if self._task is None:
            raise _err(ErrorCode.NOT_FOUND, "the connection was already handed out")
        if not self._task.done():
            self._park(task, waker)
        if self._task.cancelled():
            raise _err(ErrorCode.IO_ERROR, "cancelled")
        exc = self._task.exception()
        if exc is not None:
            raise _error_code(exc)
        conn = self._task.result()
        self._task = None
        self._held = False  # the slot goes with the stream
        return st.resources.add(TcpStream(self.net, conn))  # on ResourceLimited the stream is closed

    def close(self) -> None:
        super().close()
        task, self._task = self._task, None
        if task is not None:
            if not task.done():
                task.cancel()
            elif not task.cancelled() and task.exception() is None:
                task.result().drop()
        if self._held:
            self._held = False
            self.net.release()


class Listener(Resource):
    """What tcp_accept / tcp_accept_no_addr take: a TcpListener or a name on the shared SNI port."""

    kind = "listener"

    def poll_accept(self, st: GuestState, task: int, waker: int) -> tuple[int, str]:
        raise NotImplementedError


class TcpListener(Listener):
    """A listening socket; one accept at a time runs while the guest waits in tcp_accept."""

    kind = "TCP listener"

    def __init__(self, net: NetState, sock: socket.socket, tls: ssl.SSLContext | None) -> None:
        super().__init__()
        self.net = net
        self.sock = sock
        self._tls = tls
        self._held = True
        self._task: asyncio.Task | None = None

    async def _accept(self) -> tuple[Connection, str]:
        loop = self.net.loop
        while True:
            client, peer = await loop.sock_accept(self.sock)
            conn = Connection(self.net, tls=self._tls is not None)
            try:
                if self._tls is None:
                    await loop.connect_accepted_socket(lambda: conn, client)
                else:
                    await loop.connect_accepted_socket(lambda: conn, client, ssl=self._tls,
                                                       ssl_handshake_timeout=self.net.limits.handshake_timeout)
            except (OSError, asyncio.TimeoutError) as exc:
                self.net.log("debug", f"tcp_accept: dropped a connection from {_peer(peer)}: {exc}")
                client.close()
                continue
            return conn, _peer(peer)

    def _done(self, task: asyncio.Task) -> None:
        if not task.cancelled():
            task.exception()  # retrieved here; poll_accept reports it
        self._notify()

    def poll_accept(self, st: GuestState, task: int, waker: int) -> tuple[int, str]:
        if self._task is None:
            self.net.acquire()  # the connection being accepted holds a slot
            self._task = self.net.loop.create_task(self._accept())
            self._task.add_done_callback(self._done)
        if not self._task.done():
            self._park(task, waker)
        done, self._task = self._task, None
        exc = done.exception()
        if exc is not None:
            self.net.release()
            raise _error_code(exc)
        conn, peer = done.result()
        return st.resources.add(TcpStream(self.net, conn)), peer

    def close(self) -> None:
        super().close()
        task, self._task = self._task, None
        if task is not None:
            if not task.done():
                task.cancel()
            elif not task.cancelled() and task.exception() is None:
                task.result()[0].drop()
            self.net.release()
        self.sock.close()
        if self._held:
            self._held = False
            self.net.release()


def _peer(sockaddr: tuple) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- SCALE input (EI) ----------------------------------------------------------------------------

class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise _err(ErrorCode.INVALID_ENCODING, "truncated SCALE input")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def compact(self) -> int:
        b0 = self.take(1)[0]
        mode = b0 & 3
        if mode == 0:
            return b0 >> 2
        if mode == 1:
            return struct.unpack("<H", bytes([b0]) + self.take(1))[0] >> 2
        if mode == 2:
            return struct.unpack("<I", bytes([b0]) + self.take(3))[0] >> 2
        return int.from_bytes(self.take((b0 >> 2) + 4), "little")

    def string(self, limit: int, what: str) -> str:
        n = self.compact()
        if n > limit:
            raise _err(ErrorCode.INVALID_PARAMETER, f"{what} is longer than {limit} bytes")
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise _err(ErrorCode.INVALID_ENCODING, f"{what} is not UTF-8") from None

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def end(self) -> None:
        if self.pos != len(self.data):
            raise _err(ErrorCode.INVALID_ENCODING, "trailing bytes after the SCALE input")


def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host))
    except ValueError:
        return None


def _check_host(host: str) -> None:
    if not host or len(host.encode()) > MAX_HOST_NAME:
        raise _err(ErrorCode.INVALID_PARAMETER, f"a host name is 1..{MAX_HOST_NAME} bytes")
    if _ip_literal(host) is None and not _HOST_LABELS.fullmatch(host):
        raise _err(ErrorCode.INVALID_PARAMETER, "not a host name or IP address")


def _check_port(port: int) -> int:
    port &= 0xFFFFFFFF
    if not 1 <= port <= 65535:
        raise _err(ErrorCode.INVALID_PARAMETER, f"port {port} is not 1..65535")
    return port


def _no_password() -> bytes:
    raise ValueError("encrypted private keys are not supported")


def tls_server_config(r: _Reader) -> tuple[str, str]:
    """TlsServerConfig = enum { V0 { cert: String, key: String } } (PEM chain, leaf first; PEM key)."""
    variant = r.u8()
    if variant != 0:
        raise _err(ErrorCode.INVALID_ENCODING, f"unknown TlsServerConfig variant {variant}")
    return r.string(MAX_ENCODED_INPUT, "certificate chain"), r.string(MAX_ENCODED_INPUT, "private key")


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """An SSLContext serving the guest's certificate; bad PEM is InvalidParameter, never a host error."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # ssl loads PEM from files only: a private directory, removed at once
    with tempfile.TemporaryDirectory(prefix="wapo-tls-") as tmp:
        cert_path, key_path = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        for path, text in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        try:
            # without a password callback OpenSSL would prompt on the host's terminal for an encrypted key
            ctx.load_cert_chain(cert_path, key_path, password=_no_password)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise _err(ErrorCode.INVALID_PARAMETER, f"bad TLS certificate or key: {exc}") from None
    return ctx


# --- the calls ---------------------------------------------------------------------------------

def tcp_connect(st: GuestState, host_raw: bytes, port: int) -> int:
    """213: tcp_connect(host, port) -> res (a TcpConnecting; poll_res gives the stream)."""
    try:
        host = host_raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _err(ErrorCode.INVALID_ENCODING, "host is not UTF-8") from None
    _check_host(host)
    port = _check_port(port)
    return _start_connect(st, host, port, None)


def tcp_connect_tls(st: GuestState, payload: bytes) -> int:
    """214: EI (String host, u16 port, TlsClientConfig) -> res. TlsClientConfig: enum { V0 }."""
    r = _Reader(payload)
    host = r.string(MAX_HOST_NAME, "host name")
    port = r.u16()
    variant = r.u8()
    if variant != 0:
        raise _err(ErrorCode.INVALID_ENCODING, f"unknown TlsClientConfig variant {variant}")
    r.end()
    _check_host(host)
    _check_port(port)
    net = net_state(st)
    return _start_connect(st, host, port, net.client_context())


def _start_connect(st: GuestState, host: str, port: int, tls: ssl.SSLContext | None) -> int:
    net = net_state(st)
    literal = _ip_literal(host)
    if literal is not None:
        net.check(literal, host)  # a literal address is judged now
    net.acquire()
    try:
        connecting = TcpConnecting(net, host, port, tls)
    except BaseException:
        net.release()
        raise
    return st.resources.add(connecting)  # ResourceLimited closes it (and frees the slot)


def tcp_listen(st: GuestState, payload: bytes) -> int:
    """210: EI (String addr, Option<TlsServerConfig>) -> res. TlsServerConfig: enum { V0 { cert, key } }."""
    try:
        return _listen(st, payload)
    except OcallError as exc:  # the guest gets the code; its log says why
        net_state(st).log("warn", f"tcp_listen: {exc}")
        raise


def _listen(st: GuestState, payload: bytes) -> int:
    r = _Reader(payload)
    addr = r.string(512, "listen address")
    tls: tuple[str, str] | None = None
    option = r.u8()
    if option == 1:
        tls = tls_server_config(r)
    elif option != 0:
        raise _err(ErrorCode.INVALID_ENCODING, "bad Option tag")
    r.end()
    host, sep, port_text = addr.rpartition(":")
    if not sep or not port_text.isdigit() or len(port_text) > 5:
        raise _err(ErrorCode.INVALID_PARAMETER, "listen address is host:port")
    port = int(port_text)
    ip = "127.0.0.1" if host == "localhost" else _ip_literal(host)
    if ip is None or not 0 <= port <= 65535:
        raise _err(ErrorCode.INVALID_PARAMETER, "listen address is ip:port, [ipv6]:port or localhost:port")
    net = net_state(st)
    ports = net.policy.listen_ports
    if ports is None or not ports[0] <= port <= ports[1]:
        allowed = f"{ports[0]}-{ports[1]}" if ports else "none"
        raise _err(ErrorCode.FORBIDDEN, f"port {port} is outside the allowed listen ports ({allowed})")
    context = server_context(*tls) if tls is not None else None
    net.acquire()
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip, port))
        sock.listen(net.limits.backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        net.release()
        if exc.errno == errno.EADDRINUSE:
            raise _err(ErrorCode.ALREADY_EXISTS, f"{addr} is in use") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise _err(ErrorCode.FORBIDDEN, f"cannot bind {addr}") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise _err(ErrorCode.INVALID_PARAMETER, f"{ip} is not an address of this host") from None
        raise _err(ErrorCode.IO_ERROR, f"cannot listen on {addr}: {exc}") from None
    return st.resources.add(TcpListener(net, sock, context))


def tcp_accept(st: GuestState, task: int, waker: int, res: int) -> tuple[int, str]:
    """211/212: the next connection of a listener: (stream res, "ip:port" of the peer)."""
    listener = st.resources.get_as(res, Listener)
    assert isinstance(listener, Listener)
    return listener.poll_accept(st, task, waker)
