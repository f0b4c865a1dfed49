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
import logging
import socket
import ssl
from typing import TYPE_CHECKING, Any, Callable

from ..abi import ErrorCode, OcallError
from .args import (MAX_HOST_NAME, ArgReader, check_host, check_port, ip_literal, peer_name,
                   server_context, tls_server_config)
from ..resources import Resource

if TYPE_CHECKING:
    from ..state import GuestState

log = logging.getLogger("wapo.host.net")

from .quota import NetState, net_state
from .stream import Connection, TcpStream


def _discard(task: asyncio.Task | None, connection: Callable[[Any], Connection]) -> None:
    """Cancel a connect or accept in progress, or drop the connection it made that nobody took."""
    if task is None:
        return
    if not task.done():
        task.cancel()
    elif not task.cancelled() and task.exception() is None:
        connection(task.result()).drop()


def _error_code(exc: BaseException) -> OcallError:
    if isinstance(exc, OcallError):
        return exc
    if isinstance(exc, asyncio.TimeoutError):
        return OcallError(ErrorCode.IO_ERROR, "timed out")
    return OcallError(ErrorCode.IO_ERROR, str(exc) or type(exc).__name__)


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
            raise OcallError(ErrorCode.NOT_FOUND, "the connection was already handed out")
        if not self._task.done():
            self._park(task, waker)
        if self._task.cancelled():
            raise OcallError(ErrorCode.IO_ERROR, "cancelled")
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
        _discard(task, lambda conn: conn)
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
                self.net.log("debug", f"tcp_accept: dropped a connection from {peer_name(peer)}: {exc}")
                client.close()
                continue
            return conn, peer_name(peer)

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
            _discard(task, lambda accepted: accepted[0])
            self.net.release()
        self.sock.close()
        if self._held:
            self._held = False
            self.net.release()


# --- the calls ---------------------------------------------------------------------------------

def tcp_connect(st: GuestState, host_raw: bytes, port: int) -> int:
    """213: tcp_connect(host, port) -> res (a TcpConnecting; poll_res gives the stream)."""
    try:
        host = host_raw.decode("utf-8")
    except UnicodeDecodeError:
        raise OcallError(ErrorCode.INVALID_ENCODING, "host is not UTF-8") from None
    check_host(host)
    port = check_port(port)
    return _start_connect(st, host, port, None)


def tcp_connect_tls(st: GuestState, payload: bytes) -> int:
    """214: EI (String host, u16 port, TlsClientConfig) -> res. TlsClientConfig: enum { V0 }."""
    r = ArgReader(payload)
    host = r.string(MAX_HOST_NAME, "host name")
    port = r.u16()
    variant = r.u8()
    if variant != 0:
        raise OcallError(ErrorCode.INVALID_ENCODING, f"unknown TlsClientConfig variant {variant}")
    r.end()
    check_host(host)
    check_port(port)
    net = net_state(st)
    return _start_connect(st, host, port, net.client_context())


def _start_connect(st: GuestState, host: str, port: int, tls: ssl.SSLContext | None) -> int:
    net = net_state(st)
    literal = ip_literal(host)
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
    r = ArgReader(payload)
    addr = r.string(512, "listen address")
    tls: tuple[str, str] | None = None
    option = r.u8()
    if option == 1:
        tls = tls_server_config(r)
    elif option != 0:
        raise OcallError(ErrorCode.INVALID_ENCODING, "bad Option tag")
    r.end()
    host, sep, port_text = addr.rpartition(":")
    if not sep or not port_text.isdigit() or len(port_text) > 5:
        raise OcallError(ErrorCode.INVALID_PARAMETER, "listen address is host:port")
    port = int(port_text)
    ip = "127.0.0.1" if host == "localhost" else ip_literal(host)
    if ip is None or not 0 <= port <= 65535:
        raise OcallError(ErrorCode.INVALID_PARAMETER, "listen address is ip:port, [ipv6]:port or localhost:port")
    net = net_state(st)
    ports = net.policy.listen_ports
    if ports is None or not ports[0] <= port <= ports[1]:
        allowed = f"{ports[0]}-{ports[1]}" if ports else "none"
        raise OcallError(ErrorCode.FORBIDDEN, f"port {port} is outside the allowed listen ports ({allowed})")
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
            raise OcallError(ErrorCode.ALREADY_EXISTS, f"{addr} is in use") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise OcallError(ErrorCode.FORBIDDEN, f"cannot bind {addr}") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise OcallError(ErrorCode.INVALID_PARAMETER, f"{ip} is not an address of this host") from None
        raise OcallError(ErrorCode.IO_ERROR, f"cannot listen on {addr}: {exc}") from None
    return st.resources.add(TcpListener(net, sock, context))


def tcp_accept(st: GuestState, task: int, waker: int, res: int) -> tuple[int, str]:
    """211/212: the next connection of a listener: (stream res, "ip:port" of the peer)."""
    listener = st.resources.get_as(res, Listener)
    assert isinstance(listener, Listener)
    return listener.poll_accept(st, task, waker)
