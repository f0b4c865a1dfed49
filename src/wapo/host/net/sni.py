"""tls_listen_sni (ocall 215): guests share one TLS port per process, each serving its own names.

The host binds ``NetworkPolicy.sni_port`` (on ``sni_host``) when the first name is registered and
closes it when the last one goes. It accepts every connection there itself and handshakes it with
a context that has no certificate of its own: the ClientHello's server name picks the guest that
registered it (``sni_callback`` switches the connection to that guest's SSLContext). An unknown
name, or none, fails the handshake and no guest sees the connection. A handshaken connection is
queued on the guest's ``SniListener`` and handed out by tcp_accept / tcp_accept_no_addr exactly
like a connection of tcp_listen.

Why per process and not per instance: many guests serve TLS on one public port (443), each for
its own names, the way a TLS front end would. The port lives on the event loop of the guest that
opened it; a guest running on another loop of the same process cannot share it (IoError).

Names: DNS names (letters, digits and hyphens; labels of 1..63 bytes; <= 253 bytes; not an IP
address), compared in lowercase; one live registration per name (AlreadyExists). Bounds: a
registration holds one of the instance's sockets (``NetLimits.max_sockets``), as does each
connection queued for it (at most ``NetLimits.backlog``; beyond that, or at the instance's socket
cap, a new connection is closed); handshakes in progress are capped per port (``MAX_HANDSHAKES``)
and each lasts at most ``NetLimits.handshake_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
from collections import deque
from typing import TYPE_CHECKING

from ..abi import ErrorCode, OcallError
from .policy import bind_address
from . import quota
from .args import MAX_HOST_NAME, ArgReader, ip_literal, peer_name, server_context, tls_server_config
from .tcp import Connection, Listener, NetState, TcpStream, net_state

if TYPE_CHECKING:
    from ..state import GuestState

log = logging.getLogger("wapo.host.net")

MAX_HANDSHAKES = 256  # TLS handshakes in progress at once on a shared port
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

_ports: dict[tuple[str, int], "SharedPort"] = {}  # the open shared ports of this process


def sni_name(text: str) -> str:
    """The registered form of a server name (lowercase); InvalidParameter if it is not a DNS name."""
    name = text.lower()
    labels = name.split(".")
    if not name.isascii() or not 1 <= len(name) <= MAX_HOST_NAME or ip_literal(name) is not None \
            or not all(_LABEL.fullmatch(label) for label in labels):
        raise OcallError(ErrorCode.INVALID_PARAMETER, f"{text[:80]!r} is not a DNS name")
    return name


class SharedPort:
    """One listening socket, the names registered on it and their guests' TLS contexts."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> None:
        self.loop = loop
        self.key = (host, port)
        self.names: dict[str, SniListener] = {}
        self.contexts: dict[ssl.SSLContext, SniListener] = {}
        self.handshakes: set[asyncio.Task] = set()
        address = bind_address(host) or host
        sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(quota.LIMITS.backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # no certificate: _pick supplies one
        self.context.sni_callback = self._pick
        self._pause: asyncio.TimerHandle | None = None
        loop.add_reader(sock.fileno(), self._accept)
        log.info("shared TLS port %s:%d open", host, port)

    def _pick(self, ssl_obj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> int | None:
        listener = self.names.get(server_name.lower()) if server_name else None
        if listener is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME  # the handshake fails; no guest sees it
        ssl_obj.context = listener.context
        return None

    def _accept(self) -> None:
        """The socket is readable: accept what is waiting and start each connection's handshake."""
        for _ in range(quota.LIMITS.backlog):
            try:
                client, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: stop watching for a moment, do not spin
                log.warning("shared TLS port %s:%d: accept failed: %s", *self.key, exc)
                self.loop.remove_reader(self.sock.fileno())
                self._pause = self.loop.call_later(0.5, self._resume)
                return
            if len(self.handshakes) >= MAX_HANDSHAKES:
                client.close()
                continue
            client.setblocking(False)
            task = self.loop.create_task(self._handshake(client, peer_name(peer)))
            self.handshakes.add(task)
            task.add_done_callback(self.handshakes.discard)

    def _resume(self) -> None:
        self._pause = None
        self.loop.add_reader(self.sock.fileno(), self._accept)

    async def _handshake(self, client: socket.socket, peer: str) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: _Handoff(self, peer), client, ssl=self.context,
                                                    ssl_handshake_timeout=quota.LIMITS.handshake_timeout)
        except Exception as exc:  # unknown name, bad client, timeout: only this connection is lost
            client.close()
            log.debug("shared TLS port %s:%d: handshake with %s failed: %s", *self.key, peer, exc)

    def register(self, listener: SniListener) -> None:
        self.names[listener.name] = listener
        self.contexts[listener.context] = listener

    def unregister(self, listener: SniListener) -> None:
        if self.names.get(listener.name) is listener:
            del self.names[listener.name]
        self.contexts.pop(listener.context, None)
        if not self.names:
            self.close()

    def close(self) -> None:
        if _ports.get(self.key) is self:
            del _ports[self.key]
        if self.sock.fileno() < 0:
            return  # closed already
        if not self.loop.is_closed():  # (a loop that is gone left nothing to cancel)
            self.loop.remove_reader(self.sock.fileno())
            if self._pause is not None:
                self._pause.cancel()
            for task in list(self.handshakes):
                task.cancel()
        self.sock.close()  # at once, so the port can be opened again right away
        log.info("shared TLS port %s:%d closed", *self.key)


class _Handoff(asyncio.Protocol):
    """The protocol of a connection until its handshake is done; then the guest's Connection takes over."""

    def __init__(self, port: SharedPort, peer: str) -> None:
        self.port = port
        self.peer = peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_obj = transport.get_extra_info("ssl_object")
        listener = self.port.contexts.get(ssl_obj.context) if ssl_obj is not None else None
        if listener is None or not listener.deliver(transport, self.peer):  # type: ignore[arg-type]
            transport.abort()  # the name went away during the handshake, or its guest is full


class SniListener(Listener):
    """A name on the shared TLS port: handshaken connections wait here for tcp_accept."""

    kind = "TLS SNI listener"

    def __init__(self, net: NetState, port: SharedPort, name: str, context: ssl.SSLContext) -> None:
        super().__init__()
        self.net = net
        self.port = port
        self.name = name
        self.context = context
        self._queue: deque[tuple[Connection, str]] = deque()
        self._held = True  # the instance's socket slot of the registration

    def deliver(self, transport: asyncio.Transport, peer: str) -> bool:
        net = self.net
        if not self._held or len(self._queue) >= net.limits.backlog:
            return False
        try:
            net.acquire()  # the queued connection holds a slot, handed on to its stream
        except OcallError:
            net.log("debug", f"tls_listen_sni {self.name}: dropped a connection from {peer} (socket cap)")
            return False
        conn = Connection(net, tls=True)
        transport.set_protocol(conn)
        conn.connection_made(transport)
        self._queue.append((conn, peer))
        self._notify()
        return True

    def poll_accept(self, st: GuestState, task: int, waker: int) -> tuple[int, str]:
        if not self._queue:
            self._park(task, waker)
        conn, peer = self._queue.popleft()
        return st.resources.add(TcpStream(self.net, conn)), peer  # on ResourceLimited the stream frees the slot

    def close(self) -> None:
        super().close()
        if not self._held:
            return
        self._held = False
        self.port.unregister(self)
        while self._queue:
            conn, _peer_addr = self._queue.popleft()
            conn.drop()
            self.net.release()
        self.net.release()


def tls_listen_sni(st: GuestState, payload: bytes) -> int:
    """215: EI (String sni, TlsServerConfig) -> res: serve ``sni`` on the shared TLS port."""
    net = net_state(st)
    try:
        return _listen_sni(st, net, payload)
    except OcallError as exc:
        net.log("warn", f"tls_listen_sni: {exc}")
        raise


def _listen_sni(st: GuestState, net: NetState, payload: bytes) -> int:
    r = ArgReader(payload)
    raw_name = r.string(MAX_HOST_NAME, "server name")
    cert, key = tls_server_config(r)
    r.end()
    name = sni_name(raw_name)
    policy = net.policy
    if policy.sni_port is None:
        raise OcallError(ErrorCode.FORBIDDEN, "this host has no shared TLS port (NetworkPolicy.sni_port, --sni-port)")
    port = _shared_port(net, policy.sni_host, policy.sni_port)
    holder = port.names.get(name) if port is not None else None
    if holder is not None:
        raise OcallError(ErrorCode.ALREADY_EXISTS, f"{name} is already served on the shared TLS port")
    context = server_context(cert, key)
    net.acquire()
    if port is None:
        try:
            port = _ports[(policy.sni_host, policy.sni_port)] = SharedPort(net.loop, policy.sni_host, policy.sni_port)
        except OSError as exc:
            net.release()
            log.warning("cannot open the shared TLS port %s:%d: %s", policy.sni_host, policy.sni_port, exc)
            raise OcallError(ErrorCode.IO_ERROR, f"cannot open the shared TLS port {policy.sni_port}: {exc}") from None
    listener = SniListener(net, port, name, context)
    port.register(listener)
    return st.resources.add(listener)  # ResourceLimited closes it: the name and the slot are freed


def _shared_port(net: NetState, host: str, port: int) -> SharedPort | None:
    """The open shared port, or None if it is to be opened; IoError if another event loop holds it."""
    shared = _ports.get((host, port))
    if shared is not None and shared.loop.is_closed():
        shared.close()  # left behind by a loop that ended without closing its guests
        shared = None
    if shared is not None and shared.loop is not net.loop:
        raise OcallError(ErrorCode.IO_ERROR, f"the shared TLS port {port} is served by another event loop of this process")
    return shared
